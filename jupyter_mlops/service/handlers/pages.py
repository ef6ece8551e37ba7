"""Server-rendered pages of the control plane (the admin page, the projects pages).

Same authentication and scopes as the JSON routes (``ApiHandler``), but a browser without a
login is sent through the hub's OAuth, errors render as a page, and forms carry the xsrf token:
HubOAuth accepts a cookie on a POST only with a matching ``_xsrf`` field.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from urllib.parse import urlencode

import jinja2
from jupyterhub.utils import url_path_join
from tornado import web

from ...core import json_body, roles
from ...core.errors import Forbidden, InvalidInput, MlopsError, NotAuthenticated, NotFound
from ...core.roles import Caller
from .base import ApiHandler

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                          autoescape=jinja2.select_autoescape(["html"]))


def _when(ts) -> str:
    if not ts:
        return ""
    if isinstance(ts, str):
        return ts.replace("T", " ")[:16]
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


_env.filters["when"] = _when


class PageHandler(ApiHandler):
    """An HTML page. ``required_scopes`` as for JSON routes."""

    async def prepare(self):
        try:
            await super().prepare()
        except NotAuthenticated:
            if self.request.method == "GET":
                self.redirect(self.get_login_url())
                return
            raise

    # --- rendering ----------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self.settings.get("mlops_prefix") or self.hub_auth.base_url or "/services/mlops/"

    @property
    def hub_prefix(self) -> str:
        """The hub's public base (``/hub/``), for its stylesheet and navigation."""
        return self.hub_auth.hub_prefix

    def render_page(self, template: str, **ns) -> None:
        caller: Caller | None = getattr(self, "caller", None)
        html = _env.get_template(template).render(
            prefix=self.prefix, hub=self.hub_prefix,
            public=self.hub_prefix.rsplit("hub/", 1)[0] or "/",
            caller=caller, is_admin=bool(caller and caller.is_admin),
            can_manage=bool(caller and (roles.MANAGE in caller.scopes or caller.is_admin)),
            xsrf=self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes)
            else self.xsrf_token,
            flash=self.get_argument("flash", ""), error=self.get_argument("error", ""),
            **ns)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)

    def back(self, path: str, flash: str = "", error: str = "") -> None:
        """Post/redirect/get: back to a page with a message to show."""
        path, _, fragment = path.partition("#")
        q = {k: v for k, v in (("flash", flash), ("error", error)) if v}
        self.redirect(url_path_join(self.prefix, path) + ("?" + urlencode(q) if q else "")
                      + (f"#{fragment}" if fragment else ""))

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, MlopsError):
            message = exc.message
        elif isinstance(exc, web.HTTPError):
            message = exc.log_message or exc.reason or ""
        else:
            message = "internal error; see the control plane log"
        self.set_status(status_code)
        try:
            self.render_page("error.html", status=status_code, message=message)
        except Exception:  # never fail while failing
            self.set_header("Content-Type", "text/plain")
            self.finish(f"{status_code}: {message}")

    # --- forms --------------------------------------------------------------------------------

    def form(self, name: str, required: bool = True) -> str:
        value = self.get_body_argument(name, "").strip()
        if required and not value:
            raise InvalidInput(f"the form needs a value for {name!r}")
        return value

    def form_int_or_none(self, name: str) -> int | None:
        value = self.form(name, required=False)
        if value == "":
            return None
        try:
            n = int(value)
        except ValueError:
            raise InvalidInput(f"{name} must be a whole number, not {value!r}") from None
        if n < 0:
            raise InvalidInput(f"{name} must be >= 0")
        if n > json_body.INT_MAX:  # the database holds 64-bit integers
            raise InvalidInput(f"{name} must be at most {json_body.INT_MAX}")
        return n

    async def run_form(self, page: str, action, ok: str) -> None:
        """Run a form action; come back to ``page`` with ``ok`` or the error's message.

        Authorisation errors are not turned into messages: they answer their status.
        """
        try:
            result = action()
            if hasattr(result, "__await__"):
                await result
        except (Forbidden, NotAuthenticated, NotFound):
            raise
        except MlopsError as e:
            self.back(page, error=e.message)
            return
        self.back(page, flash=ok)


class RootPageHandler(PageHandler):
    """``/services/mlops/``: administrators land on the admin page, others on their projects."""

    async def get(self):
        self.redirect(url_path_join(self.prefix, "admin" if self.caller.is_admin else "projects"))
