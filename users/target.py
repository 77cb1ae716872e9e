"""Checks of the target before a run: reachable, OpenAI-compatible, serving the model asked for."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from users.runfolder import safe_url


class TargetError(ValueError):
    """The target is wrong or unreachable: one line naming the URL and what failed."""


def check(host: str, model: str, api_key_env: str, timeout_s: float = 10.0) -> str:
    """Return the model to use: `model` if served, else the first id of /v1/models."""
    try:
        u = urlsplit(host)
        ok = u.scheme in ("http", "https") and bool(u.hostname)
        _ = u.port
    except ValueError:
        ok = False
    if not ok:
        raise TargetError(f"--host: '{safe_url(host) or host}' is not a URL (expected http://HOST:PORT)")
    url = host.rstrip("/") + "/v1/models"
    req = urllib.request.Request(url)
    if key := os.environ.get(api_key_env):
        req.add_header("Authorization", f"Bearer {key}")
    shown = safe_url(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise TargetError(f"{shown}: HTTP {e.code} — set the API key in ${api_key_env}") from None
        raise TargetError(f"{shown}: HTTP {e.code} — is this an OpenAI-compatible server?") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TargetError(f"cannot reach {shown}: {reason}") from None
    except json.JSONDecodeError:
        raise TargetError(f"{shown}: the answer is not JSON — is this an OpenAI-compatible server?") from None
    ids = [m.get("id") for m in body.get("data", []) if isinstance(m, dict) and m.get("id")]
    if model:
        if ids and model not in ids:
            raise TargetError(
                f"--model: '{model}' is not served by {safe_url(host)} (it serves: {', '.join(ids)})"
            )
        return model
    if not ids:
        raise TargetError(f"{shown} lists no model: pass --model NAME")
    return ids[0]
