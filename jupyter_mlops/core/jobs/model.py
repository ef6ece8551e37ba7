"""The job model: what a user asks to run, its states, and the checks of its parameters.

A job runs one notebook (through papermill) or one Python script, with parameters, on a number
of GPUs, as one MLflow run. Sweeps and pipelines are made of jobs (``sweep_id``, ``pipeline_id``).
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import InvalidInput

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED, PRUNED, SKIPPED = (
    "succeeded", "failed", "cancelled", "pruned", "skipped")
ACTIVE = (QUEUED, RUNNING)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, PRUNED, SKIPPED)

KINDS = {".ipynb": "notebook", ".py": "script"}
NAME_RE = re.compile(r"^[A-Za-z0-9_.@ -]{1,100}$")
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# A Kubernetes label value (the node label a GPU type is matched against)
GPU_TYPE_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
MAX_GPUS = 64
MAX_TIMEOUT = 366 * 24 * 3600  # seconds: what a time limit can be at all


@dataclass
class JobSpec:
    """What was asked for. Kept verbatim, so "rerun exactly" can ask for it again."""

    path: str  # relative to the user's workspace
    params: dict = field(default_factory=dict)
    gpus: int = 0
    # GPUs of this type only: a substring of the device name on GPU servers ("A100"), the
    # node label nvidia.com/gpu.product on Kubernetes, as a profile's gpu_type
    gpu_type: str = ""
    project: str = "default"
    experiment: str = ""  # MLflow experiment; defaults to the file's stem
    dataset_version: str = ""
    name: str = ""
    timeout: int = 0  # seconds the job may run; 0: only the platform's maximum, if any

    @property
    def kind(self) -> str:
        return KINDS[PurePosixPath(self.path).suffix]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Job:
    id: int
    user: str
    spec: JobSpec
    state: str = QUEUED
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str = ""  # why it waits, or why it failed
    position: int | None = None  # place in the queue while waiting
    gpu_indices: list = field(default_factory=list)
    handle: dict = field(default_factory=dict)  # backend's re-attach data (pid, ...)
    run_id: str = ""
    experiment_id: str = ""
    progress: dict = field(default_factory=dict)  # {"done": i, "total": n, "label": ...}
    metrics: dict = field(default_factory=dict)  # final metrics of the run
    sweep_id: int | None = None
    trial_number: int | None = None
    pipeline_id: int | None = None
    step: str = ""
    snapshot_of: int | None = None  # "rerun exactly": the job whose code snapshot is reused
    seed: int | None = None  # given as the parameter ``seed``, or set by the platform
    dataset_resolved: str = ""  # spec.dataset_version pinned at submit: ``name@vN``
    # what the job's code ran with: {"hash", "packages", "rebuilt"} (lock: environment.lock)
    environment: dict = field(default_factory=dict)
    cancel_requested: str = ""  # "" | "cancelled" | "pruned" | "time_limit"
    exit_code: int | None = None
    groups: list = field(default_factory=list)
    # who changed it other than by submitting: [{"at", "actor", "action", "by_other"}]
    changes: list = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = self.spec.kind
        d.pop("handle")
        return d


def _scalar_ok(v) -> bool:
    if isinstance(v, (str, bool, int, float)) or v is None:
        return True
    if isinstance(v, list):
        return all(_scalar_ok(x) for x in v)
    return False


def parse_spec(body: dict) -> JobSpec:
    """A :class:`JobSpec` from a request body; :class:`InvalidInput` says what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput("a job is a JSON object")
    unknown = set(body) - {"path", "params", "gpus", "gpu_type", "project", "experiment",
                           "dataset_version", "name", "timeout"}
    if unknown:
        raise InvalidInput(f"unknown job field(s): {', '.join(sorted(unknown))}")
    path = body.get("path")
    if not isinstance(path, str) or not path.strip():
        raise InvalidInput("path is required: the notebook (.ipynb) or script (.py) to run")
    p = PurePosixPath(path.strip())
    if p.is_absolute() or ".." in p.parts:
        raise InvalidInput(f"path {path!r} must be relative to your workspace, without '..'")
    if p.suffix not in KINDS:
        raise InvalidInput(f"{path!r} is neither a notebook (.ipynb) nor a script (.py)")
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise InvalidInput("params must be an object of name: value")
    for k, v in params.items():
        if not PARAM_RE.match(k):
            raise InvalidInput(f"parameter name {k!r} is not a Python identifier")
        if not _scalar_ok(v):
            raise InvalidInput(f"parameter {k} must be a number, string, boolean or list")
    gpus = body.get("gpus", 0)
    if isinstance(gpus, bool) or not isinstance(gpus, int) or not 0 <= gpus <= MAX_GPUS:
        raise InvalidInput(f"gpus must be a whole number from 0 to {MAX_GPUS}, not {gpus!r}")
    gpu_type = body.get("gpu_type") or ""
    if not isinstance(gpu_type, str) or (gpu_type and not GPU_TYPE_RE.match(gpu_type)):
        raise InvalidInput("gpu_type is a GPU type such as A100 or NVIDIA-A100-SXM4-40GB: "
                           "letters, digits and ._- (at most 63)")
    if gpu_type and not gpus:
        raise InvalidInput("gpu_type needs gpus: how many GPUs of that type")
    timeout = body.get("timeout") or 0
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not (
            0 <= timeout <= MAX_TIMEOUT):
        raise InvalidInput(f"timeout must be a whole number of seconds from 0 (none) to "
                           f"{MAX_TIMEOUT}, not {timeout!r}")
    out = {}
    for key in ("project", "experiment", "dataset_version", "name"):
        v = body.get(key)
        if v is None or v == "":
            continue
        if not isinstance(v, str) or not NAME_RE.match(v):
            raise InvalidInput(f"{key} must be 1-100 letters, digits, spaces or _.@-")
        out[key] = v
    return JobSpec(path=str(p), params=dict(params), gpus=gpus, gpu_type=gpu_type,
                   timeout=timeout, **out)


