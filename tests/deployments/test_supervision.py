"""The supervisor's rules on their own: a stand-in backend whose servers stop, hang or fail to
load on command, and the clock seam moved by hand (so backoffs are exact, and nobody waits).

The real thing (real servers killed with SIGKILL behind the real platform) is in
``test_self_healing.py``.
"""
from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import pytest_asyncio

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.deployments import Deployments, LoadFailed, SupervisionPolicy
from jupyter_mlops.core.errors import Unavailable
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import ADMIN, Caller
from tests.fixtures import until_async

ADMIN_CALLER = Caller("admin", scopes=frozenset({ADMIN}))


class StandInServers:
    """Servers that are only entries in a dict. Not KeyError on unknown ones: a bug in the
    stand-in must not look like a server that stopped."""

    def __init__(self):
        self.pids = itertools.count(100)
        self.exits: dict[int, str] = {}  # pid -> why it ended
        self.hung: set[int] = set()
        self.failing: dict[str, int] = {}  # version -> starts that fail before one works
        self.started: list[tuple[str, int]] = []
        self.stopped: list[int] = []

    async def start(self, deployment, version, model_uri):
        await asyncio.sleep(0)
        if self.failing.get(version):
            self.failing[version] -= 1
            raise LoadFailed("the model server exited with status 3", "Traceback ...")
        pid = next(self.pids)
        self.started.append((version, pid))
        return {"pid": pid, "version": version, "model_uri": model_uri}

    async def stop(self, instance):
        self.stopped.append(instance["pid"])
        self.exits.setdefault(instance["pid"], "stopped")

    async def kill(self, instance):
        self.exits[instance["pid"]] = "killed by signal 9 (SIGKILL)"
        await self.stop(instance)

    def exit_reason(self, instance):
        return self.exits.get(instance["pid"])

    async def answers(self, instance, timeout):
        pid = instance["pid"]
        return pid not in self.exits and pid not in self.hung

    async def alive(self, instance):
        return await self.answers(instance, 1.0)

    def url(self, instance):
        return f"http://stand-in/{instance['pid']}"

    def replicas(self, instance):
        return 1

    def supervision(self):
        return SupervisionPolicy(probe_interval=1.0, probe_timeout=1.0, unresponsive_after=10.0,
                                 backoff=1.0, backoff_max=4.0, tick=0.005)


class Resolver:
    async def resolve(self, model_name, version):
        if version == "9":
            from jupyter_mlops.core.errors import NotFound

            raise NotFound(f"no version {version}")
        return f"/models/{model_name}/{version}"


@pytest.fixture
def manual_clock():
    c = clock.ManualClock()
    clock.set_clock(c)
    yield c
    clock.set_clock(None)


@pytest_asyncio.fixture
async def lab(tmp_path, manual_clock):
    db = Database(f"sqlite:///{tmp_path / 'control.sqlite'}")
    servers = StandInServers()
    deployments = Deployments(db, Projects(db), servers, Resolver())
    yield deployments, servers, db
    await deployments.close()


async def until(check, what: str, timeout: float = 5.0):
    """:func:`~tests.fixtures.until_async` polling often (the supervisor's tasks run meanwhile
    and a manual clock moves in small steps)."""
    return await until_async(check, timeout, what, every=0.005)


def status(deployments, name="lr"):
    return deployments.get(ADMIN_CALLER, name)


def actions(deployments, name="lr"):
    return [e["action"] for e in deployments.events(ADMIN_CALLER, name)]


async def deployed(deployments, clk, version="1"):
    await deployments.create(ADMIN_CALLER, "lr", "lr", version)
    await until(lambda: status(deployments)["status"] == "ready", "ready")
    clk.advance(0.1)
    await deployments.recover()  # as at a control plane start: supervision begins
    return json.loads(deployments._row("lr")["instance"])


@pytest.mark.asyncio
async def test_a_stopped_server_is_restarted_with_backoff(lab, manual_clock):
    deployments, servers, _ = lab
    first = await deployed(deployments, manual_clock)

    servers.exits[first["pid"]] = "killed by signal 9 (SIGKILL)"
    servers.failing["1"] = 3  # the next three starts fail: backoff 1, 2, 4, then the cap 4
    manual_clock.advance(1.0)  # its probe is due
    await until(lambda: status(deployments)["status"] == "restarting", "restarting")
    await until(lambda: status(deployments)["server"]["attempt"] == 1, "a first attempt planned")
    dep = status(deployments)
    assert dep["replicas"] == 0 and dep["serving_version"] == "1"
    assert dep["server"]["summary"] == "restarting, attempt 1, last exit: killed by signal 9 " \
                                       "(SIGKILL)"
    with pytest.raises(Unavailable, match=r"does not serve right now \(restarting, attempt 1, "
                                          r"last exit: killed by signal 9"):
        deployments.authorize("lr", caller=ADMIN_CALLER)

    due = [dep["server"]["next_attempt_at"]]
    for attempt in (2, 3, 4):
        manual_clock.advance(due[-1] - clock.now())
        await until(lambda: status(deployments)["server"]["attempt"] == attempt,
                    f"attempt {attempt}")
        await until(lambda: status(deployments)["server"]["next_attempt_at"] is not None,
                    "a next attempt planned")
        due.append(status(deployments)["server"]["next_attempt_at"])
    assert [b - a for a, b in zip(due, due[1:])] == pytest.approx([2.0, 4.0, 4.0])  # capped
    assert servers.started == [("1", first["pid"])]  # nothing started yet
    manual_clock.advance(due[-1] - clock.now())
    await until(lambda: status(deployments)["status"] == "ready", "ready again")

    dep = status(deployments)
    again = json.loads(deployments._row("lr")["instance"])
    assert servers.started[-1] == ("1", again["pid"]) and again["pid"] != first["pid"]
    assert dep["replicas"] == 1 and dep["server"]["state"] == "running"
    assert dep["server"]["restarts"] == 1
    assert dep["server"]["last_exit"] == "killed by signal 9 (SIGKILL)"
    assert deployments.authorize("lr", caller=ADMIN_CALLER).url == f"http://stand-in/{again['pid']}"
    log = deployments.events(ADMIN_CALLER, "lr")
    assert [e["action"] for e in log][2:] == ["server_exited", "restart_failed",
                                              "restart_failed", "restart_failed", "restarted"]
    assert all(e["actor"] == "system" and e["model_version"] == "1" for e in log[2:])
    assert "killed by signal 9" in log[2]["detail"]
    assert [e["detail"].rsplit("next attempt in ", 1)[1] for e in log[3:6]] == \
        ["2 s", "4 s", "4 s"]
    assert "after 4 attempt(s)" in log[6]["detail"]


