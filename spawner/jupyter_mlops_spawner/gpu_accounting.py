"""Where the spawner gets GPUs for a user server: the control plane, which owns every allocation.

:class:`ControlPlaneGpus` asks the control plane's API with the token of the hub's
``mlops-spawner`` service (scope ``custom:mlops:spawner``), so the hub keeps no GPU state and
the hub and the control plane each own their database, on one machine as on Kubernetes.

Failures are ``core.errors`` (a quota is a 403, no free device a 409, an unreachable control
plane a 503 ``Unavailable``), which the spawner words for the spawn page.
"""
from __future__ import annotations

import asyncio
import logging

from jupyter_mlops.client import AsyncControlPlane
from jupyter_mlops.core.errors import MlopsError, Unavailable
from jupyter_mlops.core.gpu_allocation import NoGpuFree
from jupyter_mlops.core.gpus import Gpu

log = logging.getLogger("jupyter_mlops_spawner")


class ControlPlaneGpus:
    """GPU accounting over the control plane's API."""

    def __init__(self, url: str, token: str, wait_seconds: float = 15.0):
        self._client = AsyncControlPlane(url, token, timeout=10.0)
        self.wait_seconds = wait_seconds
        self._pending_release: dict[str, asyncio.Task] = {}

    async def _call(self, method, *args, **kw):
        """``method`` of the client; an unreachable control plane (restarting with the hub) is
        retried for ``wait_seconds``, then the spawn fails closed with the reason."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while True:
            try:
                return await method(*args, **kw)
            except Unavailable:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.5)
            except MlopsError as e:  # the control plane's own words, as the spawn page shows
                prefix = f"{self._client.name}: "
                if not e.message.startswith(prefix):
                    raise
                raise type(e)(e.message[len(prefix):]) from None

    async def allocate(self, owner: str, *, user: str, count: int, groups=(),
                       gpu_type: str | None = None) -> list[Gpu]:
        pending = self._pending_release.pop(owner, None)
        if pending:  # a late retry must not free what is handed out now
            pending.cancel()
        # A start means this server is not running: whatever it held before is stale.
        await self._call(self._client.release_server, owner)
        gpus = await self._call(self._client.allocate_server, owner, user=user, count=count,
                                groups=groups, gpu_type=gpu_type)
        return [Gpu(**g) for g in gpus]

    async def wait_for(self, owner: str, *, user: str, count: int, groups=(),
                       gpu_type: str | None = None, on_wait=None, timeout: float = 1800,
                       poll_seconds: float = 2.0) -> list[Gpu]:
        """As :meth:`allocate`, but with no GPU free the server waits in the control plane's
        GPU queue (fair share with jobs) until a pass grants it devices; ``on_wait(answer)``
        gets each ``{"position", "reason"}``. After ``timeout`` seconds it leaves the queue and
        fails with the last reason."""
        pending = self._pending_release.pop(owner, None)
        if pending:
            pending.cancel()
        await self._call(self._client.release_server, owner)  # stale devices, stale place
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = await self._call(self._client.request_server, owner, user=user, count=count,
                                   groups=groups, gpu_type=gpu_type)
            if "gpus" in got:
                return [Gpu(**g) for g in got["gpus"]]
            if on_wait:
                on_wait(got)
            if loop.time() >= deadline:
                await self.release(owner)
                raise NoGpuFree(f"no GPU within {timeout:.0f} s: {got.get('reason', '')}")
            await asyncio.sleep(poll_seconds)

    async def release(self, owner: str) -> None:
        """Give the devices back; an unreachable control plane (the hub starting before it, or
        it restarting) gets the release later, retried in the background until it answers."""
        try:
            await self._client.release_server(owner)
        except Unavailable as e:
            log.warning("GPUs of server %s not released yet (%s); retrying", owner, e)
            task = asyncio.ensure_future(self._release_later(owner))
            self._pending_release[owner] = task
            task.add_done_callback(lambda t: self._pending_release.get(owner) is t
                                   and self._pending_release.pop(owner))

    async def _release_later(self, owner: str) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._client.release_server(owner)
                return
            except Unavailable:
                delay = min(delay * 2, 60.0)
            except MlopsError as e:
                log.error("Releasing the GPUs of server %s failed: %s", owner, e)
                return

    async def availability(self, user: str, groups=(), gpu_type: str | None = None) -> dict:
        return await self._client.availability(user, groups, gpu_type)

    async def user_quota(self, user: str) -> int | None:
        limits = (await self.availability(user))["limits"]
        return next((q["limit"] for q in limits if q["kind"] == "user"), None)

