"""What the admin page needs beyond the domain objects: the hub's view of users and servers
(through the control plane's own, least-privilege hub token), GPU-hours accounting kept in step
with GPU allocations, and the IdP-group -> project mapping applied at start.

Built once by the control plane (``ServiceContext.admin``); configured as ``PlatformAdmin``.
"""
from __future__ import annotations

import json
import logging
import os

from tornado.ioloop import PeriodicCallback
from traitlets import Any, Float, Unicode, default, validate
from traitlets.config import Configurable

from ..client.hub_calls import AsyncHub
from ..core.errors import InvalidInput
from ..core.gpu_history import GpuServerTelemetry, GpuUtilisationHistory
from ..core.usage import UsageLedger
from ..hub.sso import ROLE_GROUPS

log = logging.getLogger("jupyter_mlops.service")


class PlatformAdmin(Configurable):
    group_projects = Any(
        None, allow_none=True,
        help="""Hub/IdP group -> list of projects its members belong to (JSON on the command
        line). Missing projects are created at start. Set by ``MlopsHub.group_projects``.""",
    ).tag(config=True)

    @validate("group_projects")
    def _validate_group_projects(self, proposal):
        value = proposal["value"]
        if isinstance(value, str):
            value = json.loads(value)
        if value is not None and not (
                isinstance(value, dict)
                and all(isinstance(v, list) and all(isinstance(p, str) for p in v)
                        for v in value.values())):
            raise ValueError("group_projects maps group names to lists of project names")
        return value

    idle_gpu_minutes = Float(
        30.0,
        help="""A server whose GPUs read 0 % utilisation for longer than this is listed as idle
        on the admin page, with a button to stop it.""",
    ).tag(config=True)

    usage_sync_seconds = Float(
        30.0,
        help="""How often GPU-hours accounting is reconciled with the GPU allocations and the
        inventory's utilisation is sampled (0 turns the periodic task off; the admin page still
        reconciles when it is opened).""",
    ).tag(config=True)

    gpu_history_hours = Float(
        24.0,
        help="""Hours of per-GPU utilisation, and of each GPU server's CPU, memory and GPU use,
        the admin page charts (one reading per device or server and minute, taken at each sync;
        older readings are dropped, so the history stays bounded: 24 h is 1,440 rows each).""",
    ).tag(config=True)

    hub_api_url = Unicode(help="The hub's REST API. Defaults to $JUPYTERHUB_API_URL.",
                          ).tag(config=True)

    @default("hub_api_url")
    def _default_hub_api_url(self):
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    hub_api_token = Unicode(
        help="""The control plane's own hub token ($JUPYTERHUB_API_TOKEN). Its role
        ``mlops-control-plane`` lists users and servers, stops servers and edits the role
        groups; nothing more.""",
    ).tag(config=True)

    @default("hub_api_token")
    def _default_hub_api_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    def __init__(self, db, projects, allocator, inventory, **kw):
        super().__init__(**kw)
        self.projects = projects
        self.allocator = allocator
        self.inventory = inventory
        self.usage = UsageLedger(db)
        self.gpu_history = GpuUtilisationHistory(db, window_hours=self.gpu_history_hours)
        self.server_telemetry = GpuServerTelemetry(db, window_hours=self.gpu_history_hours)
        # hub user -> {"cpu_percent", "rss_bytes"} of their server and its children, now; set
        # by the service once platform health is built (None: CPU and memory not sampled)
        self.server_use = None
        if self.group_projects:
            projects.apply_group_mapping(self.group_projects)
        self._periodic = None
        if self.usage_sync_seconds > 0:
            try:
                self._periodic = PeriodicCallback(self.sync, self.usage_sync_seconds * 1000)
                self._periodic.start()
            except RuntimeError:  # no running loop (built outside the service, e.g. tests)
                self._periodic = None

    def sync(self) -> None:
        """Reconcile usage with allocations; sample utilisation for idle detection."""
        try:
            if self.allocator is not None:
                self.usage.sync(self.allocator.holders())
            gpus = self.inventory.read().gpus
            self.usage.observe(gpus)
            self.gpu_history.record(gpus)
            self._sample_gpu_servers(gpus)
        except Exception:  # a periodic task must survive a locked database for one round
            log.exception("usage sync failed")

    def _sample_gpu_servers(self, gpus) -> None:
        """CPU, memory and GPU use of every running server holding a GPU (its devices'
        mean utilisation, None where unknown), for the admin page's charts."""
        if self.allocator is None or self.server_use is None:
            return
        held: dict[tuple[str, str], list] = {}
        for a in self.allocator.holders():
            if a.owner_kind == "server":
                held.setdefault((a.owner, a.username), []).append(a.device_uuid)
        if not held:
            return
        use, pct = self.server_use(), {g.uuid: g.utilization_pct for g in gpus}
        samples = {}
        for (owner, username), uuids in held.items():
            u = use.get(username)
            if u is None:  # not running here (yet), or not a process of this machine
                continue
            known = [pct[d] for d in uuids if pct.get(d) is not None]
            samples[owner] = {"cpu_percent": u["cpu_percent"],
                              "memory_mb": u["rss_bytes"] // 2**20,
                              "gpu_pct": round(sum(known) / len(known)) if known else None}
        self.server_telemetry.record(samples)

    # --- the hub, through the control plane's token -------------------------------------------

    def hub(self) -> AsyncHub:
        """The hub's REST API with the control plane's token (``async with``)."""
        return AsyncHub(self.hub_api_url, self.hub_api_token)

    async def users(self) -> list[dict]:
        async with self.hub() as hub:
            return await hub.users()

    async def stop_server(self, username: str, server_name: str = "") -> None:
        async with self.hub() as hub:
            await hub.stop_server(username, server_name)

    async def set_role(self, username: str, role: str) -> None:
        """Put ``username`` into the role group of ``role`` (``admin``, ``manager``) and out of
        the others; ``scientist`` removes them from both (local accounts; with SSO the IdP
        decides again at the next login)."""
        if role not in (*ROLE_GROUPS, "scientist"):
            raise InvalidInput(f"role is one of {', '.join([*ROLE_GROUPS, 'scientist'])}")
        async with self.hub() as hub:
            await hub.user(username)  # NotFound if unknown
            for r, group in ROLE_GROUPS.items():
                if r == role:
                    await hub.add_group_users(group, [username])
                else:
                    await hub.remove_group_users(group, [username])


def role_of(user: dict) -> str:
    """Lab role of a hub user model, from the role groups it is in."""
    from ..core import roles

    groups = set(user.get("groups") or ())
    if ROLE_GROUPS["admin"] in groups:
        return roles.SYSTEM_ADMINISTRATOR
    if ROLE_GROUPS["manager"] in groups:
        return roles.PROJECT_MANAGER
    return roles.DATA_SCIENTIST
