"""Supervision of the servers that serve deployments: liveness probes, restart with backoff, and
the state users see.

Every ``probe_interval`` seconds (and at once when a request finds a server unreachable) the
:class:`Supervisor` asks the backend whether each deployment's serving server still runs and
answers ``/ping``:

- it answers: the server is ``running`` and the deployment may be ``ready``;
- it runs but does not answer: ``unresponsive`` (the deployment is not ``ready``; requests still
  go to it, a long batch may be what holds it); after ``unresponsive_after`` seconds it is killed
  and handled as stopped;
- it stopped (killed, crashed, out of memory): ``restarting``. Its route is withdrawn, so
  requests get a 503 saying why instead of a connection error, and the same version is started
  again after ``backoff`` seconds, then 2x, 4x ... up to ``backoff_max`` while attempts fail.

The deployment's audit log records each stop (``server_exited``), failed attempt
(``restart_failed``) and restart (``restarted``). A deployment's ``status`` only follows its
server's health while it is ``ready``, ``unresponsive`` or ``restarting``: a ``failed`` switch
or a version ``pending_approval`` keeps its status, while the server of the version that serves
is restarted all the same. A rollout under way replaces a stopped server itself (see
``Deployments._rollout``), so the supervisor leaves that deployment alone until it is done.

All times come from :mod:`..clock`; ``tick`` is the only real-time wait (how often due work is
looked for), so tests move the clock instead of sleeping through backoffs.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .. import clock
from .model import route_for

if TYPE_CHECKING:
    from .service import Deployments

log = logging.getLogger("jupyter_mlops.deployments")

# The statuses that say how the serving server is doing (the others say where a rollout is).
HEALTH_STATUS = {"running": "ready", "unresponsive": "unresponsive", "restarting": "restarting"}


@dataclass(frozen=True)
class SupervisionPolicy:
    """How often servers are probed and how restarts back off (seconds)."""

    probe_interval: float = 2.0
    probe_timeout: float = 5.0
    unresponsive_after: float = 60.0
    backoff: float = 1.0
    backoff_max: float = 60.0
    tick: float = 0.2


class SupervisedBackend(Protocol):
    """What a backend offers for supervision, besides ``start`` and ``stop``."""

    def exit_reason(self, instance: dict) -> str | None:
        """``None`` while the server runs, else why it ended ("killed by signal 9 (SIGKILL)")."""

    async def answers(self, instance: dict, timeout: float) -> bool:
        """Whether it answers ``/ping`` within ``timeout``."""

    async def kill(self, instance: dict) -> None:
        """Stop it at once (it hangs), and clean up after it."""

    def supervision(self) -> SupervisionPolicy:
        """The timing configured for this backend."""


@dataclass
class ServerHealth:
    """What the supervisor knows of one deployment's serving server."""

    instance: str  # the row's instance JSON this is about
    since: float  # when ``state`` began
    state: str = "running"  # running | unresponsive | restarting
    attempt: int = 0  # restart attempts for the current stop
    last_exit: str | None = None
    restarts: int = 0  # successful restarts since the control plane started
    next_probe: float = 0.0
    next_attempt: float | None = None
    down_since: float | None = None

    def public(self) -> dict:
        return {"state": self.state, "since": self.since, "attempt": self.attempt,
                "last_exit": self.last_exit, "restarts": self.restarts,
                "next_attempt_at": self.next_attempt, "summary": self.summary()}

    def summary(self) -> str:
        """``restarting, attempt 2, last exit: killed by signal 9 (SIGKILL)``."""
        parts = [self.state]
        if self.state == "restarting" and self.attempt:
            parts.append(f"attempt {self.attempt}")
        if self.last_exit:
            parts.append(f"last exit: {self.last_exit}")
        return ", ".join(parts)


