"""Benchmark: the job runner's latency and overhead, and a sweep vs plain Optuna.

    .venv/bin/python benchmarks/jobs.py [--jobs 10] [--trials 12]

Runs the control plane's real job machinery (store, queue, runner, local process backend,
Optuna sweeps) in this process over a temporary SQLite database, without MLflow tracking, so the
figures are the platform's own cost:

1. submit-to-running latency: from ``Jobs.submit`` returning to the job's process having
   started (state ``running``, pid recorded), and to the job's first output line.
2. control plane overhead per job: wall time of a trivial script as a job (submit to
   ``succeeded``) minus the same script run directly with ``python script.py``, the two
   alternating job by job; medians and their ratio.
3. sweep scheduling overhead: the same trials (a 0.3 s objective) run by plain Optuna in one
   process vs by a sweep with ``parallel=1`` (each trial a job), in alternating rounds
   (``--rounds``); the ratio of the median wall times.

Writes ``benchmarks/results/jobs.json``.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Keep this directory off sys.path (a sibling module could shadow a standard one).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_mlops.backends.jobs_local import LocalJobBackend  # noqa: E402
from jupyter_mlops.core import roles  # noqa: E402
from jupyter_mlops.core.db import Database  # noqa: E402
from jupyter_mlops.core.gpu_allocation import GpuAllocator  # noqa: E402
from jupyter_mlops.core.gpus import StaticInventory  # noqa: E402
from jupyter_mlops.core.jobs import JobRunner, Jobs, JobStore  # noqa: E402
from jupyter_mlops.core.jobs.sweeps import Sweeps  # noqa: E402
from jupyter_mlops.core.jobs.tracking import FixedTokenIssuer  # noqa: E402
from jupyter_mlops.core.projects import Projects  # noqa: E402
from jupyter_mlops.core.roles import Caller  # noqa: E402

ALICE = Caller(name="alice", scopes=frozenset({roles.USE}))
OBJECTIVE_SECONDS = 0.3
TRIAL = f"""
import time
from jupyter_mlops.job_runtime import report
x = 0.5
time.sleep({OBJECTIVE_SECONDS})
report("score", -(x - 0.3) ** 2)
"""


def build(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{root / 'mlops.sqlite'}")
    alloc = GpuAllocator(db, StaticInventory([{"name": "sim"}] * 2))
    jobs = Jobs(JobStore(db), Projects(db), alloc, root / "users", root / "jobs")
    runner = JobRunner(jobs, LocalJobBackend(grace_seconds=2), FixedTokenIssuer(),
                       tick_seconds=1.0, max_cpu_jobs=4)
    sweeps = Sweeps(jobs, f"sqlite:///{root / 'optuna.sqlite'}")
    runner.groups.append(sweeps)
    (root / "users" / "alice").mkdir(parents=True)
    return jobs, runner, sweeps


async def wait_state(jobs, job_id, states, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.store.get(job_id)
        if job.state in states:
            return job
        await asyncio.sleep(0.005)
    raise RuntimeError(f"job {job_id} stuck in {jobs.store.get(job_id).state}")


async def latency_and_overhead(root: Path, n: int) -> dict:
    jobs, runner, _ = build(root)
    ws = root / "users" / "alice"
    (ws / "hello.py").write_text("print('hello', flush=True)\n")
    runner.start()
    to_running, to_output, job_wall, direct = [], [], [], []
    for _ in range(n):  # a job, then the same script run directly: load hits both alike
        t0 = time.perf_counter()
        job = jobs.submit(ALICE, {"path": "hello.py"})
        await wait_state(jobs, job.id, ("running", "succeeded", "failed"))
        to_running.append(time.perf_counter() - t0)
        log = jobs.job_dir(job.id) / "output.log"
        while "hello" not in (log.read_text() if log.exists() else ""):
            await asyncio.sleep(0.002)
        to_output.append(time.perf_counter() - t0)
        done = await wait_state(jobs, job.id, ("succeeded", "failed"))
        assert done.state == "succeeded", done.reason
        job_wall.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ws / "hello.py")], check=True, capture_output=True,
                       cwd=ws)
        direct.append(time.perf_counter() - t0)
    await runner.stop()
    med = statistics.median
    return {
        "submit_to_running_s": {"median": med(to_running), "max": max(to_running)},
        "submit_to_first_output_s": {"median": med(to_output), "max": max(to_output)},
        "job_wall_s": med(job_wall), "direct_python_s": med(direct),
        "overhead_per_job_s": med(job_wall) - med(direct),
    }


def plain_optuna(trials: int) -> float:
    """Seconds for the trials in one process with Optuna alone (the peer)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(OBJECTIVE_SECONDS)
        return -(x - 0.3) ** 2

    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - t0