@pytest.mark.asyncio
async def test_an_unresponsive_server_is_not_ready_and_killed_after_a_while(lab, manual_clock):
    deployments, servers, _ = lab
    first = await deployed(deployments, manual_clock)
    servers.hung.add(first["pid"])
    manual_clock.advance(1.0)
    await until(lambda: status(deployments)["status"] == "unresponsive", "unresponsive")
    assert status(deployments)["replicas"] == 1  # it runs; requests still try it
    assert first["pid"] not in servers.exits
    servers.hung.clear()  # a long batch ended: it answers again
    manual_clock.advance(1.0)
    await until(lambda: status(deployments)["status"] == "ready", "ready again")

    servers.hung.add(first["pid"])
    for _ in range(12):  # probes every second; killed once 10 s without an answer
        manual_clock.advance(1.0)
        await asyncio.sleep(0.03)
    await until(lambda: first["pid"] in servers.exits, "killed")
    assert status(deployments)["server"]["last_exit"].startswith("did not answer for 1")
    manual_clock.advance(1.0)
    await until(lambda: status(deployments)["status"] == "ready", "restarted")
    assert "restarted" in actions(deployments)


@pytest.mark.asyncio
async def test_a_failed_switch_then_a_crash_still_serves_the_old_version(lab, manual_clock,
                                                                        tmp_path):
    """Crash consistency of switches: after a switch whose version failed to load, the
    platform goes down (the old version's server with it) and comes back: the old version
    serves again and the deployment still says the switch failed (it used to end
    ``starting`` with nothing serving)."""
    deployments, servers, db = lab
    first = await deployed(deployments, manual_clock)
    servers.failing["2"] = 1
    await deployments.switch(ADMIN_CALLER, "lr", "2")
    await until(lambda: status(deployments)["status"] == "failed", "failed")
    await deployments.close()  # the control plane stops ...
    servers.exits[first["pid"]] = "exited (its exit status is unknown)"  # ... and the server

    again = Deployments(db, Projects(db), servers, Resolver())  # the control plane restarts
    try:
        await again.recover()
        await until(lambda: (again.get(ADMIN_CALLER, "lr")["server"] or {}).get("attempt") == 1,
                    "a restart planned")
        manual_clock.advance(1.0)
        await until(lambda: json.loads(again._row("lr")["instance"])["pid"] != first["pid"],
                    "restarted")
        dep = again.get(ADMIN_CALLER, "lr")
        assert dep["status"] == "failed" and dep["serving_version"] == "1"
        assert "version 1 keeps serving" in dep["message"]
        assert again.authorize("lr", caller=ADMIN_CALLER).version == "1"
        assert servers.started[-1][0] == "1"
    finally:
        await again.close()


@pytest.mark.asyncio
async def test_a_server_that_stops_during_a_switch_leaves_the_new_version(lab, manual_clock):
    """The old version's server stops while the new one loads: the rollout, not a restart of
    the old version, puts a server in place."""
    deployments, servers, _ = lab
    first = await deployed(deployments, manual_clock)
    gate = asyncio.Event()
    start = servers.start

    async def slow_start(deployment, version, model_uri):
        if version == "2":
            await gate.wait()
        return await start(deployment, version, model_uri)

    servers.start = slow_start
    await deployments.switch(ADMIN_CALLER, "lr", "2")
    servers.exits[first["pid"]] = "killed by signal 9 (SIGKILL)"
    manual_clock.advance(1.0)
    await until(lambda: "server_exited" in actions(deployments), "noticed")
    with pytest.raises(Unavailable):
        deployments.authorize("lr", caller=ADMIN_CALLER)
    assert status(deployments)["status"] == "updating"
    gate.set()
    await until(lambda: status(deployments)["status"] == "ready", "ready")
    assert status(deployments)["serving_version"] == "2"
    assert [v for v, _ in servers.started] == ["1", "2"]  # the old version was not restarted


@pytest.mark.asyncio
async def test_a_status_left_by_an_earlier_control_plane_follows_the_server(lab, manual_clock):
    """``unresponsive`` stored by a control plane that then stopped: the next one's first
    probe that gets an answer says ``ready`` again."""
    deployments, servers, db = lab
    await deployed(deployments, manual_clock)
    await deployments.close()
    deployments._update("lr", status="unresponsive")
    again = Deployments(db, Projects(db), servers, Resolver())
    try:
        await again.recover()
        await until(lambda: again.get(ADMIN_CALLER, "lr")["status"] == "ready", "ready")
        assert "server_exited" not in actions(again)
    finally:
        await again.close()
