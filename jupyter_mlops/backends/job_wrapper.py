"""The process a job runs in: ``python -m jupyter_mlops.backends.job_wrapper JOB_DIR``.

It is the same on every backend (a local process group or a Kubernetes pod): read
``launch.json``, record the lock of its environment (and for "rerun exactly" rebuild the
locked environment when this one differs, :mod:`.job_environment`), open the job's MLflow run
(code snapshot, parameters, dataset version, environment lock, seed), run the notebook with papermill (writing cell progress) or the script, and leave
``exit.json`` with the outcome and the run's final metrics. The control plane only reads files,
so it can be restarted meanwhile and re-attach. A ``SIGTERM`` (cancel, or pruning when the file
``prune`` exists) ends the MLflow run as KILLED before exiting.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM (a BaseException so user code cannot swallow it)."""


# Runs a script with its parameters injected the way papermill does for notebooks: each
# top-level assignment of a literal to a parameter's name (``lr = 0.01``) gets the job's value.
# Line numbers stay those of the file, so tracebacks point at the user's code.
SCRIPT_BOOT = """
import ast, json, os, sys
path = sys.argv[1]
sys.argv = sys.argv[1:]
params = json.loads(os.environ.get("MLOPS_PARAMS") or "{}")
tree = ast.parse(open(path).read(), filename=path)
for node in tree.body:
    if (isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name) and node.targets[0].id in params):
        try:
            ast.literal_eval(node.value)
        except ValueError:
            continue
        node.value = ast.copy_location(
            ast.parse(repr(params[node.targets[0].id]), mode="eval").body, node.value)
ast.fix_missing_locations(tree)
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
g = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
exec(compile(tree, path, "exec"), g)
"""


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # readers never see half a file


