"""Pipelines: a small YAML file of steps (notebooks or scripts) with parameters and dependencies.

    name: retrain
    project: default
    schedule: "0 3 * * 1"        # optional, cron (minute hour day-of-month month day-of-week)
    steps:
      - {name: prepare, run: prepare.py}
      - {name: train, run: train.ipynb, needs: [prepare], gpus: 1, params: {lr: 0.01}}
      - {name: evaluate, run: evaluate.py, needs: [train], timeout: 600}

Each step runs as a job once every step it needs has succeeded; a step whose dependency failed,
was cancelled or skipped is skipped. A pipeline with a schedule is a template: at each time the
schedule names, the runner starts a new pipeline run from it.
"""
from __future__ import annotations

import datetime as dt
import re

import yaml

from .. import clock
from ..errors import Conflict, InvalidInput, NotFound
from ..roles import USE, Caller
from .model import SKIPPED, SUCCEEDED, TERMINAL, parse_spec
from .service import Jobs

STEP_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_STEPS = 50


# --- cron -------------------------------------------------------------------------------------

_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def parse_cron(expr: str) -> list[set[int]]:
    """The five fields of a cron expression as sets of allowed values (``*``, ``*/n``, ``a-b``,
    ``a-b/n``, lists). Day of week 0 is Sunday (7 is accepted as Sunday too)."""
    fields = expr.split() if isinstance(expr, str) else []
    if len(fields) != 5:
        raise InvalidInput(f"schedule {expr!r} must have 5 fields: minute hour day month weekday")
    out = []
    for text, (lo, hi) in zip(fields, _RANGES):
        allowed: set[int] = set()
        for part in text.split(","):
            m = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
            if not m:
                raise InvalidInput(f"schedule field {text!r} is not valid cron")
            base, step = m.group(1), int(m.group(2) or 1)
            if base == "*":
                a, b = lo, hi
            elif "-" in base:
                a, b = map(int, base.split("-"))
            else:
                a = b = int(base)
            if not (lo <= a <= hi and lo <= b <= hi and a <= b) or step < 1:
                raise InvalidInput(f"schedule field {text!r} is out of range {lo}-{hi}")
            allowed.update(range(a, b + 1, step))
        if hi == 7 and 7 in allowed:  # weekday 7 is Sunday too
            allowed.discard(7)
            allowed.add(0)
        out.append(allowed)
    return out


def next_fire(expr: str, after: float) -> float:
    """The first time strictly after ``after`` (UTC) that the schedule names."""
    minute, hour, dom, month, dow = parse_cron(expr)
    t = dt.datetime.fromtimestamp(after, dt.timezone.utc).replace(second=0, microsecond=0)
    t += dt.timedelta(minutes=1)
    for _ in range(400 * 24 * 60):
        if t.month not in month or t.day not in dom or (t.weekday() + 1) % 7 not in dow:
            t = (t + dt.timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if t.hour not in hour:
            t = (t + dt.timedelta(hours=1)).replace(minute=0)
            continue
        if t.minute in minute:
            return t.timestamp()
        t += dt.timedelta(minutes=1)
    raise InvalidInput(f"schedule {expr!r} never fires")


# --- parsing ----------------------------------------------------------------------------------

def parse_pipeline(spec) -> dict:
    if isinstance(spec, str):
        try:
            spec = yaml.safe_load(spec)
        except yaml.YAMLError as e:
            raise InvalidInput(f"pipeline is not valid YAML: {e}") from None
    if not isinstance(spec, dict):
        raise InvalidInput("a pipeline is a mapping with name and steps")
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps or len(steps) > MAX_STEPS:
        raise InvalidInput(f"steps must be a list of 1 to {MAX_STEPS} steps")
    project = spec.get("project") or "default"
    out, names = [], set()
    for i, st in enumerate(steps):
        if not isinstance(st, dict):
            raise InvalidInput(f"step {i + 1} must be a mapping with name and run")
        name = st.get("name")
        if not isinstance(name, str) or not STEP_RE.match(name):
            raise InvalidInput(f"step {i + 1}: name must be lowercase letters, digits, - or _")
        if name in names:
            raise InvalidInput(f"step {name!r} appears twice")
        names.add(name)
        needs = st.get("needs") or []
        if isinstance(needs, str):
            needs = [needs]
        job = parse_spec({"path": st.get("run"), "params": st.get("params") or {},
                          "gpus": st.get("gpus", 0), "project": project,
                          "experiment": spec.get("experiment") or None,
                          "dataset_version": st.get("dataset_version") or None,
                          "timeout": st.get("timeout") or 0})
        out.append({"name": name, "needs": list(needs), "job": job.to_dict()})
    for st in out:
        for dep in st["needs"]:
            if dep not in names:
                raise InvalidInput(f"step {st['name']!r} needs unknown step {dep!r}")
    _order(out)
    name = spec.get("name") or "pipeline"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_. -]{1,100}", name):
        raise InvalidInput("pipeline name must be 1-100 letters, digits, spaces or _.-")
    schedule = spec.get("schedule") or ""
    if schedule:
        parse_cron(schedule)
    return {"name": name, "project": project, "schedule": schedule, "steps": out}


