"""Idle GPU servers: the rule in force, the nudge, "keep it" and the release, with a movable
clock and simulated devices (core.gpu_culling over the real allocator and usage ledger)."""
from __future__ import annotations

import pytest

from jupyter_mlops.core import clock
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import NotFound
from jupyter_mlops.core.gpu_allocation import GpuAllocator
from jupyter_mlops.core.gpu_culling import CullPolicy, GpuCuller, idle_message
from jupyter_mlops.core.gpus import StaticInventory
from jupyter_mlops.core.roles import Caller
from jupyter_mlops.core.usage import UsageLedger

MIN = 60.0
POLICY = CullPolicy(60, 15, "default")


@pytest.fixture
def world(tmp_path):
    c = clock.ManualClock()
    clock.set_clock(c)
    db = Database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield c, db
    clock.set_clock(None)
    db.dispose()


def plan(culler, alloc, ledger, activity=None, policy=POLICY):
    reading = alloc.inventory.read()
    ledger.observe(reading.gpus)
    return {s.owner: s for s in culler.plan(alloc.holders(), reading, ledger.zero_since(),
                                            activity or {}, lambda owner, groups: policy)}


def test_gpu_rule_nudges_then_releases_and_keep_restarts_the_clock(world):
    c, db = world
    alloc = GpuAllocator(db, StaticInventory([{"name": "A100", "utilization_pct": 0}] * 2))
    ledger, culler = UsageLedger(db), GpuCuller(db)
    alloc.allocate("server", "ann", user="ann", count=1)
    alloc.allocate("job", "7", user="ben", count=1)  # jobs are never culled
    s = plan(culler, alloc, ledger)
    assert list(s) == ["ann"] and s["ann"].rule == "gpu-utilisation" and s["ann"].step == ""
    c.advance(44 * MIN)
    assert plan(culler, alloc, ledger)["ann"].step == ""
    c.advance(1 * MIN)
    s = plan(culler, alloc, ledger)["ann"]
    assert (s.step, s.idle_minutes) == ("warn", 45.0)
    assert idle_message(45, 15) == ("your GPU has been idle 45 min; it will be released in "
                                    "15 min unless you keep it")
    culler.warned("ann")
    assert plan(culler, alloc, ledger)["ann"].step == ""  # one nudge, not one per round
    # another person cannot keep ann's server; ann can, and the clock starts again
    with pytest.raises(NotFound):
        culler.keep(Caller("ben"), "ann", alloc.holders())
    culler.keep(Caller("ann"), "ann", alloc.holders())
    c.advance(50 * MIN)
    s = plan(culler, alloc, ledger)["ann"]
    assert (s.step, s.idle_minutes, s.warned) == ("warn", 50.0, False)
    c.advance(10 * MIN)
    s = plan(culler, alloc, ledger)["ann"]
    assert s.step == "release"
    culler.released(s)
    assert [(r["owner"], r["rule"], r["idle_minutes"]) for r in culler.culls()] == [
        ("ann", "gpu-utilisation", 60.0)]


def test_busy_gpu_is_not_idle_and_unknown_utilisation_uses_activity(world):
    c, db = world
    busy = GpuAllocator(db, StaticInventory([{"name": "A100", "utilization_pct": 80}]))
    ledger, culler = UsageLedger(db), GpuCuller(db)
    busy.allocate("server", "cid", user="cid", count=1)
    c.advance(120 * MIN)
    s = plan(culler, busy, ledger)["cid"]
    assert (s.rule, s.idle_minutes, s.step) == ("gpu-utilisation", None, "")
    # simulated devices without a utilisation reading: the hub's last activity decides
    unknown = GpuAllocator(db, StaticInventory([{"name": "Simulated"}]))
    last = c() - 61 * MIN
    s = plan(culler, unknown, ledger, activity={"cid": last})["cid"]
    assert (s.rule, s.step) == ("activity", "release")
    # no activity known at all: no idle clock, nothing released on a guess
    s = plan(culler, unknown, ledger, activity={})["cid"]
    assert (s.rule, s.idle_minutes, s.step) == ("activity", None, "")
    # exempt (policy 0): listed, never released
    s = plan(culler, unknown, ledger, {"cid": last}, CullPolicy(0, 15, "exempt user cid"))["cid"]
    assert (s.step, s.policy) == ("", "exempt user cid")


def test_policy_per_profile_group_and_exemptions(world):
    from types import SimpleNamespace

    from traitlets.config import Config

    from jupyter_mlops.service.gpu_reclaim import GpuCulling

    c = Config()
    c.GpuCulling.idle_minutes = 60
    c.GpuCulling.idle_minutes_by_profile = {"a100-2": 20}
    c.GpuCulling.idle_minutes_by_group = {"students": 30, "phd": 90}
    c.GpuCulling.exempt_users = ["dora"]
    c.GpuCulling.exempt_groups = ["debug"]
    culling = GpuCulling(SimpleNamespace(db=world[1]), config=c)
    culling._profiles["eve"] = "a100-2"
    policy = culling.policy_for
    assert policy("ann", ()) == CullPolicy(60, 15, "default")
    assert policy("ann", ("students",)) == CullPolicy(30, 15, "group students")
    assert policy("ann", ("students", "phd")).minutes == 90  # the most generous group
    assert policy("eve", ("students",)) == CullPolicy(20, 15, "profile a100-2")
    assert policy("dora", ()).minutes == 0 and policy("fay", ("debug",)).minutes == 0
