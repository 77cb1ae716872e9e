"""Web UI login: Locust's `--web-login` with one user whose password comes from the environment.

Locust 2.x removed `--web-auth user:pass`; `--web-login` only shows a login page and leaves the
checking to the locustfile. Goodput checks it here: the browser logs in through Locust's own
username/password form (a signed session cookie), and scripts send HTTP Basic credentials on any
route (`curl -u goodput:$GOODPUT_WEB_PASSWORD http://HOST:8089/stats/requests`). The password is
read from an environment variable, never from the command line, so it cannot leak through `ps`,
run.json or the web UI's own option list.

Without `--web-login` the web UI is open to anyone who can reach its port, and Locust binds it to
all interfaces by default: a warning says so once at start-up.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from typing import Any

from core.errors import exit_with
from core.optgroups import add_option

log = logging.getLogger("goodput")
ALL_INTERFACES = ("", "*", "0.0.0.0", "::")


class WebUser:
    """The one Flask-Login user; Flask-Login needs these four members."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, name: str) -> None:
        self.name = name

    def get_id(self) -> str:
        return self.name


def install(events: Any) -> None:
    @events.init_command_line_parser.add_listener
    def _options(parser: Any) -> None:
        add_option(
            parser,
            "web",
            "--web-user",
            label="Web UI user",
            default="goodput",
            help="With --web-login: the web UI user name (default goodput)",
        )
        add_option(
            parser,
            "web",
            "--web-password-env",
            label="Web UI password variable",
            default="GOODPUT_WEB_PASSWORD",
            help="With --web-login: the environment variable holding the web UI password",
        )

    @events.init.add_listener
    def _init(environment: Any, web_ui: Any = None, **_: Any) -> None:
        if web_ui is not None:
            protect(environment, web_ui)


def protect(environment: Any, web_ui: Any) -> None:
    opts = environment.parsed_options
    if not opts.web_login:
        if (opts.web_host or "") in ALL_INTERFACES:
            log.warning(
                "goodput: the web UI listens on all interfaces with no login: anyone who can reach port %s "
                "can start runs; use --web-host 127.0.0.1 or --web-login",
                opts.web_port,
            )
        return
    user = opts.web_user
    password = os.environ.get(opts.web_password_env or "", "")
    if not user:
        exit_with("--web-user: empty user name")
    if not password:
        exit_with(f"--web-login: set the web UI password in ${opts.web_password_env} (user '{user}')")
    check = _checker(user, password)
    app = web_ui.app
    app.config["SECRET_KEY"] = secrets.token_hex(32)  # sessions end with the process
    manager = web_ui.login_manager
    manager.user_loader(lambda uid: WebUser(uid) if uid == user else None)
    manager.request_loader(lambda req: _basic_user(req, check))
    manager.unauthorized_handler(lambda: _unauthorized(opts.web_base_path or ""))
    base = opts.web_base_path or ""
    web_ui.auth_args = {"username_password_callback": f"{base}/login_submit"}
    _add_login_route(app, base, check)


def _checker(user: str, password: str) -> Any:
    """Constant-time comparison of both fields, so a wrong guess reveals nothing through timing."""
    u, p = user.encode(), password.encode()

    def check(name: str | None, given: str | None) -> bool:
        ok_user = hmac.compare_digest((name or "").encode(), u)
        ok_pass = hmac.compare_digest((given or "").encode(), p)
        return ok_user and ok_pass

    return check


def _basic_user(req: Any, check: Any) -> WebUser | None:
    auth = req.authorization
    if auth is None or auth.type != "basic" or not check(auth.username, auth.password):
        return None
    return WebUser(auth.username)


def _unauthorized(base: str) -> Any:
    """The page itself goes to the login form; API routes answer 401 (scripts send Basic auth)."""
    from flask import make_response, redirect, request, url_for

    if request.path.rstrip("/") == base.rstrip("/"):
        return redirect(url_for("locust.login"))
    resp = make_response("login required: log in at /login, or send HTTP Basic credentials\n", 401)
    resp.headers["Content-Type"] = "text/plain"
    return resp


def _add_login_route(app: Any, base: str, check: Any) -> None:
    from flask import Blueprint, redirect, request, session, url_for
    from flask_login import login_user

    bp = Blueprint("goodput_auth", __name__, url_prefix=base or None)

    @bp.route("/login_submit", methods=["POST"])
    def login_submit() -> Any:
        name = request.form.get("username")
        if check(name, request.form.get("password")):
            login_user(WebUser(str(name)))
            return redirect(url_for("locust.index"))
        # No user name in the log: people type passwords into the wrong field.
        log.warning("goodput: web UI login refused from %s", request.remote_addr)
        session["auth_error"] = "Invalid username or password"
        return redirect(url_for("locust.login"))

    app.register_blueprint(bp)
