"""Checks of the target before a run: reachable, OpenAI-compatible, serving the model asked for."""

from __future__ import annotations

import http.client
import json
import os
import re
import ssl
import urllib.error
import urllib.request
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit, urlunsplit

from core.errors import GoodputError
from loadgen.transport.client import error_message
from loadgen.transport.headers import static_headers
from loadgen.transport.urls import is_http_url, opener_like, safe_url


class TargetError(GoodputError):
    """The target is wrong or unreachable: one line naming the URL and what failed."""


class Served(NamedTuple):
    """What the target's /v1/models says: the model to use and its card (serverfacts.py reads it)."""

    model: str
    card: dict | None
    ids: tuple[str, ...] = ()  # every id the list holds (a LoRA adapter is listed beside its base)


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_credentials(host: str, api_key_env: str) -> None:
    """Secrets stay off the command line: no `user:password@` in `--host`, no key in `--api-key-env`.

    Locust shows the host in its web UI, its report file names and some log lines, so credentials
    in the URL would leak; refusing them is simpler and safer than scrubbing every place. A key
    pasted into `--api-key-env` would be echoed by the "set the key in $NAME" hints. Neither
    message repeats the offending value.
    """
    if not ENV_NAME.match(api_key_env or ""):
        raise TargetError(
            "--api-key-env: expects the NAME of an environment variable holding the key "
            "(e.g. OPENAI_API_KEY), not the key itself"
        )
    netloc = host.split("://", 1)[-1].split("/", 1)[0]
    if "@" in netloc:
        raise TargetError(
            "--host: credentials in the URL (user:password@HOST) are not supported: they would show "
            f"in the web UI and logs; remove them and put an API key in ${api_key_env} (sent as a Bearer token)"
        )


# The SGLang Model Gateway (smg) lists a worker whose model it could not learn under this id
# (UNKNOWN_MODEL_ID in its source); requests naming the real model still reach that worker.
PLACEHOLDER = "unknown"


def check(
    host: str,
    model: str,
    api_key_env: str,
    client: str = "raw",
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    models: str = "/v1/models",
) -> Served:
    """The model to use — `model` if served, else the first id of /v1/models — and its card, asked
    the way `client` reaches the server (directly, or through the environment's proxy
    for the SDK), with the headers every request carries (`--header`: a gateway may want its key
    here too)."""
    check_credentials(host, api_key_env)
    if not is_http_url(host):
        raise TargetError(f"--host: '{safe_url(host) or host}' is not a URL (expected http://HOST:PORT)")
    url = host.rstrip("/") + models
    req = urllib.request.Request(url)
    for name, value in static_headers(os.environ.get(api_key_env), headers or {}).items():
        req.add_header(name, value)
    shown = safe_url(url)
    try:
        with opener_like(client).open(req, timeout=timeout_s) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code in (401, 403):
            raise TargetError(f"{shown}: HTTP {e.code} — set the API key in ${api_key_env}") from None
        if 300 <= e.code < 400:
            raise TargetError(_redirect_line(shown, e.code, url, e.headers.get("Location"))) from None
        if e.code == 404 and models != "/v1/models":  # a server that lists no models beside its route
            if model:
                return Served(model, None)
            raise TargetError(
                f"{shown}: HTTP 404 — the server lists no models beside --api-path: pass --model NAME"
            ) from None
        if e.code == 404 and (root := _root_of(host)):
            raise TargetError(
                f"{shown}: HTTP 404 — --host is the server's root: Goodput adds /v1/… itself; try --host {root}"
            ) from None
        if e.code == 404 and models == "/v1/models" and (elsewhere := _api_path_hint(host)):
            raise TargetError(f"{shown}: HTTP 404 — Goodput adds /v1/… to --host; {elsewhere}") from None
        said = error_message(e.read()[:2000]) if e.fp is not None else ""
        if e.code in (502, 503, 504):
            raise TargetError(
                f"{shown}: HTTP {e.code}{f' ({said})' if said else ''} — the server is not ready "
                "(still loading the model, or its backend is down): start the run once it answers"
            ) from None
        raise TargetError(
            f"{shown}: HTTP {e.code}{f' ({said})' if said else ''} — is this an OpenAI-compatible server?"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        hint = ""
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = " — to trust the server's own or its private CA's certificate: SSL_CERT_FILE=PATH.pem"
        raise TargetError(f"cannot reach {shown}: {reason}{hint}") from None
    except http.client.HTTPException as e:  # a body cut short of its length, a malformed status line
        raise TargetError(
            f"{shown}: a broken answer ({type(e).__name__}) — is this an OpenAI-compatible server?"
        ) from None
    except json.JSONDecodeError:
        raise TargetError(f"{shown}: the answer is not JSON — is this an OpenAI-compatible server?") from None
    if not isinstance(body, dict):
        raise TargetError(f"{shown}: the answer is not a model list — is this an OpenAI-compatible server?")
    data = body.get("data") if isinstance(body.get("data"), list) else []
    cards = {m["id"]: m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]}
    return _choose(model, cards, shown, host)