def reported_metrics(job_dir: Path) -> dict:
    """The last value of each metric the job ``report()``ed (works without MLflow too)."""
    from jupyter_mlops.core.jobs.jobfiles import read_untrusted

    out = {}
    # The job's own code wrote it: whatever it is (a FIFO, say), it must not hang the outcome.
    for line in (read_untrusted(job_dir / "report.jsonl") or "").splitlines():
        try:
            r = json.loads(line)
            out[r["name"]] = float(r["value"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def pip_freeze(lock: str) -> str:
    """The lock as ``pip freeze`` writes it (without the python line and the sources)."""
    return "".join(line.split(" # from ")[0] + "\n" for line in lock.splitlines()
                   if line and not line.startswith("#"))


def prepare_environment(launch: dict, job_dir: Path) -> tuple[str, str, bool]:
    """``(interpreter for the job's code, its lock, rebuilt?)``; the lock is also left in
    ``environment.lock``. With a locked environment to reproduce (``launch["environment"]``)
    and a different one here, the locked one is rebuilt (:func:`.job_environment.build`)."""
    from jupyter_mlops.backends import job_environment as envs

    lock, python, rebuilt = envs.current_lock(), sys.executable, False
    want = launch.get("environment") or {}
    if want.get("lock"):
        wanted = Path(want["lock"]).read_text()
        if envs.lock_hash(wanted) != envs.lock_hash(lock):
            print(f"[mlops] this environment differs from job {want.get('of')}'s: "
                  f"{envs.difference(wanted, lock)}", flush=True)
            _write_json(job_dir / "progress.json",
                        {"done": 0, "total": 0, "label": "rebuilding the locked environment"})
            python = str(envs.build(wanted, Path(want["dir"]), wheels=want.get("wheels", ""),
                                    offline=bool(want.get("offline")),
                                    log=lambda m: print(m, flush=True)))
            lock, rebuilt = wanted, True
    tmp = job_dir / "environment.tmp"
    tmp.write_text(lock)
    os.replace(tmp, job_dir / "environment.lock")
    return python, lock, rebuilt


# The notebook's kernel imports the snapshot's modules before the workspace's: IPython puts the
# working directory (the workspace folder) just before site-packages, so after this first entry.
KERNEL_BOOT = """
import sys
sys.path[:] = [p for p in sys.path if p != ""]
sys.path.insert(0, {snapshot!r})
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""


def _job_kernel(job_dir: Path, python: str, snapshot: str) -> None:
    """Papermill's ``python3`` kernel for this job: ``python`` (a rebuilt environment or this
    one), importing sibling modules from the code snapshot, as scripts do."""
    kdir = job_dir / "jupyter" / "kernels" / "python3"
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [python, "-c", KERNEL_BOOT.format(snapshot=snapshot), "-f",
                 "{connection_file}"],
        "display_name": "Python 3 (job)", "language": "python"}))
    os.environ["JUPYTER_PATH"] = str(job_dir / "jupyter")


def _progress_engine(job_dir: Path):
    """A papermill engine that writes ``progress.json`` as cells start and finish."""
    from papermill.engines import NBClientEngine

    class ProgressEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            code = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]
            total = len(code)
            start, complete = nb_man.cell_start, nb_man.cell_complete

            def write(done, label):
                _write_json(job_dir / "progress.json",
                            {"done": done, "total": total, "label": label})

            def cell_start(cell, cell_index=None, **kw):
                if cell_index in code:
                    write(code.index(cell_index), f"cell {code.index(cell_index) + 1} of {total}")
                return start(cell, cell_index, **kw)

            def cell_complete(cell, cell_index=None, **kw):
                if cell_index in code:
                    write(code.index(cell_index) + 1,
                          f"cell {code.index(cell_index) + 1} of {total} done")
                return complete(cell, cell_index, **kw)

            nb_man.cell_start, nb_man.cell_complete = cell_start, cell_complete
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return ProgressEngine


class Tracking:
    """The job's MLflow run (a no-op when no tracking URI is configured)."""

    def __init__(self, launch: dict):
        self.launch = launch
        self.run_id = ""
        self.enabled = bool(launch.get("tracking_uri"))
        if self.enabled:
            import mlflow

            self.mlflow = mlflow
            mlflow.set_tracking_uri(launch["tracking_uri"])

    def start(self, job_dir: Path, lock: str = "") -> None:
        if not self.enabled:
            return
        mlflow, launch = self.mlflow, self.launch
        tags = dict(launch.get("tags") or {})
        client = mlflow.MlflowClient()
        exp_id = self._experiment_id(client, launch["experiment"],
                                     tags.get("mlops.project", "default"))
        run = mlflow.start_run(experiment_id=exp_id, run_name=launch["run_name"],
                               tags=tags, parent_run_id=launch.get("parent_run_id") or None)
        self.run_id = run.info.run_id
        _write_json(job_dir / "run.json",
                    {"run_id": self.run_id, "experiment_id": exp_id})
        params = {k: json.dumps(v) if isinstance(v, (list, bool)) or v is None else v
                  for k, v in (launch.get("params") or {}).items()}
        if params:
            mlflow.log_params(params)
        snap = Path(launch["snapshot_dir"])
        if snap.is_dir():
            mlflow.log_artifacts(str(snap), "code")
        if lock:
            from jupyter_mlops.backends.job_environment import lock_hash

            mlflow.log_text(pip_freeze(lock), "environment/pip-freeze.txt")
            mlflow.log_text(lock, "environment/lock.txt")
            mlflow.set_tag("mlops.environment", lock_hash(lock))
        if launch.get("seed") is not None:
            mlflow.set_tag("mlops.seed", str(launch["seed"]))

    @staticmethod
    def _experiment_id(client, name: str, project: str) -> str:
        exp = client.get_experiment_by_name(name)
        if exp:
            return exp.experiment_id
        from mlflow.exceptions import MlflowException

        try:
            # A new experiment belongs to the job's project (the gateway scopes MLflow by it).
            return client.create_experiment(name, tags={"mlops.project": project})
        except MlflowException as e:
            # jobs started together into a new experiment: another one created it first
            exp = (client.get_experiment_by_name(name)
                   if e.error_code == "RESOURCE_ALREADY_EXISTS" else None)
            if exp is None:  # or it is another project's: that answer stands
                raise
            return exp.experiment_id

    def finish(self, status: str, job_dir: Path, executed: Path | None) -> dict:
        if not self.enabled or not self.run_id:
            return {}
        mlflow = self.mlflow
        if executed is not None and executed.exists():
            try:
                mlflow.log_artifact(str(executed), "notebook")
            except Exception as e:  # the outcome matters more than the copy
                print(f"[mlops] could not upload the executed notebook: {e}", flush=True)
        if status == "pruned":
            mlflow.set_tag("optuna.pruned", "true")
        mlflow.set_tag("mlops.state", status)
        mlflow_status = {"succeeded": "FINISHED", "failed": "FAILED"}.get(status, "KILLED")
        metrics = mlflow.get_run(self.run_id).data.metrics
        mlflow.end_run(mlflow_status)
        return metrics


def run(job_dir: Path) -> int:
    launch = json.loads((job_dir / "launch.json").read_text())

    def on_term(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    status, code, error, executed, metrics = "failed", 1, "", None, {}
    tracking = None
    child = None
    environment: dict = {}
    try:
        from jupyter_mlops.backends.job_environment import LockNotRebuilt, lock_hash

        try:
            python, lock, rebuilt = prepare_environment(launch, job_dir)
        except LockNotRebuilt as e:
            raise SystemExit(f"cannot rerun in job {launch['environment'].get('of')}'s "
                             f"environment: {e}") from None
        environment = {"hash": lock_hash(lock), "rebuilt": rebuilt,
                       "packages": sum(1 for x in lock.splitlines()
                                       if x and not x.startswith("#"))}
        tracking = Tracking(launch)
        tracking.start(job_dir, lock)
        env = dict(os.environ)
        env.update(MLOPS_JOB_DIR=str(job_dir), MLOPS_PARAMS=json.dumps(launch["params"]))
        if launch.get("seed") is not None:  # runtime.seed(); hashing of str made repeatable
            env.update(MLOPS_SEED=str(launch["seed"]),
                       PYTHONHASHSEED=str(int(launch["seed"]) % 2**32))
        if launch.get("dataset_version"):
            env["MLOPS_DATASET_VERSION"] = launch["dataset_version"]
        if rebuilt:
            env["PYTHONNOUSERSITE"] = "1"  # exactly the lock: nothing from ~/.local
        if tracking.run_id:
            env["MLFLOW_RUN_ID"] = tracking.run_id
            env["MLFLOW_EXPERIMENT_NAME"] = launch["experiment"]
        print(f"[mlops] job {launch['job_id']}: {launch['kind']} {launch['display_path']}"
              f" on GPU(s) [{os.environ.get('CUDA_VISIBLE_DEVICES', '')}]", flush=True)
        if launch["kind"] == "notebook":
            import papermill

            os.environ.update(env)  # the kernel inherits them
            _job_kernel(job_dir, python, str(Path(launch["file"]).parent))
            executed = Path(launch["output_notebook"])
            executed.parent.mkdir(parents=True, exist_ok=True)
            papermill.engines.papermill_engines.register("mlops", _progress_engine(job_dir))
            papermill.execute_notebook(
                launch["file"], str(executed), parameters=launch["params"], engine_name="mlops",
                cwd=launch["cwd"], progress_bar=False, log_output=True, kernel_name="python3")
            code = 0
        else:
            args = [f"--{k}={v}" for k, v in launch["params"].items()]
            child = subprocess.Popen([python, "-c", SCRIPT_BOOT, launch["file"], *args],
                                     cwd=launch["cwd"], env=env)
            code = child.wait()
        status = "succeeded" if code == 0 else "failed"
        if code:
            error = (f"exited with status {code}" if code > 0
                     else f"killed by signal {-code}")
    except Terminated:
        status = "pruned" if (job_dir / "prune").exists() else "cancelled"
        code, error = 143, ("stopped by the sweep's pruner" if status == "pruned"
                            else "stopped by a cancel request" if (job_dir / "cancel").exists()
                            else "stopped by SIGTERM without a cancel request "
                                 "(the platform shut down, or someone signalled the job)")
        if (job_dir / "timeout").exists():
            status, error = "failed", f"time limit of {launch.get('time_limit')} s reached"
        if child is not None and child.poll() is None:
            child.terminate()
    except SystemExit as e:  # refused before any of the job's code ran
        status, code, error = "failed", 1, str(e)
    except Exception as e:
        traceback.print_exc()
        status, code = "failed", 1
        error = f"{e.__class__.__name__}: {e}".splitlines()[0][:500]
    metrics = reported_metrics(job_dir)
    try:
        if tracking is not None:
            metrics.update(tracking.finish(status, job_dir, executed))
    except Exception as e:
        print(f"[mlops] could not finish the MLflow run: {e}", flush=True)
    _write_json(job_dir / "exit.json", {"status": status, "returncode": code, "error": error,
                                        "metrics": metrics, "finished_at": time.time(),
                                        "environment": environment})
    print(f"[mlops] job {launch['job_id']} {status}" + (f": {error}" if error else ""),
          flush=True)
    return 0 if status == "succeeded" else 1


def main(job_dir: Path) -> int:
    from jupyter_mlops.backends.limits import wait_until_joined

    try:  # before anything of the job's runs: inside its CPU and memory limits
        wait_until_joined()
    except RuntimeError as e:
        _write_json(job_dir / "exit.json", {"status": "failed", "error": str(e),
                                            "returncode": 1})
        return 1
    return run(job_dir)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
