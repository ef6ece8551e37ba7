"""``%mlops submit``, ``%mlops sweep`` and ``%mlops jobs``: jobs from a notebook cell.

    %mlops submit train.ipynb -p lr=0.01 -p epochs=3 --gpus 1 --timeout 3600
    %mlops submit train.py --gpus 2 --gpu-type A100
    %mlops sweep train.ipynb --space space.yaml --metric val_map --maximize --trials 20 --parallel 2
    %mlops jobs

Paths are taken relative to the kernel's directory and sent relative to the workspace (the
user server's root, ``$HOME``), as the Jobs panel does. Inside a user server the control plane
URL and the user's hub token come from the environment the spawner set.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..client import ControlPlane
from ..core import errors
from . import UsageError, parser, subcommand, table


def workspace_path(path: str, workspace: str | None = None) -> str:
    """``path`` (relative to the kernel's directory) relative to the workspace root."""
    root = Path(workspace or os.environ.get("HOME") or ".").resolve()
    p = Path(path).expanduser()
    p = (p if p.is_absolute() else Path.cwd() / p).resolve()
    try:
        return str(p.relative_to(root))
    except ValueError:
        raise errors.InvalidInput(f"{path} is outside your workspace {root}") from None


def parse_params(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise errors.InvalidInput(f"-p takes name=value, not {item!r}")
        try:
            out[name] = json.loads(raw)
        except ValueError:
            out[name] = raw  # a bare word is a string
    return out


def _common(p):
    p.add_argument("path", help="notebook (.ipynb) or script (.py)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--gpus", type=int, default=0)
    p.add_argument("--project", default=None)
    p.add_argument("--experiment", default=None)
    p.add_argument("--dataset-version", default=None)
    p.add_argument("--timeout", type=int, default=0, metavar="SECONDS",
                   help="stop the job (it fails) once it has run this long; 0: no own limit")


def _body(a) -> dict:
    body = {"path": workspace_path(a.path), "params": parse_params(a.param), "gpus": a.gpus}
    for key in ("project", "experiment", "dataset_version", "timeout"):
        if getattr(a, key):
            body[key] = getattr(a, key)
    return body


def submit(args: list[str], shell=None, client: ControlPlane | None = None) -> dict:
    p = parser("submit", "run a notebook or script as a job (keeps running without this server)")
    _common(p)
    p.add_argument("--gpu-type", default="", metavar="TYPE",
                   help="only GPUs of this type (A100; on Kubernetes the node label "
                        "nvidia.com/gpu.product)")
    a = p.parse_args(args)
    body = _body(a) | ({"gpu_type": a.gpu_type} if a.gpu_type else {})
    job = (client or ControlPlane()).submit_job(body)
    where = f" ({job['reason']})" if job.get("reason") else ""
    print(f"job {job['id']} {job['state']}{where}: see the Jobs panel")
    return job


def sweep(args: list[str], shell=None, client: ControlPlane | None = None) -> dict:
    p = parser("sweep", "an Optuna hyperparameter sweep: each trial a job")
    _common(p)
    p.add_argument("--space", required=True, help="YAML file of the search space")
    p.add_argument("--metric", required=True)
    p.add_argument("--maximize", action="store_true")
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--sampler", default="tpe", choices=["tpe", "random", "grid"])
    p.add_argument("--pruner", default="median", choices=["none", "median", "hyperband"])
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(args)
    try:
        space = Path(a.space).read_text()
    except OSError as e:
        raise errors.InvalidInput(f"cannot read the search space {a.space}: {e}") from None
    body = _body(a) | {"space": space, "metric": a.metric,
                       "direction": "maximize" if a.maximize else "minimize",
                       "trials": a.trials, "parallel": a.parallel, "sampler": a.sampler,
                       "pruner": a.pruner}
    if a.seed is not None:
        body["seed"] = a.seed
    s = (client or ControlPlane()).create_sweep(body)
    print(f"sweep {s['id']} {s['state']}: {s['n_trials']} trials, {a.parallel} at a time")
    return s


def jobs(args: list[str], shell=None, client: ControlPlane | None = None):
    parser("jobs", "My jobs, newest first, as a pandas DataFrame.").parse_args(args)
    data = (client or ControlPlane()).jobs()
    return table([{"id": j["id"], "path": j["spec"]["path"], "state": j["state"],
                   "gpus": j["spec"]["gpus"], "reason": j["reason"], "run_id": j["run_id"]}
                  for j in data["jobs"]],
                 "No jobs yet: %mlops submit NOTEBOOK.ipynb (or the Jobs section) runs one.")


def _wrap(func):
    def run(args, shell):
        try:
            return func(args, shell)
        except errors.MlopsError as e:
            raise UsageError(f"%mlops {func.__name__}: {e.message}") from None
    return run


subcommand("submit", "run a notebook or script as a job: PATH -p k=v --gpus N "
                      "--gpu-type T --timeout S")(_wrap(submit))
subcommand("sweep", "a hyperparameter sweep: PATH --space s.yaml --metric m --trials N")(
    _wrap(sweep))
subcommand("jobs", "my jobs as a DataFrame")(_wrap(jobs))
