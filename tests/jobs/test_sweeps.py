"""Sweeps: Optuna drives trials that are real jobs; pruning shows in MLflow."""
from __future__ import annotations

import asyncio

import pytest

from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.core.jobs.sweeps import parse_space

from .conftest import caller

TRIAL = """
import time
from jupyter_mlops.job_runtime import params, report
x = 0.5
width = 2
p = params()
x, width = float(p["x"]), int(p["width"])
for step in range(6):
    # good x learn fast, bad x slowly: intermediate values rank trials like final ones
    report("score", x * width * (step + 1) / 6, step=step)
    time.sleep(0.35)
"""

SPACE = """
x: {type: float, low: 0.0, high: 1.0}
width: {type: categorical, choices: [1, 2]}
"""


@pytest.mark.asyncio
async def test_sweep_with_pruning_visible_in_mlflow(lab, mlflow_client):
    lab.write("alice", "trial.py", TRIAL)
    sweep = lab.sweeps.create(caller("alice"), {
        "path": "trial.py", "space": SPACE, "metric": "score", "direction": "maximize",
        "trials": 8, "parallel": 2, "sampler": "random", "pruner": "median", "seed": 3,
        "experiment": "sweep-test"})
    done = await lab.wait_group(lambda: lab.sweeps.get(caller("alice"), sweep["id"]),
                                timeout=150)
    assert done["state"] == "succeeded"
    trials = done["trials"]
    assert len(trials) == 8 and done["asked"] == 8
    states = [t["state"] for t in trials]
    assert "pruned" in states and "succeeded" in states, states
    best = max((t for t in trials if t["state"] == "succeeded"), key=lambda t: t["value"])
    assert done["best"]["value"] == pytest.approx(best["value"])
    assert done["best"]["params"] == best["params"]
    assert [h["best"] for h in done["history"]][-1] == pytest.approx(best["value"])
    # MLflow: a parent run with the best value, child runs, pruned ones tagged and KILLED
    parent = mlflow_client.get_run(done["parent_run_id"])
    assert parent.data.metrics["best_score"] == pytest.approx(best["value"])
    assert parent.info.status == "FINISHED"
    for t in trials:
        run = mlflow_client.get_run(t["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == done["parent_run_id"]
        if t["state"] == "pruned":
            assert run.data.tags["optuna.pruned"] == "true"
            assert run.info.status == "KILLED"
            assert len(mlflow_client.get_metric_history(t["run_id"], "score")) < 6
        else:
            assert run.info.status == "FINISHED"
    # Optuna's own view agrees
    study = lab.sweeps.study(done)
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    assert sorted(pruned) == sorted(t["number"] for t in trials if t["state"] == "pruned")


def test_invalid_search_spaces_are_refused():
    for space, why in [
        ("x: {type: float, low: 1, high: 0}", "must be below"),
        ("x: {type: gaussian}", "type must be"),
        ("x: {type: float, low: 0, high: 1, log: true}", "log scale needs low > 0"),
        ("x: {type: categorical, choices: []}", "non-empty list"),
        ("[1, 2", "not valid YAML"),
        ("just text", "must map parameter names"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            parse_space(space)


@pytest.mark.asyncio
async def test_sweep_refuses_wrongly_typed_space_and_unknown_file(lab):
    lab.write("alice", "t.py", "epochs = 3\n")
    alice = caller("alice")
    with pytest.raises(InvalidInput, match="parameter epochs of t.py is int"):
        lab.sweeps.create(alice, {"path": "t.py", "metric": "m",
                                  "space": {"epochs": {"type": "float", "low": 0.5,
                                                       "high": 2.0}}})
    with pytest.raises(InvalidInput, match="no script 'nope.py'"):
        lab.sweeps.create(alice, {"path": "nope.py", "metric": "m",
                                  "space": {"a": {"type": "int", "low": 1, "high": 3}}})
    with pytest.raises(InvalidInput, match="metric is required"):
        lab.sweeps.create(alice, {"path": "t.py",
                                  "space": {"a": {"type": "int", "low": 1, "high": 3}}})
    assert lab.sweeps.list(alice) == []


QUICK_TRIAL = """
import time
from jupyter_mlops.job_runtime import params, report
p = params()
time.sleep(0.8)
report("score", float(p["x"]), step=0)
"""


@pytest.mark.asyncio
async def test_sweep_resumes_after_a_control_plane_restart(quick_lab):
    lab = quick_lab
    lab.write("alice", "quick.py", QUICK_TRIAL)
    alice = caller("alice")
    sweep = lab.sweeps.create(alice, {
        "path": "quick.py", "space": "x: {type: float, low: 0.0, high: 1.0}",
        "metric": "score", "direction": "maximize", "trials": 6, "parallel": 2,
        "sampler": "random", "pruner": "none", "seed": 7})
    # Wait until some trials are told, then take the control plane away mid-sweep.
    await lab.wait_group(lambda: {"state": "told" if len(
        lab.sweeps.get(alice, sweep["id"])["told"]) >= 2 else "running"}, states=("told",))
    await lab.runner.stop()
    before = {j.trial_number: j for j in lab.jobs.store.list(sweep_id=sweep["id"])}
    told_before = list(lab.sweeps.get(alice, sweep["id"])["told"])
    assert 2 <= len(told_before) < 6
    await asyncio.sleep(1.5)  # trials running meanwhile finish while nobody watches
    await lab.restart()  # new runner, new Sweeps object: only the databases remain
    done = await lab.wait_group(lambda: lab.sweeps.get(alice, sweep["id"]), timeout=90)
    assert done["state"] == "succeeded"
    jobs = lab.jobs.store.list(sweep_id=sweep["id"])
    # Every trial ran exactly once: nothing told before the restart was run again.
    assert sorted(j.trial_number for j in jobs) == list(range(6))
    assert sorted(done["told"]) == list(range(6)) and done["asked"] == 6
    for n in told_before:
        again = next(j for j in jobs if j.trial_number == n)
        assert (again.id, again.finished_at) == (before[n].id, before[n].finished_at)
    study = lab.sweeps.study(done)
    assert len(study.trials) == 6
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    best = max(jobs, key=lambda j: j.metrics["score"])
    assert done["best"]["value"] == pytest.approx(best.metrics["score"])


def test_a_sweeps_trials_go_to_an_experiment_named_after_the_sweep():
    from jupyter_mlops.core.jobs.sweeps import parse_sweep

    space = {"lr": {"type": "float", "low": 0.001, "high": 0.1}}
    sweep = parse_sweep({"path": "train.py", "space": space, "metric": "val_map"})
    assert sweep["job"]["experiment"] == "train-sweep"  # not the script's own "train"
    named = parse_sweep({"path": "train.py", "space": space, "metric": "val_map",
                         "experiment": "lr search"})
    assert named["job"]["experiment"] == "lr search"
