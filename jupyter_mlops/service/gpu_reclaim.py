"""Idle GPU servers reclaimed: the control plane's periodic task over ``core.gpu_culling``.

Each round reads the GPU allocations, the inventory (utilisation), the hub's view of the
servers (last activity, the profile they were started with; through the control plane's own
hub token, which may read servers and stop them), then notifies the holders whose release is
near and stops the servers whose time is up. Configured as ``GpuCulling``.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from urllib.parse import quote

from traitlets import Dict, Float, List, Unicode
from traitlets.config import Configurable

from ..core.gpu_culling import CullPolicy, GpuCuller, IdleServer, idle_message

log = logging.getLogger("jupyter_mlops.service")


class GpuCulling(Configurable):
    idle_minutes = Float(
        60.0,
        help="""Minutes a user server may hold GPUs while idle before they are released (the
        server is stopped; its workspace stays). Idle means no GPU utilisation where the
        inventory reads it (NVML), else no activity the hub has seen on the server. 0: never.
        ``idle_minutes_by_profile`` and ``idle_minutes_by_group`` override it.""",
    ).tag(config=True)

    warning_minutes = Float(
        15.0,
        help="""Notice given before a release: the holder is notified (lab notification with a
        "keep it" link) when ``idle_minutes - warning_minutes`` have passed.""",
    ).tag(config=True)

    idle_minutes_by_profile = Dict(
        {},
        help="""Profile slug -> idle minutes for servers started with that profile (wins over
        groups), e.g. ``{"a100-2": 30, "gpu-1": 120}``; 0 never releases.""",
    ).tag(config=True)

    idle_minutes_by_group = Dict(
        {},
        help="""Hub group -> idle minutes for its members' servers, e.g. ``{"students": 30}``.
        A member of several listed groups gets the most generous one; 0 never releases.""",
    ).tag(config=True)

    exempt_users = List(
        Unicode(), [],
        help="""Users whose servers are never released for idleness (administrators' choice,
        e.g. someone debugging on a GPU all day). They are still listed as idle.""",
    ).tag(config=True)

    exempt_groups = List(
        Unicode(), [],
        help="""Hub groups whose members' servers are never released for idleness.""",
    ).tag(config=True)

    interval_seconds = Float(
        60.0,
        help="""How often idle servers are looked for (0 turns culling off). The warning and
        the release are late by at most this much.""",
    ).tag(config=True)

    def __init__(self, context, **kw):
        super().__init__(**kw)
        self.context = context
        self.culler = GpuCuller(context.db)
        self._task: asyncio.Task | None = None
        self._profiles: dict[str, str] = {}

    # --- policy -------------------------------------------------------------------------------

    def policy_for(self, owner: str, groups: tuple[str, ...]) -> CullPolicy:
        user = owner.split("/", 1)[0]
        warning = self.warning_minutes
        if user in self.exempt_users:
            return CullPolicy(0, warning, f"exempt user {user}")
        exempt = sorted(set(groups) & set(self.exempt_groups))
        if exempt:
            return CullPolicy(0, warning, f"exempt group {exempt[0]}")
        profile = self._profiles.get(owner)
        if profile in self.idle_minutes_by_profile:
            return CullPolicy(float(self.idle_minutes_by_profile[profile]), warning,
                              f"profile {profile}")
        listed = [(float(self.idle_minutes_by_group[g]), g) for g in groups
                  if g in self.idle_minutes_by_group]
        if listed:
            minutes, group = max(listed, key=lambda m: (m[0] == 0, m[0]))
            return CullPolicy(minutes, warning, f"group {group}")
        return CullPolicy(self.idle_minutes, warning, "default")

    # --- one round ----------------------------------------------------------------------------

    async def _hub_servers(self) -> dict[str, float | None]:
        """Server owner -> last activity (epoch seconds); remembers each server's profile."""
        activity: dict[str, float | None] = {}
        for user in await self.context.admin.users():
            for name, server in (user.get("servers") or {}).items():
                owner = user["name"] + (f"/{name}" if name else "")
                activity[owner] = _epoch(server.get("last_activity"))
                profile = (server.get("user_options") or {}).get("profile")
                if profile:
                    self._profiles[owner] = profile
        return activity

    async def survey(self, with_hub: bool = True) -> list[IdleServer]:
        """Every GPU server with its rule in force, idle time and what is due."""
        ctx = self.context
        activity = {}
        if with_hub:
            try:
                activity = await self._hub_servers()
            except Exception as e:  # an unreachable hub: no activity known, nothing released
                log.warning("GPU culling: the hub's servers are unknown (%s)", e)
                with_hub = False
        holders = ctx.gpu_allocator.holders()
        servers = self.culler.plan(holders, ctx.gpu_inventory.read(), ctx.admin.usage.zero_since(),
                                   activity, self.policy_for)
        if not with_hub:  # without the hub's view, activity-based releases would be guesses
            for s in servers:
                if s.rule != "gpu-utilisation":
                    s.step = ""
        return servers

    async def run_once(self) -> list[IdleServer]:
        ctx = self.context
        ctx.admin.sync()  # utilisation sampled and usage in step before deciding
        servers = await self.survey()
        for s in servers:
            if s.step == "warn":
                left = s.release_after - (s.idle_minutes or 0)
                ctx.notifications.notify(
                    [s.username], "gpu.idle", idle_message(s.idle_minutes or 0, left),
                    link=f"/services/mlops/gpus/keep/{quote(s.owner, safe='')}")
                self.culler.warned(s.owner)
            elif s.step == "release":
                user, _, name = s.owner.partition("/")
                try:
                    await ctx.admin.stop_server(user, name)
                except Exception as e:
                    log.warning("GPU culling: could not stop %s's server: %s", s.owner, e)
                    continue
                # the hub's stop releases the GPUs through the spawner; do it here as well so
                # the devices are free now whatever the spawner does
                ctx.gpu_allocator.release("server", s.owner)
                self.culler.released(s)
                ctx.admin.sync()
                ctx.notifications.notify(
                    [s.username], "gpu.released",
                    f"your server {s.owner} was stopped after {s.idle_minutes:.0f} min with an "
                    f"idle GPU ({s.rule}); your files are kept, start it again any time")
                log.info("GPU culling: stopped %s (idle %.1f min, %s)", s.owner,
                         s.idle_minutes or 0, s.rule)
        return servers

    def start(self) -> None:
        if self.interval_seconds > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.run_once()
            except Exception:  # one failed round (a locked database) must not end culling
                log.exception("GPU culling round failed")


def _epoch(ts) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