class Supervisor:
    def __init__(self, deployments: "Deployments", policy: SupervisionPolicy):
        self.d = deployments
        self.policy = policy
        self.health: dict[str, ServerHealth] = {}
        self._restarts: dict[str, asyncio.Task] = {}
        self._probes: dict[str, asyncio.Task] = {}  # one at a time per deployment
        self._task: asyncio.Task | None = None

    # --- what others ask -----------------------------------------------------------------------

    def state(self, name: str) -> dict | None:
        h = self.health.get(name)
        return h.public() if h is not None else None

    def serving(self, name: str) -> bool:
        h = self.health.get(name)
        return h is None or h.state != "restarting"

    def reason(self, name: str) -> str | None:
        """Why requests to ``name`` fail now, if the supervisor knows."""
        h = self.health.get(name)
        if h is None or h.state == "running":
            return None
        return h.summary()

    def poke(self, name: str) -> None:
        """A request found the server unreachable: probe it now rather than at its turn."""
        h = self.health.get(name)
        if h is not None:
            h.next_probe = 0.0

    def forget(self, name: str) -> None:
        """The deployment is gone: stop restarting its server."""
        for tasks in (self._restarts, self._probes):
            task = tasks.pop(name, None)
            if task is not None:
                task.cancel()
        self.health.pop(name, None)

    # --- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        tasks = [t for t in [self._task, *self._restarts.values(), *self._probes.values()]
                 if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._restarts.clear()
        self._probes.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad pass must not end supervision
                log.exception("supervising model servers failed; trying again")
            await asyncio.sleep(self.policy.tick)

    async def tick(self) -> None:
        """One pass: start a probe of every server that is due (each in a task of its own, so
        a server that hangs delays no other)."""
        now = clock.now()
        rows = self.d.db.query("SELECT name, status, serving_version, instance FROM deployments"
                               " WHERE instance IS NOT NULL")
        for row in rows:
            name = row["name"]
            h = self.health.get(name)
            if h is None or h.instance != row["instance"]:
                # A rollout (or a restart) put a new server in place: a fresh record.
                h = self.health[name] = ServerHealth(
                    row["instance"], now, restarts=h.restarts if h else 0,
                    last_exit=h.last_exit if h else None)
            if name in self._restarts or name in self._probes or now < h.next_probe:
                continue
            h.next_probe = now + self.policy.probe_interval
            self._spawn(self._probes, name, self._probe(row, h))
        names = {r["name"] for r in rows}
        for name in [n for n in self.health if n not in names and n not in self._restarts]:
            del self.health[name]

    @staticmethod
    def _spawn(tasks: dict, name: str, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        tasks[name] = task

        def done(t):
            if tasks.get(name) is t:
                del tasks[name]
            if not t.cancelled() and t.exception() is not None:
                log.error("supervising deployment %s failed", name, exc_info=t.exception())
        task.add_done_callback(done)

    def _current(self, row: dict) -> dict | None:
        """The deployment's row, if its server is still the one ``row`` names."""
        now = self.d._row(row["name"])
        return now if now is not None and now["instance"] == row["instance"] else None

    async def _probe(self, row: dict, h: ServerHealth) -> None:
        backend = self.d.backend
        inst = json.loads(row["instance"])
        why = backend.exit_reason(inst)
        if why is None:
            ok = await backend.answers(inst, self.policy.probe_timeout)
            if (row := self._current(row)) is None:
                return  # replaced or deleted while we asked
            now = clock.now()
            if ok:
                if h.state != "running":
                    h.state, h.since = "running", now
                self._set_status(row, "running")  # also what an earlier control plane left
                return
            if h.state != "unresponsive":
                h.state, h.since = "unresponsive", now
                log.warning("deployment %s: its server does not answer", row["name"])
                self._set_status(row, "unresponsive")
                return
            if now - h.since < self.policy.unresponsive_after:
                return
            why = f"did not answer for {now - h.since:.0f} s, killed"
            await backend.kill(inst)
            if (row := self._current(row)) is None:
                return
        elif (row := self._current(row)) is None:
            return
        name, version = row["name"], row["serving_version"]
        route, dead = self.d.routes.get(name), route_for(backend, inst, version)
        if route is not None and (route.url, route.socket) == (dead.url, dead.socket):
            self.d.routes.pop(name, None)  # new requests: a 503 that says why
        event, switching = None, name in self.d._tasks
        if h.state != "restarting":  # reported once per stop
            h.state, h.since, h.last_exit, h.attempt = "restarting", clock.now(), why, 0
            h.down_since = h.since
            log.warning("deployment %s: the server of version %s stopped (%s)", name, version,
                        why)
            event = ("system", "server_exited", version, f"the server of version {version} "
                     f"{why}; " + ("the switch under way replaces it" if switching
                                   else "it is restarted"))
        if switching:
            # A rollout is under way: its new server takes over (if that one fails to load,
            # a later probe restarts this version).
            if event is not None:
                self.d._update(name, event)
            return
        self._set_status(row, "restarting", event)
        self._spawn(self._restarts, name, self._restart(row, inst, h))

    def _set_status(self, row: dict, state: str, event: tuple | None = None) -> None:
        status = row["status"]
        if status in HEALTH_STATUS.values() and status != HEALTH_STATUS[state]:
            status = HEALTH_STATUS[state]
            self.d._update(row["name"], event, status=status)
        elif event is not None:
            self.d._update(row["name"], event)
        row["status"] = status

    async def _sleep_until(self, when: float) -> None:
        while (left := when - clock.now()) > 0:
            await asyncio.sleep(min(self.policy.tick, left))

    async def _restart(self, row: dict, inst: dict, h: ServerHealth) -> None:
        """Start the stopped server's version again, backing off while attempts fail."""
        name, version = row["name"], row["serving_version"]
        backend, why = self.d.backend, h.last_exit
        await backend.stop(inst)  # reaps it; its socket and model copy go
        delay = self.policy.backoff
        while True:
            h.attempt += 1
            h.next_attempt = clock.now() + delay
            await self._sleep_until(h.next_attempt)
            h.next_attempt = None
            if self._current(row) is None:
                return  # deleted, or a rollout put another server in place
            try:
                model_uri = inst.get("model_uri") or await self.d.resolver.resolve(
                    self.d._row(name)["model_name"], version)
                new = await backend.start(name, version, model_uri)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # LoadFailed, the registry unavailable...
                delay = min(delay * 2, self.policy.backoff_max)
                h.last_exit = str(e)
                log.warning("deployment %s: restart attempt %d failed: %s", name, h.attempt, e)
                if self._current(row) is not None:
                    self.d._update(name, ("system", "restart_failed", version,
                                          f"attempt {h.attempt}: {e}; next attempt in "
                                          f"{delay:.0f} s"))
                continue
            if (now_row := self._current(row)) is None:
                await backend.stop(new)
                return
            self.d.routes[name] = route_for(backend, new, version)
            down = clock.now() - (h.down_since or clock.now())
            status = "ready" if now_row["status"] in HEALTH_STATUS.values() else \
                now_row["status"]
            new_json = json.dumps(new)
            self.d._update(name, ("system", "restarted", version,
                                  f"version {version} serves again after {h.attempt} "
                                  f"attempt(s), {down:.1f} s after its server stopped "
                                  f"({why})"), instance=new_json, status=status)
            self.health[name] = ServerHealth(new_json, clock.now(), restarts=h.restarts + 1,
                                             last_exit=why,
                                             next_probe=clock.now() + self.policy.probe_interval)
            log.info("deployment %s: version %s serves again (attempt %d)", name, version,
                     h.attempt)
            return
