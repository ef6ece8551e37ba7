"""Pipelines: steps run as jobs in dependency order; a failed step stops its dependents."""
from __future__ import annotations

import datetime as dt

import pytest

from jupyter_mlops.core import clock
from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.core.jobs.pipelines import next_fire, parse_cron, parse_pipeline

from .conftest import caller

PIPELINE = """
name: retrain
steps:
  - {name: prepare, run: prepare.py, params: {rows: 10}}
  - {name: train, run: train.py, needs: [prepare]}
  - {name: evaluate, run: evaluate.py, needs: [train]}
"""


@pytest.mark.asyncio
async def test_three_steps_with_a_failing_one(quick_lab):
    lab = quick_lab
    lab.write("alice", "prepare.py", "rows = 5\nopen('prepared.txt', 'w').write(str(rows))\n")
    lab.write("alice", "train.py",
              "rows = int(open('prepared.txt').read())\nraise SystemExit(f'diverged on {rows}')\n")
    lab.write("alice", "evaluate.py", "print('evaluating')\n")
    p = lab.pipelines.create(caller("alice"), {"spec": PIPELINE})
    done = await lab.wait_group(lambda: lab.pipelines.get(caller("alice"), p["id"]))
    steps = {s["name"]: s for s in done["steps"]}
    assert done["state"] == "failed"
    assert steps["prepare"]["state"] == "succeeded"
    assert steps["train"]["state"] == "failed" and "exited with status 1" in steps["train"]["reason"]
    assert steps["evaluate"]["state"] == "skipped" and steps["evaluate"]["job_id"] is None
    # order: train started only after prepare finished, with prepare's output
    prep, train = (lab.jobs.store.get(steps[s]["job_id"]) for s in ("prepare", "train"))
    assert train.started_at >= prep.finished_at
    assert (lab.root / "users" / "alice" / "prepared.txt").read_text() == "10"
    assert "diverged on 10" in lab.jobs.logs(caller("alice"), train.id)["text"]
    assert train.pipeline_id == p["id"] and train.step == "train"


@pytest.mark.asyncio
async def test_all_steps_succeed_in_order(quick_lab):
    lab = quick_lab
    for name in ("a", "b", "c", "d"):
        lab.write("alice", f"{name}.py", f"open('order.txt', 'a').write('{name}')\n")
    p = lab.pipelines.create(caller("alice"), {"spec": {"name": "diamond", "steps": [
        {"name": "a", "run": "a.py"}, {"name": "b", "run": "b.py", "needs": ["a"]},
        {"name": "c", "run": "c.py", "needs": ["a"]},
        {"name": "d", "run": "d.py", "needs": ["b", "c"]}]}})
    done = await lab.wait_group(lambda: lab.pipelines.get(caller("alice"), p["id"]))
    assert done["state"] == "succeeded"
    order = (lab.root / "users" / "alice" / "order.txt").read_text()
    assert order[0] == "a" and order[-1] == "d" and sorted(order) == list("abcd")


@pytest.mark.asyncio
async def test_bad_pipelines_are_refused(quick_lab):
    lab = quick_lab
    lab.write("alice", "x.py", "n = 1\n")
    alice = caller("alice")
    for spec, why in [
        ("steps: []", "list of 1 to"),
        ("steps:\n- {name: a, run: x.py, needs: [b]}", "unknown step 'b'"),
        ("steps:\n- {name: a, run: x.py, needs: [b]}\n- {name: b, run: x.py, needs: [a]}",
         "cycle"),
        ("steps:\n- {name: a, run: x.py}\n- {name: a, run: x.py}", "appears twice"),
        ("steps:\n- {name: a, run: missing.ipynb}", "no notebook 'missing.ipynb'"),
        ("steps:\n- {name: a, run: x.py, params: {n: two}}", "parameter n of x.py is int"),
        ("schedule: 'every day'\nsteps:\n- {name: a, run: x.py}", "5 fields"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            lab.pipelines.create(alice, {"spec": spec})
    assert lab.pipelines.list(alice) == []


@pytest.mark.asyncio
async def test_scheduled_pipeline_starts_runs_at_cron_times(quick_lab):
    lab = quick_lab
    lab.write("alice", "x.py", "print('nightly')\n")
    mc = clock.ManualClock(dt.datetime(2026, 11, 23, 2, 59, tzinfo=dt.timezone.utc).timestamp())
    clock.set_clock(mc)
    try:
        p = lab.pipelines.create(caller("alice"), {"spec": "name: nightly\nschedule: '0 3 * * *'"
                                                   "\nsteps:\n- {name: a, run: x.py}\n"})
        assert p["state"] == "scheduled"
        assert p["next_at"] == mc.t + 60
        await lab.pipelines.tick()
        assert len(lab.pipelines.list(caller("alice"))) == 1  # not yet
        mc.advance(61)
        await lab.pipelines.tick()
        runs = [x for x in lab.pipelines.list(caller("alice")) if x["from_schedule"] == p["id"]]
        assert len(runs) == 1
        assert lab.pipelines.get(caller("alice"), p["id"])["next_at"] == mc.t - 1 + 24 * 3600
    finally:
        clock.set_clock(None)
    await lab.wait_group(lambda: lab.pipelines.get(caller("alice"), runs[0]["id"]))


def test_cron_parsing():
    t = dt.datetime(2026, 11, 23, 19, 40, tzinfo=dt.timezone.utc).timestamp()  # a Monday
    nxt = lambda e: dt.datetime.fromtimestamp(next_fire(e, t), dt.timezone.utc)  # noqa: E731
    assert nxt("*/15 * * * *").minute == 45
    assert nxt("0 3 * * 7").day == 29  # Sunday
    assert nxt("30 2 1 * *") == dt.datetime(2026, 12, 1, 2, 30, tzinfo=dt.timezone.utc)
    for bad in ("61 * * * *", "* * * *", "a b c d e"):
        with pytest.raises(InvalidInput):
            parse_cron(bad)
    assert parse_pipeline("steps:\n- {name: a, run: x.py}")["name"] == "pipeline"