def _order(steps: list[dict]) -> list[str]:
    """Steps in dependency order; a cycle is refused."""
    deps = {s["name"]: set(s["needs"]) for s in steps}
    order = []
    while deps:
        ready = sorted(n for n, d in deps.items() if not d)
        if not ready:
            raise InvalidInput(f"steps {', '.join(sorted(deps))} depend on each other in a cycle")
        for n in ready:
            order.append(n)
            del deps[n]
        for d in deps.values():
            d.difference_update(ready)
    return order


class Pipelines:
    def __init__(self, jobs: Jobs):
        self.jobs = jobs
        self.store = jobs.store
        self.on_finished: list = []  # callbacks(stored dict) once it reached its final state

    def create(self, caller: Caller, body: dict) -> dict:
        p = parse_pipeline(body.get("spec") if isinstance(body, dict) and "spec" in body
                           else body)
        for st in p["steps"]:  # every file exists, params fit, project visible, GPUs allowed
            self.jobs.check(caller, parse_spec(st["job"]))
        p.update(order=_order(p["steps"]), groups=list(caller.groups), step_jobs={},
                 skipped=[])
        if p["schedule"]:
            p["next_at"] = next_fire(p["schedule"], clock.now())
            pid = self.store.add_group("pipeline", caller.name, "scheduled", clock.now(), p)
        else:
            pid = self.store.add_group("pipeline", caller.name, "running", clock.now(), p)
        self.jobs.wake()
        return self.get(caller, pid)

    def get(self, caller: Caller, pipeline_id) -> dict:
        try:
            p = self.store.get_group("pipeline", int(pipeline_id))
        except (TypeError, ValueError):
            raise NotFound(f"no pipeline {pipeline_id}") from None
        if p["user"] != caller.name and not caller.is_admin:
            raise NotFound(f"no pipeline {pipeline_id}")
        return self._view(p)

    def _view(self, p: dict) -> dict:
        steps = []
        for st in p["steps"]:
            jid = p["step_jobs"].get(st["name"])
            job = self.store.get(jid) if jid else None
            state = job.state if job else (SKIPPED if st["name"] in p["skipped"] else "waiting")
            steps.append({"name": st["name"], "run": st["job"]["path"], "needs": st["needs"],
                          "state": state, "job_id": jid, "reason": job.reason if job else "",
                          "run_id": job.run_id if job else ""})
        return {**{k: p[k] for k in ("id", "name", "user", "state", "project", "schedule",
                                     "created_at")},
                "next_at": p.get("next_at"), "from_schedule": p.get("from_schedule"),
                "steps": steps}

    def list(self, caller: Caller) -> list[dict]:
        return [self._view(p) for p in self.store.groups("pipeline", user=caller.name)]

    def cancel(self, caller: Caller, pipeline_id) -> dict:
        p = self.store.get_group("pipeline", int(self.get(caller, pipeline_id)["id"]))
        if p["state"] in TERMINAL:
            raise Conflict(f"pipeline {p['id']} is {p['state']} already")
        for jid in p["step_jobs"].values():
            self.jobs.request_stop(self.store.get(jid))
        self._save(p, "cancelled")
        return self.get(caller, pipeline_id)

    def _save(self, p: dict, state: str | None = None) -> None:
        data = {k: v for k, v in p.items() if k not in ("id", "user", "state", "created_at")}
        self.store.save_group(p["id"], state or p["state"], data)
        if state:
            p["state"] = state
            if state in TERMINAL:
                for cb in self.on_finished:
                    cb(p)

    async def tick(self) -> None:
        for p in self.store.groups("pipeline", limit=1000):
            if p["state"] == "scheduled" and clock.now() >= p["next_at"]:
                run = {k: v for k, v in p.items() if k not in ("id", "user", "state",
                                                               "created_at", "next_at")}
                run.update(schedule="", from_schedule=p["id"], step_jobs={}, skipped=[])
                self.store.add_group("pipeline", p["user"], "running", clock.now(), run)
                p["next_at"] = next_fire(p["schedule"], clock.now())
                self._save(p)
            elif p["state"] == "running":
                self._advance(p)

    def _advance(self, p: dict) -> None:
        states = {}
        for name, jid in p["step_jobs"].items():
            states[name] = self.store.get(jid).state
        for name in p["skipped"]:
            states[name] = SKIPPED
        caller = Caller(name=p["user"], groups=tuple(p.get("groups") or ()),
                        scopes=frozenset({USE}))
        changed = False
        by_name = {s["name"]: s for s in p["steps"]}
        for name in p["order"]:
            if name in states:
                continue
            needs = by_name[name]["needs"]
            if any(states.get(d) in TERMINAL and states.get(d) != SUCCEEDED for d in needs):
                p["skipped"].append(name)
                states[name] = SKIPPED
                changed = True
            elif all(states.get(d) == SUCCEEDED for d in needs):
                try:
                    job = self.jobs.submit(caller, dict(by_name[name]["job"]),
                                           pipeline_id=p["id"], step=name)
                except InvalidInput as e:  # the file went away or changed since
                    p["skipped"].append(name)
                    p.setdefault("errors", {})[name] = e.message
                    states[name] = SKIPPED
                else:
                    p["step_jobs"][name] = job.id
                    states[name] = job.state
                changed = True
        if all(states.get(s["name"]) in TERMINAL for s in p["steps"]):
            ok = all(states[s["name"]] == SUCCEEDED for s in p["steps"])
            self._save(p, "succeeded" if ok else "failed")
        elif changed:
            self._save(p)
