"""Hyperparameter sweeps: Optuna asks, each trial is a job, the job's reports feed the pruner.

The study lives in Optuna's own RDB storage (a SQLite file next to the control plane database by
default), so a restarted control plane continues the same study. The sweep's MLflow parent run
is created by the control plane as the sweep's user (a token of the user, as for jobs); every
trial's run is its child. Pruning: while a trial runs, the values it ``report()``s for the sweep's
metric go to ``trial.report``; when the pruner says so the job is stopped, its run ends KILLED
with the tag ``optuna.pruned=true``, and the trial is told PRUNED.
"""
from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path

import optuna
import yaml

from .. import clock
from ..errors import Conflict, InvalidInput, MlopsError, NotFound
from ..roles import Caller, USE
from .jobfiles import MAX_READ, open_untrusted
from .model import SUCCEEDED, PRUNED, TERMINAL, parse_spec, check_param_types
from .service import Jobs
from .tracking import MlflowRuns, MlflowRunsFactory

log = logging.getLogger("jupyter_mlops.jobs")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")
MAX_TRIALS = 1000


def parse_space(space) -> dict[str, optuna.distributions.BaseDistribution]:
    """A search space from YAML text or a dict::

        lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
        epochs: {type: int, low: 2, high: 8}
        optimizer: {type: categorical, choices: [sgd, adam]}
    """
    if isinstance(space, str):
        try:
            space = yaml.safe_load(space)
        except yaml.YAMLError as e:
            raise InvalidInput(f"search space is not valid YAML: {e}") from None
    if not isinstance(space, dict) or not space:
        raise InvalidInput("the search space must map parameter names to ranges")
    out = {}
    for name, d in space.items():
        where = f"search space parameter {name!r}"
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"{where}: not a Python identifier")
        if not isinstance(d, dict):
            raise InvalidInput(f"{where}: expected {{type, low, high}} or {{type: categorical, "
                               "choices}}")
        kind = d.get("type")
        try:
            if kind == "categorical":
                choices = d.get("choices")
                if not isinstance(choices, list) or not choices:
                    raise InvalidInput(f"{where}: choices must be a non-empty list")
                out[name] = optuna.distributions.CategoricalDistribution(choices)
            elif kind in ("float", "int"):
                low, high = d.get("low"), d.get("high")
                num = (int,) if kind == "int" else (int, float)
                if not all(isinstance(v, num) and not isinstance(v, bool) for v in (low, high)):
                    raise InvalidInput(f"{where}: low and high must be {kind} numbers")
                if low >= high:
                    raise InvalidInput(f"{where}: low ({low}) must be below high ({high})")
                log_scale, step = bool(d.get("log", False)), d.get("step")
                if log_scale and low <= 0:
                    raise InvalidInput(f"{where}: a log scale needs low > 0")
                if kind == "int":
                    out[name] = optuna.distributions.IntDistribution(
                        low, high, log=log_scale, step=int(step or 1))
                else:
                    out[name] = optuna.distributions.FloatDistribution(
                        float(low), float(high), log=log_scale,
                        step=float(step) if step else None)
            else:
                raise InvalidInput(f"{where}: type must be float, int or categorical, "
                                   f"not {kind!r}")
        except ValueError as e:  # Optuna's own checks (e.g. log with step)
            raise InvalidInput(f"{where}: {e}") from None
    return out


def grid_of(dists: dict) -> dict[str, list]:
    grid = {}
    for name, d in dists.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            grid[name] = list(d.choices)
        elif isinstance(d, optuna.distributions.IntDistribution) and not d.log:
            grid[name] = list(range(d.low, d.high + 1, d.step))
        elif isinstance(d, optuna.distributions.FloatDistribution) and d.step:
            n = int(round((d.high - d.low) / d.step))
            grid[name] = [d.low + i * d.step for i in range(n + 1)]
        else:
            raise InvalidInput(f"grid search needs choices or a step for {name!r}")
    return grid