def sweep_vs_optuna(root: Path, trials: int, rounds: int) -> dict:
    """Alternating rounds: plain Optuna, then the same trials as a sweep of jobs."""
    plain, ours = [], []
    for i in range(rounds):
        plain.append(plain_optuna(trials))
        ours.append(asyncio.run(one_sweep(root / f"round-{i}", trials)))
        print(f"sweep round {i + 1}: plain Optuna {plain[-1]:.2f} s, sweep {ours[-1]:.2f} s",
              flush=True)
    med = statistics.median
    return {"trials": trials, "objective_s": OBJECTIVE_SECONDS, "rounds": rounds,
            "plain_optuna_s": med(plain), "sweep_s": med(ours), "ratio": med(ours) / med(plain),
            "overhead_per_trial_s": (med(ours) - med(plain)) / trials,
            "runs": {"plain": plain, "sweep": ours}}


async def one_sweep(root: Path, trials: int) -> float:
    jobs, runner, sweeps = build(root)
    (root / "users" / "alice" / "trial.py").write_text(TRIAL)
    runner.tick_seconds = 0.2
    runner.start()
    t0 = time.perf_counter()
    s = sweeps.create(ALICE, {"path": "trial.py", "metric": "score", "direction": "maximize",
                              "trials": trials, "parallel": 1, "sampler": "random",
                              "pruner": "none", "seed": 1,
                              "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}}})
    while sweeps.get(ALICE, s["id"])["state"] == "running":
        await asyncio.sleep(0.01)
    ours = time.perf_counter() - t0
    await runner.stop()
    done = sweeps.get(ALICE, s["id"])
    assert done["state"] == "succeeded" and len(done["trials"]) == trials, done["state"]
    return ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of plain Optuna and the sweep (medians compared)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        lat = asyncio.run(latency_and_overhead(Path(d) / "a", a.jobs))
        sw = sweep_vs_optuna(Path(d) / "b", a.trials, a.rounds)
    print(f"{'medians':38}{'jupyter-mlops':>16}{'peer':>14}{'ratio':>8}")
    print(f"{'submit -> running (median, s)':38}{lat['submit_to_running_s']['median']:>16.3f}"
          f"{'goal < 1':>14}")
    print(f"{'submit -> first output (median, s)':38}"
          f"{lat['submit_to_first_output_s']['median']:>16.3f}")
    print(f"{'trivial job wall vs python script (s)':38}{lat['job_wall_s']:>16.3f}"
          f"{lat['direct_python_s']:>14.3f}{lat['job_wall_s'] / lat['direct_python_s']:>8.1f}")
    print(f"{'control plane overhead per job (s)':38}{lat['overhead_per_job_s']:>16.3f}")
    print(f"{f'sweep of {a.trials} trials vs plain Optuna (s)':38}{sw['sweep_s']:>16.2f}"
          f"{sw['plain_optuna_s']:>14.2f}{sw['ratio']:>8.2f}")
    print(f"{'scheduling overhead per trial (s)':38}{sw['overhead_per_trial_s']:>16.3f}")
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "jobs.json").write_text(json.dumps({"latency": lat, "sweep": sw}, indent=1))


if __name__ == "__main__":
    main()
