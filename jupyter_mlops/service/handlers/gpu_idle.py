"""Idle GPU servers: the holder keeps theirs, administrators see the rule in force and the
releases (``/api/gpus/idle...``, ``/gpus/keep/<server>``); the logic is core.gpu_culling and the
periodic task service.gpu_reclaim."""
from __future__ import annotations

from urllib.parse import quote

from ...core import roles
from ...core.errors import NotFound
from .base import ApiHandler
from .pages import PageHandler


def _survey_body(servers, culls) -> dict:
    return {"servers": [s.to_dict() for s in servers], "culls": culls}


class GpuIdleHandler(ApiHandler):
    """GET: every GPU server with its rule in force (GPU utilisation or activity), its idle
    time and policy, and the releases so far (administrators)."""

    required_scopes = (roles.ADMIN,)

    async def get(self):
        culling = self.context.gpu_culling
        self.write_json(_survey_body(await culling.survey(), culling.culler.culls()))


class GpuKeepHandler(ApiHandler):
    """POST: the holder keeps their server's GPUs (the idle clock starts again)."""

    async def post(self, owner: str):
        ctx = self.context
        ctx.gpu_culling.culler.keep(self.caller, owner, ctx.gpu_allocator.holders())
        self.write_json({"owner": owner, "kept": True})


class GpuKeepPage(PageHandler):
    """The notification's "keep it" link: a page with one button (GET shows, POST keeps)."""

    async def get(self, owner: str):
        if owner != self.caller.name and not owner.startswith(self.caller.name + "/"):
            raise NotFound(f"no server {owner!r} of yours")
        servers = [s for s in await self.context.gpu_culling.survey(with_hub=False)
                   if s.owner == owner]
        self.render_page("gpu_keep.html", owner=owner, server=servers[0] if servers else None)

    async def post(self, owner: str):
        ctx = self.context
        await self.run_form(f"gpus/keep/{quote(owner, safe='')}", lambda: ctx.gpu_culling.culler.keep(
            self.caller, owner, ctx.gpu_allocator.holders()),
            f"kept: the GPUs of {owner} stay yours; the idle clock starts again")


ROUTES = [
    (r"/gpus/idle", GpuIdleHandler),
    (r"/gpus/idle/([^/]+)/keep", GpuKeepHandler),
]
PAGES = [(r"/gpus/keep/([^/]+)", GpuKeepPage)]
