"""GPU inventory, allocations and quotas (``/api/gpus...``); the logic is core.gpu_allocation."""
from __future__ import annotations

from ...core import roles
from ...core.errors import Forbidden, InvalidInput
from ...core.gpu_allocation import QUOTA_KINDS, ServerRequest, server_allocation_request
from .base import ApiHandler


class GpusHandler(ApiHandler):
    """GET: the inventory with who holds each device.

    Everybody sees availability; holders' names are shown to administrators only, a user sees
    which devices are their own.
    """

    async def get(self):
        alloc = self.context.gpu_allocator
        reading = self.context.gpu_inventory.read()
        holders = {a.device_uuid: a for a in alloc.holders()}
        gpus = []
        for g in reading.gpus:
            d = g.to_dict()
            a = holders.get(g.uuid)
            d["free"] = a is None
            d["mine"] = bool(a and a.username == self.caller.name)
            if a and self.caller.is_admin:
                d["holder"] = a.to_dict()
            gpus.append(d)
        free = sum(g["free"] for g in gpus)
        self.write_json({"total": len(gpus), "free": free, "source": reading.source,
                         "reason": reading.reason, "gpus": gpus,
                         "limits": [dict(zip(("kind", "name", "limit", "in_use"), q)) for q in
                                    alloc.limits_for(self.caller.name, self.caller.groups)]})


class GpuAllocationsHandler(ApiHandler):
    """GET: every current allocation (administrators)."""

    required_scopes = (roles.ADMIN,)

    async def get(self):
        self.write_json({"allocations": [a.to_dict() for a in
                                         self.context.gpu_allocator.holders()]})


class GpuQuotasHandler(ApiHandler):
    """GET: every quota (administrators)."""

    required_scopes = (roles.ADMIN,)

    async def get(self):
        self.write_json({"quotas": [q.to_dict() for q in self.context.gpu_allocator.quotas()]})


class GpuQuotaHandler(ApiHandler):
    """PUT ``{"gpus": N}`` sets, ``{"gpus": null}`` or DELETE removes one quota."""

    required_scopes = (roles.ADMIN,)

    def _check_kind(self, kind: str) -> None:
        if kind not in QUOTA_KINDS:
            raise InvalidInput(f"quota kind must be one of {', '.join(QUOTA_KINDS)}")

    async def get(self, kind: str, name: str):
        if kind != "project":  # readable here, set on the project itself
            self._check_kind(kind)
        self.write_json({"kind": kind, "name": name,
                         "gpus": self.context.gpu_allocator.get_quota(kind, name)})

    async def put(self, kind: str, name: str):
        self._check_kind(kind)
        body = self.get_json_body()
        if "gpus" not in body:
            raise InvalidInput('send {"gpus": <whole number or null>}')
        if not self.caller.is_admin:  # required_scopes already says so; belt and braces
            raise Forbidden("only administrators set GPU quotas")
        self.context.gpu_allocator.set_quota(kind, name, body["gpus"])
        self.write_json({"kind": kind, "name": name, "gpus": body["gpus"]})

    async def delete(self, kind: str, name: str):
        self._check_kind(kind)
        self.context.gpu_allocator.set_quota(kind, name, None)
        self.set_status(204)
        self.finish()


class ServerGpusHandler(ApiHandler):
    """POST: devices for a user server, asked by the hub's spawner (its own token-only service,
    ``custom:mlops:spawner``), so GPU allocations live in the control plane's database only."""

    required_scopes = (roles.SPAWNER,)

    async def post(self):
        body = self.get_json_body()
        req = server_allocation_request(body)
        alloc = self.context.gpu_allocator
        if body.get("wait"):  # none free: wait in the GPU queue with jobs (core.jobs.queue)
            got = alloc.request_server(req.pop("owner"), **req)
            if isinstance(got, ServerRequest):
                if self.context.jobs is not None:
                    self.context.jobs.runner.wake()  # a place and a reason at once
                self.write_json({"owner": got.owner, "queued": True, "position": got.position,
                                 "reason": got.reason}, 202)
                return
            self.write_json({"owner": body["owner"], "gpus": [g.to_dict() for g in got]}, 201)
            return
        gpus = alloc.allocate("server", **req)
        self.write_json({"owner": req["owner"], "gpus": [g.to_dict() for g in gpus]}, 201)


class ServerGpuHandler(ApiHandler):
    """DELETE: give back the devices of one user server (``alice`` or ``alice/named``)."""

    required_scopes = (roles.SPAWNER,)

    async def delete(self, owner: str):
        self.write_json({"owner": owner,
                         "released": self.context.gpu_allocator.release("server", owner)})


class GpuAvailabilityHandler(ApiHandler):
    """GET ``?user=&group=&gpu_type=``: free devices and the quotas that apply to that user,
    for the spawn form (the hub's spawner)."""

    required_scopes = (roles.SPAWNER,)

    async def get(self):
        user = self.get_query_argument("user")
        groups = self.get_query_arguments("group")
        alloc = self.context.gpu_allocator
        body = alloc.availability(device_filter=self.get_query_argument("gpu_type", None))
        body["limits"] = [dict(zip(("kind", "name", "limit", "in_use"), q))
                          for q in alloc.limits_for(user, groups)]
        self.write_json(body)
