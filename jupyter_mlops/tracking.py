"""Automatic run tags and reproducibility capture for MLflow runs started in the lab.

* :class:`MlopsRunContext` is an MLflow run-context provider (entry point
  ``mlflow.run_context_provider`` in pyproject.toml): every run started from a user's server
  -- ``mlflow.start_run()`` included -- carries ``mlops.user`` (the hub user) and
  ``mlops.project`` (the current project). The gateway stamps ``mlops.user`` again from the hub
  token, so the tag cannot be forged; the provider makes it visible offline too.
* :func:`start_run` is ``mlflow.start_run`` plus what a lab needs to rerun a result: the git
  commit and uncommitted diff of the working directory's repository, the installed packages,
  the dataset versions read (through the datasets API) and the seed when given.
* :func:`set_experiment` creates the experiment inside the current project.
"""
from __future__ import annotations

import contextlib
import os
import random
import subprocess
from importlib import metadata

PROJECT_TAG = "mlops.project"
USER_TAG = "mlops.user"
DEFAULT_PROJECT = "default"
PROJECT_ENV = "JUPYTER_MLOPS_PROJECT"

_project: str | None = None
_datasets_read: dict[str, dict] = {}


def current_project() -> str:
    """The project new experiments and runs go to: set by :func:`set_project` (or
    ``%mlops experiment NAME --project P``), else ``$JUPYTER_MLOPS_PROJECT``, else ``default``."""
    return _project or os.environ.get(PROJECT_ENV) or DEFAULT_PROJECT


def set_project(name: str | None) -> None:
    global _project
    _project = name or None


def hub_user() -> str | None:
    return os.environ.get("JUPYTERHUB_USER")


class MlopsRunContext:
    """Tags every new run with the hub user and the current project.

    Implements MLflow's ``RunContextProvider`` interface (``in_context``, ``tags``) without
    subclassing it: importing MLflow here would load this entry point while this module is
    still half-imported.
    """

    def in_context(self) -> bool:
        return bool(hub_user() or _project or os.environ.get(PROJECT_ENV))

    def tags(self) -> dict:
        tags = {PROJECT_TAG: current_project()}
        if hub_user():
            tags[USER_TAG] = hub_user()
        return tags


def set_experiment(name: str, project: str | None = None):
    """Make ``name`` the active experiment, creating it inside ``project`` (default: current).

    An existing experiment of another project is refused rather than silently reused.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    project = project or current_project()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            exp_id = client.create_experiment(name, tags={PROJECT_TAG: project})
        except MlflowException as e:
            if "already exists" in str(e) or "RESOURCE_ALREADY_EXISTS" in str(e):
                raise ValueError(f"the experiment name {name!r} is taken (in a project you "
                                 "cannot see); choose another name") from None
            raise
        exp = client.get_experiment(exp_id)
    else:
        owner = exp.tags.get(PROJECT_TAG, DEFAULT_PROJECT)
        if owner != project:
            raise ValueError(f"experiment {name!r} belongs to project {owner!r}, not "
                             f"{project!r}; pass --project {owner} to use it")
    set_project(project)
    return mlflow.set_experiment(experiment_id=exp.experiment_id)


def note_dataset_read(name: str, version: str, url: str = "", digest: str = "") -> None:
    """Remember a dataset version read in this kernel; :func:`start_run` logs it as an input.

    The datasets API calls this on every read (so a read before the run counts too).
    """
    _datasets_read[name] = {"name": name, "version": version, "url": url, "digest": digest}


def git_state(path: str = ".") -> dict:
    """Commit, branch, remote and uncommitted diff of the repository holding ``path``."""
    def git(*args) -> str | None:
        try:
            out = subprocess.run(["git", "-C", path, *args], capture_output=True, text=True,
                                 timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip()
    if not commit:
        return {}
    diff = git("diff", "HEAD") or ""
    untracked = (git("ls-files", "--others", "--exclude-standard") or "").split()
    return {"commit": commit, "branch": (git("rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
            "remote": (git("config", "--get", "remote.origin.url") or "").strip(),
            "diff": diff, "untracked": untracked}


def pip_freeze() -> str:
    """``pip freeze`` of the kernel's environment, from package metadata (no subprocess)."""
    lines = {f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
             if d.metadata and d.metadata["Name"]}
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and (when imported) PyTorch's generators."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


@contextlib.contextmanager
def start_run(*, seed: int | None = None, repo: str = ".", capture: bool = True, **kwargs):
    """``mlflow.start_run(**kwargs)`` capturing what is needed to reproduce the run.

    Logged: tags ``mlflow.source.git.commit``/``branch``/``repoURL`` and ``mlops.git.dirty``;
    artifacts ``reproducibility/git.diff`` (when dirty) and ``reproducibility/requirements.txt``;
    param ``seed`` (and the generators seeded); every dataset version read so far as an input.
    """
    import mlflow

    with mlflow.start_run(**kwargs) as run:
        if seed is not None:
            seed_everything(int(seed))
            mlflow.log_param("seed", int(seed))
        if capture:
            capture_environment(repo)
        yield run


def capture_environment(repo: str = ".") -> None:
    import mlflow

    state = git_state(repo)
    if state:
        dirty = bool(state["diff"].strip() or state["untracked"])
        mlflow.set_tags({"mlflow.source.git.commit": state["commit"],
                         "mlflow.source.git.branch": state["branch"],
                         "mlflow.source.git.repoURL": state["remote"],
                         "mlops.git.dirty": str(dirty).lower()})
        if state["diff"].strip():
            mlflow.log_text(state["diff"], "reproducibility/git.diff")
    mlflow.log_text(pip_freeze(), "reproducibility/requirements.txt")
    for ds in _datasets_read.values():
        log_dataset(ds)


def log_dataset(ds: dict) -> None:
    import mlflow
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    source = HTTPDatasetSource(ds.get("url") or f"mlops://datasets/{ds['name']}")
    mlflow.log_input(MetaDataset(source, name=f"{ds['name']}@{ds['version']}",
                                 digest=(ds.get("digest") or ds["version"])[:32]),
                     context="training", tags={"mlops.dataset": ds["name"],
                                               "mlops.version": ds["version"]})


REFERENCE_ARTIFACT = "monitoring/reference.csv"


def log_monitoring_reference(frame, max_rows: int = 5000) -> None:
    """Log ``frame`` (the training data of the model this run registers, or for an image
    model its evaluation statistics: ``image_height``, ``image_width``, ``image_mean_intensity``,
    ``predicted_count`` per image) as the run's ``monitoring/reference.csv``: a deployment of
    the registered version compares the inputs it records with its numeric columns (drift).
    At most ``max_rows`` rows are kept (a uniform sample)."""
    import mlflow

    if len(frame) > max_rows:
        frame = frame.sample(max_rows, random_state=0)
    mlflow.log_text(frame.select_dtypes("number").to_csv(index=False), REFERENCE_ARTIFACT)