def _choose(model: str, cards: dict[str, dict], shown: str, host: str) -> Served:
    """`model` if the list serves it (or names only a router's placeholder), else the list's first."""
    ids = list(cards)
    if ids == [PLACEHOLDER]:  # a router's name for a model it could not learn from its workers
        if model:
            return Served(model, None, tuple(ids))
        raise TargetError(
            f"{shown} lists only '{PLACEHOLDER}': a router (the SGLang Model Gateway) that could not learn its "
            "workers' model (it asks SGLang's /model_info, which vLLM and others do not serve): pass --model NAME"
        )
    if model:
        if ids and model not in ids and f"{model}:latest" not in ids:  # Ollama: no tag means :latest
            raise TargetError(
                f"--model: '{model}' is not served by {safe_url(host)} (it serves: {', '.join(ids)})"
            )
        return Served(model, cards.get(model) or cards.get(f"{model}:latest"), tuple(ids))
    if not ids:
        raise TargetError(f"{shown} lists no model: pass --model NAME")
    return Served(ids[0], cards[ids[0]], tuple(ids))


def _root_of(host: str) -> str:
    """The URL without a trailing `/v1` ("" when it has none): OpenAI's SDKs take a base URL that ends
    in /v1, and a user who pastes one gets /v1/v1/models; the error line offers the root instead."""
    u = urlsplit(safe_url(host))
    path = u.path.rstrip("/")
    if not path.endswith("/v1"):
        return ""
    return urlunsplit((u.scheme, u.netloc, path[: -len("/v1")], "", ""))


def _api_path_hint(host: str) -> str:
    """A --host with a path that is not the server's root: perhaps an OpenAI base URL without /v1
    (Gemini's `…/v1beta/openai`), which --api-path expresses; "" for a bare origin."""
    u = urlsplit(safe_url(host))
    path = u.path.rstrip("/")
    if not path:
        return ""
    origin = urlunsplit((u.scheme, u.netloc, "", "", ""))
    return (
        f"if {safe_url(host).rstrip('/')} is the OpenAI base URL (what the SDKs take), pass "
        f"--host {origin} --api-path {path}/chat/completions"
    )


def _redirect_line(shown: str, code: int, url: str, location: str | None) -> str:
    """A target that redirects (an ingress sending http:// to https://, a moved route) is refused
    with the URL to use. Following it would put a redirect round trip into every request's TTFT
    (the openai SDK follows redirects; the raw client does not, and would fail every request)."""
    if not location:
        return f"{shown}: HTTP {code} (a redirect without a Location) — pass the server's own URL as --host"
    target = safe_url(urljoin(url, location))
    root = target[: -len("/v1/models")] if target.endswith("/v1/models") else ""
    use = f"pass --host {root}" if root else "pass the server's own URL as --host"
    return (
        f"{shown}: HTTP {code}, redirected to {target} — {use}: a redirect on every request "
        "would be timed as the server's"
    )