def parse_sweep(body: dict) -> dict:
    """The sweep part of a request (the job part is checked by :func:`parse_spec`)."""
    job_body = {k: body[k] for k in ("path", "params", "gpus", "project", "experiment",
                                     "dataset_version", "timeout") if k in body}
    spec = parse_spec(job_body)
    dists = parse_space(body.get("space"))
    clash = set(dists) & set(spec.params)
    if clash:
        raise InvalidInput(f"parameter(s) {', '.join(sorted(clash))} are both fixed and searched")
    metric = body.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        raise InvalidInput("metric is required: the name the trials report, e.g. val_map")
    direction = body.get("direction") or ("maximize" if body.get("maximize") else "minimize")
    if direction not in ("maximize", "minimize"):
        raise InvalidInput("direction must be maximize or minimize")
    sampler = body.get("sampler") or "tpe"
    pruner = body.get("pruner") or "median"
    if sampler not in SAMPLERS:
        raise InvalidInput(f"sampler must be one of {', '.join(SAMPLERS)}")
    if pruner not in PRUNERS:
        raise InvalidInput(f"pruner must be one of {', '.join(PRUNERS)}")
    out = {}
    for key, default, top in (("trials", 10, MAX_TRIALS), ("parallel", 2, 64)):
        v = body.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
            raise InvalidInput(f"{key} must be a whole number from 1 to {top}")
        out["n_trials" if key == "trials" else key] = v
    if sampler == "grid":
        size = math.prod(len(v) for v in grid_of(dists).values())
        out["n_trials"] = min(out["n_trials"], size)
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidInput("seed must be a whole number")
    if not spec.experiment:  # the sweep's trials together, apart from the script's own runs
        spec.experiment = f"{Path(spec.path).stem}-sweep"
    return {"job": spec.to_dict(), "space": {k: optuna.distributions.distribution_to_json(d)
                                            for k, d in dists.items()},
            "metric": metric.strip(), "direction": direction, "sampler": sampler,
            "pruner": pruner, "seed": seed, **out}