# --- declared parameters ----------------------------------------------------------------------

_TYPE_OF = {"int": int, "float": float, "str": str, "bool": bool}


def declared_parameters(file: Path) -> dict[str, str]:
    """``{name: type name}`` of the parameters a file declares.

    Notebooks: the cell tagged ``parameters`` (papermill's inference). Scripts: top-level
    assignments of literal values (``lr = 0.01``), the same convention written as code.
    """
    return {k: t for k, (t, _v) in declared_defaults(file).items()}


def declared_defaults(file: Path) -> dict[str, tuple[str, object]]:
    """``{name: (type name, default value)}`` of the parameters a file declares (the value is
    ``None`` where the default is not a literal)."""
    if file.suffix == ".ipynb":
        from papermill.inspection import inspect_notebook

        try:
            found = inspect_notebook(str(file))
        except Exception as e:  # unreadable notebook: report, don't crash the request
            raise InvalidInput(f"{file.name} is not a readable notebook: {e}") from None
        out = {}
        for n, p in found.items():
            tname = p.get("inferred_type_name") or "None"
            try:
                value = ast.literal_eval(p.get("default") or "")
            except (ValueError, SyntaxError):
                value = None
            if tname == "None" and value is not None:  # no annotation: the literal's type
                tname = type(value).__name__
            out[n] = (tname, value)
        return out
    try:
        tree = ast.parse(file.read_text(), filename=file.name)
    except (SyntaxError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{file.name} is not valid Python: {e}") from None
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            out[node.targets[0].id] = (type(value).__name__, value)
    return out


def check_param_types(file: Path, params: dict) -> None:
    """Refuse a value whose type does not match the declared parameter (400 with the reason)."""
    declared = declared_parameters(file)
    for name, value in params.items():
        tname = declared.get(name)
        want = _TYPE_OF.get((tname or "").split("[")[0])
        if want is None:
            continue  # undeclared, None or a type we do not check: passed as given
        ok = isinstance(value, want) and not (want is not bool and isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise InvalidInput(
                f"parameter {name} of {file.name} is {tname}, got {json.dumps(value)} "
                f"({type(value).__name__})")