class Sweeps:
    """Sweeps of a runner. ``tick`` is called by the runner on each pass.

    With a ``tracking_uri``, ``mlflow`` (``(tracking_uri, token) -> tracking.MlflowRuns``, as
    ``backends.mlflow_rest.MlflowRest``) opens each sweep's parent run as the sweep's user.
    """

    def __init__(self, jobs: Jobs, storage_url: str, tracking_uri: str = "", tokens=None, *,
                 mlflow: MlflowRunsFactory | None = None):
        if tracking_uri and mlflow is None:
            raise ValueError("a tracking_uri needs an MLflow client (mlflow=...)")
        self.jobs = jobs
        self.store = jobs.store
        self.storage = optuna.storages.RDBStorage(storage_url)
        self.tracking_uri = tracking_uri
        self.mlflow = mlflow
        self.tokens = tokens
        self._studies: dict[int, optuna.Study] = {}
        self._report_pos: dict[int, int] = {}
        self._mlflow: dict[int, MlflowRuns] = {}
        self.on_finished: list = []  # callbacks(stored dict) once it reached its final state

    # --- requests -----------------------------------------------------------------------------

    def create(self, caller: Caller, body: dict) -> dict:
        sweep = parse_sweep(body)
        spec = parse_spec(sweep["job"])
        dists = parse_space(body.get("space"))
        with self.jobs.checked(caller, spec) as file:
            # every trial reads the version "latest" or a tag means now
            sweep["job"]["dataset_version"] = (self.jobs.pin_dataset(caller, spec)
                                               or spec.dataset_version)
            for name, d in dists.items():  # each searched value must fit the declared type
                samples = (list(d.choices) if isinstance(
                    d, optuna.distributions.CategoricalDistribution) else [d.low])
                for v in samples:
                    check_param_types(file, {name: v})
            sweep.update(groups=list(caller.groups), parent_run_id="", asked=0, told=[],
                         trial_ids={}, best=None, history=[])
            sid = self.store.add_group("sweep", caller.name, "running", clock.now(), sweep)
            snap = self.jobs.jobs_dir / f"sweep-{sid}" / "snapshot"
            snap.parent.mkdir(mode=0o700, parents=True)  # the user's code: nobody else's
            self.jobs.snapshot_code(caller.name, spec.path, file, snap)
        self.jobs.wake()
        return self.get(caller, sid)

    def get(self, caller: Caller, sweep_id: int) -> dict:
        try:
            s = self.store.get_group("sweep", int(sweep_id))
        except (TypeError, ValueError):
            raise NotFound(f"no sweep {sweep_id}") from None
        if s["user"] != caller.name and not caller.is_admin:
            raise NotFound(f"no sweep {sweep_id}")
        trials = self.store.list(sweep_id=s["id"], limit=MAX_TRIALS)
        s["trials"] = [{"job_id": j.id, "number": j.trial_number, "state": j.state,
                        "params": {k: j.spec.params.get(k) for k in s["space"]},
                        "value": j.metrics.get(s["metric"]), "run_id": j.run_id,
                        "reason": j.reason, "position": j.position}
                       for j in sorted(trials, key=lambda j: j.trial_number or 0)]
        return s

    def list(self, caller: Caller) -> list[dict]:
        return [{k: s[k] for k in ("id", "state", "created_at", "metric", "direction",
                                   "n_trials", "asked", "best", "parent_run_id")} |
                {"path": s["job"]["path"]}
                for s in self.store.groups("sweep", user=caller.name)]

    def cancel(self, caller: Caller, sweep_id: int) -> dict:
        s = self.get(caller, sweep_id)
        if s["state"] in TERMINAL:
            raise Conflict(f"sweep {s['id']} is {s['state']} already")
        self._save(s, "cancelled")
        for t in s["trials"]:
            if t["state"] not in TERMINAL:
                self.jobs.request_stop(self.store.get(t["job_id"]))
        return self.get(caller, sweep_id)

    # --- the runner's pass --------------------------------------------------------------------

    def _save(self, s: dict, state: str | None = None) -> None:
        data = {k: v for k, v in s.items() if k not in ("id", "user", "state", "created_at",
                                                        "trials")}
        self.store.save_group(s["id"], state or s["state"], data)
        if state:
            s["state"] = state
            if state in TERMINAL:
                for cb in self.on_finished:
                    cb(s)

    def study(self, s: dict) -> optuna.Study:
        if s["id"] not in self._studies:
            seed = s.get("seed")
            sampler = {
                "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True,
                                                          n_startup_trials=4),
                "random": lambda: optuna.samplers.RandomSampler(seed=seed),
                "grid": lambda: optuna.samplers.GridSampler(grid_of(self._dists(s)), seed=seed),
            }[s["sampler"]]()
            pruner = {
                "none": optuna.pruners.NopPruner,
                "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2,
                                                              n_warmup_steps=1),
                "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1),
            }[s["pruner"]]()
            self._studies[s["id"]] = optuna.create_study(
                storage=self.storage, study_name=f"mlops-sweep-{s['id']}", sampler=sampler,
                pruner=pruner, direction=s["direction"], load_if_exists=True)
        return self._studies[s["id"]]

    @staticmethod
    def _dists(s: dict) -> dict:
        return {k: optuna.distributions.json_to_distribution(v) for k, v in s["space"].items()}

    def _trial(self, s: dict, number: int) -> optuna.Trial:
        study = self.study(s)
        return optuna.Trial(study, s["trial_ids"][str(number)])

    async def tick(self) -> None:
        for s in self.store.groups("sweep", active_only=True, limit=1000):
            try:
                await self._advance(s)
            except MlopsError as e:
                log.warning("sweep %s: %s", s["id"], e.message)
        for s in self.store.groups("sweep", limit=50):  # cancelled: end the parent run too
            if s["state"] == "cancelled" and s["parent_run_id"] and not s.get("parent_closed"):
                try:
                    ml = await self._mlflow_for(s)
                    await ml.finish_run(s["parent_run_id"], "KILLED")
                except MlopsError as e:
                    log.warning("sweep %s: %s", s["id"], e.message)
                    continue
                s["parent_closed"] = True
                self._save(s)
                self._mlflow.pop(s["id"], None)

    async def _mlflow_for(self, s: dict) -> MlflowRuns | None:
        if not self.tracking_uri:
            return None
        if s["id"] not in self._mlflow:
            token, _ = await self.tokens.mint(s["user"], 7 * 24 * 3600, f"mlops sweep {s['id']}")
            self._mlflow[s["id"]] = self.mlflow(self.tracking_uri, token)
        return self._mlflow[s["id"]]

    async def _advance(self, s: dict) -> None:
        study = self.study(s)
        ml = await self._mlflow_for(s)
        if ml is not None and not s["parent_run_id"]:
            exp = await ml.experiment_id(s["job"]["experiment"], s["job"]["project"])
            s["parent_run_id"] = await ml.create_run(exp, f"sweep-{s['id']}", {
                "mlflow.user": s["user"], "mlops.sweep_id": s["id"],
                "mlops.project": s["job"]["project"], "mlops.sampler": s["sampler"],
                "mlops.pruner": s["pruner"], "mlops.metric": s["metric"]})
            await ml.log(s["parent_run_id"], params={
                "space": json.dumps(s["space"])[:6000], "trials": s["n_trials"],
                "direction": s["direction"]})
            self._save(s)
        jobs = self.store.list(sweep_id=s["id"], limit=MAX_TRIALS)
        improved = False
        for job in jobs:
            n = job.trial_number
            if n in s["told"]:
                continue
            trial = self._trial(s, n)
            if not job.done:
                self._report(s, job, trial)
                continue
            value = job.metrics.get(s["metric"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if job.state == SUCCEEDED and value is not None:
                    study.tell(trial, value)
                    better = s["best"] is None or (
                        value > s["best"]["value"] if s["direction"] == "maximize"
                        else value < s["best"]["value"])
                    if better:
                        s["best"] = {"value": value, "number": n, "job_id": job.id,
                                     "params": {k: job.spec.params[k] for k in s["space"]}}
                        improved = True
                elif job.state == PRUNED:
                    self._report(s, job, trial)
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            s["told"].append(n)
            s["history"].append({"number": n, "state": job.state, "value": value,
                                 "best": s["best"]["value"] if s["best"] else None})
            self._save(s)
        if improved and ml is not None:
            await ml.log(s["parent_run_id"], metrics={f"best_{s['metric']}": s["best"]["value"]},
                         tags={f"best.{k}": v for k, v in s["best"]["params"].items()}
                         | {"best.trial": s["best"]["number"]})
        if s["state"] != "running":
            return
        active = sum(1 for j in jobs if not j.done)
        while active < s["parallel"] and s["asked"] < s["n_trials"]:
            self._ask(s)
            active += 1
        if s["asked"] >= s["n_trials"] and len(s["told"]) >= s["asked"]:
            state = "succeeded" if s["best"] else "failed"
            if ml is not None:  # before the state: whoever sees it finished sees the run ended
                await ml.finish_run(s["parent_run_id"],
                                    "FINISHED" if state == "succeeded" else "FAILED")
            self._save(s, state)
            self._mlflow.pop(s["id"], None)

    def _ask(self, s: dict) -> None:
        study = self.study(s)
        trial = study.ask(self._dists(s))
        s["trial_ids"][str(trial.number)] = trial._trial_id
        s["asked"] += 1
        self._save(s)
        spec = parse_spec(s["job"])
        spec.params = {**spec.params, **trial.params}
        caller = Caller(name=s["user"], groups=tuple(s.get("groups") or ()),
                        scopes=frozenset({USE}))
        snap = self.jobs.jobs_dir / f"sweep-{s['id']}" / "snapshot"
        self.jobs._enqueue(caller, spec, snap / Path(spec.path).name, snapshot_from=snap,
                           sweep_id=s["id"], trial_number=trial.number)

    def _report(self, s: dict, job, trial: optuna.Trial) -> None:
        """Feed new intermediate values to Optuna; ask the pruner whether to stop the job."""
        path = self.jobs.job_dir(job.id) / "report.jsonl"
        pos = self._report_pos.get(job.id, 0)
        try:
            # The job writes this file (as its user's account): no symlinks, no FIFOs.
            with open_untrusted(path, pos) as f:
                data = f.read(MAX_READ)
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._report_pos[job.id] = pos + end
        lines = data[:end].decode("utf-8", "replace").splitlines()
        reported = False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a step reported again after a restart
            for line in lines:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if r.get("name") == s["metric"]:
                    trial.report(float(r["value"]), int(r.get("step", 0)))
                    reported = True
        if reported and not job.done and trial.should_prune():
            log.info("sweep %s prunes trial %s (job %s)", s["id"], job.trial_number, job.id)
            self.jobs.request_stop(job, PRUNED)
