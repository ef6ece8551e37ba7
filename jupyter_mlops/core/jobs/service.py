"""What users do with jobs: submit, look, cancel, rerun; every check of who may do what.

Handlers stay thin: they call these methods with the :class:`Caller` and map the errors.
Members of a job's project read it (its state, parameters, logs); anyone else is told it is
absent (404); administrators see every job. Cancelling belongs to its owner, the project's
managers and administrators, or any member where the project lets members change each other's
work (:meth:`Projects.require_change`); each cancel is kept in the job's ``changes`` with who
did it, so its owner sees what someone else did. Rerunning is its owner's.

What a job records so "rerun exactly" repeats it: the snapshot of its folder
(:mod:`.snapshot`), its parameters, its seed (set by the platform when the user gives none),
the dataset version a ``latest`` or tag reference meant at submit, and the lock of its
environment (written by the job's process, :mod:`...backends.job_environment`).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import clock
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, QuotaExceeded
from ..roles import Caller
from .jobfiles import read_untrusted
from .model import (ACTIVE, CANCELLED, QUEUED, Job, JobSpec, check_param_types,
                    declared_defaults, parse_spec)
from .snapshot import FolderSnapshot
from .store import JobStore

MAX_SEED = 2**31 - 1  # what numpy, torch and random all take

LOG_CHUNK = 256 * 1024


def _git(cwd: Path, *args: str) -> str:
    """git in a user's folder, run as the folder's owner: root never runs git in a repository
    a user controls (its config can name programs to run), and git itself refuses a repository
    owned by someone else ("dubious ownership")."""
    kw: dict = {}
    try:
        st = cwd.stat()
        if os.geteuid() == 0 and st.st_uid != 0:
            kw = {"user": st.st_uid, "group": st.st_gid, "extra_groups": [],
                  "env": {**os.environ, "HOME": str(cwd)}}
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, **kw)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout if out.returncode == 0 else ""


class Jobs:
    """The job API of the domain.

    Parameters
    ----------
    store, projects, allocator
        The job store, the projects seam, the GPU allocator (quotas and inventory).
    workspace_root
        Users' workspaces: ``<workspace_root>/<user>``; job paths are relative to them.
    jobs_dir
        Where each job keeps its directory (launch file, code snapshot, logs, outcome).
    wake
        Called after a change the runner should act on at once (submit, cancel).
    max_timeout
        The longest any job may run, in seconds (0: no limit); a job asking for more is
        refused, a job asking for nothing gets it.
    snapshots
        How a job's folder is copied (:class:`FolderSnapshot`: its bounds).
    datasets
        The dataset catalog (``resolve(caller, name, ref)``): a job's ``dataset_version``
        ``name@latest`` or ``name@<tag>`` is pinned to the version it means at submit.
    """

    def __init__(self, store: JobStore, projects, allocator, workspace_root: Path,
                 jobs_dir: Path, wake=lambda: None, max_timeout: int = 0,
                 snapshots: FolderSnapshot | None = None, datasets=None):
        self.store = store
        self.snapshots = snapshots or FolderSnapshot()
        self.datasets = datasets
        self.max_timeout = max_timeout
        self.projects = projects
        self.allocator = allocator
        self.workspace_root = Path(workspace_root)
        self.jobs_dir = Path(jobs_dir)
        self.wake = wake

    # --- paths --------------------------------------------------------------------------------

    def workspace(self, user: str) -> Path:
        return self.workspace_root / user

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    def resolve(self, user: str, path: str) -> Path:
        ws = self.workspace(user).resolve()
        file = (ws / path).resolve()
        if not file.is_relative_to(ws):
            raise InvalidInput(f"{path!r} is outside your workspace")
        if not file.is_file():
            kind = "notebook" if path.endswith(".ipynb") else "script"
            raise InvalidInput(f"no {kind} {path!r} in your workspace")
        return file

    # --- checks -------------------------------------------------------------------------------

    def check(self, caller: Caller, spec: JobSpec) -> None:
        """Everything that refuses a job before it is queued."""
        with self.checked(caller, spec):
            pass

    @contextmanager
    def checked(self, caller: Caller, spec: JobSpec) -> Iterator[Path]:
        """:meth:`check`, then the file to run as it was read: a private copy that lives for
        the ``with`` block. Checks and snapshot all read this copy, never the workspace path
        again, so swapping the file for a link between check and copy gains nothing."""
        self.projects.require_member(caller, spec.project)
        with self._staged(caller.name, spec.path) as file:
            check_param_types(file, spec.params)
            self.check_gpus(caller, spec)
            self.check_timeout(spec)
            yield file

    @contextmanager
    def _staged(self, user: str, path: str) -> Iterator[Path]:
        file = self.resolve(user, path)  # the clear 400s: outside, missing
        ws = self.workspace(user).resolve()
        root = self.jobs_dir / ".staging"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=root))
        try:
            # The control plane may be root: open without following a last-moment link, then
            # judge what was opened (where it really is, who may read it), not the path.
            try:
                fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                raise InvalidInput(f"cannot read {path!r}: {e.strerror}") from None
            with os.fdopen(fd, "rb") as src:
                st = os.fstat(fd)
                real = Path(os.readlink(f"/proc/self/fd/{fd}"))
                if not stat.S_ISREG(st.st_mode) or not real.is_relative_to(ws):
                    raise InvalidInput(f"{path!r} is outside your workspace")
                if st.st_uid != ws.stat().st_uid and not st.st_mode & stat.S_IROTH:
                    raise InvalidInput(f"{path!r} is not readable by you")
                code = stage / "code"
                self.snapshots.copy(ws, real.parent, code, ws.stat().st_uid)
                staged = code / file.name  # the checked copy, whatever the walk found
                with open(staged, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            yield staged
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def check_timeout(self, spec: JobSpec) -> None:
        if self.max_timeout and spec.timeout > self.max_timeout:
            raise InvalidInput(f"a time limit of {spec.timeout} s is over the platform's "
                               f"maximum of {self.max_timeout} s")

    def time_limit(self, job: Job) -> int:
        """Seconds ``job`` may run (0: unlimited): its own limit, capped by the platform's."""
        limits = [t for t in (job.spec.timeout, self.max_timeout) if t]
        return min(limits) if limits else 0

    def check_gpus(self, caller: Caller, spec: JobSpec) -> None:
        if not spec.gpus:
            return
        # A type no device has would wait in the queue forever: refused now, as a count is.
        total = self.allocator.availability(device_filter=spec.gpu_type or None)["total"]
        if spec.gpus > total:
            kind = f"{spec.gpu_type} " if spec.gpu_type else ""
            raise InvalidInput(f"the job asks for {spec.gpus} {kind}GPUs; the platform has "
                               f"{total}")
        for kind, name, limit, _used in self.allocator.limits_for(
                caller.name, caller.groups, spec.project):
            if spec.gpus > limit:
                raise QuotaExceeded(
                    f"GPU quota of {kind} {name} is {limit}; the job asks for {spec.gpus}",
                    quota={"kind": kind, "name": name, "limit": limit})

    # --- submitting ---------------------------------------------------------------------------

    def submit(self, caller: Caller, body: dict, **extra) -> Job:
        spec = parse_spec(body)
        with self.checked(caller, spec) as file:
            return self._enqueue(caller, spec, file, **extra)

    def _enqueue(self, caller: Caller, spec: JobSpec, file: Path, snapshot_from: Path | None =
                 None, seed: int | None = None, wake: bool = True, **extra) -> Job:
        if not spec.experiment:
            spec.experiment = Path(spec.path).stem
        seed = self._seed(spec, file, seed)
        job = Job(id=0, user=caller.name, spec=spec, submitted_at=clock.now(),
                  groups=list(caller.groups), seed=seed,
                  dataset_resolved=self.pin_dataset(caller, spec), **extra)
        job = self.store.add(job)
        try:
            self._snapshot(job, file, snapshot_from)
        except Exception:
            job.state, job.reason = "failed", "could not snapshot the code"
            self.store.save(job)
            raise
        if wake:
            self.wake()
        return job

    @staticmethod
    def _seed(spec: JobSpec, file: Path, seed: int | None) -> int:
        """The job's seed, recorded and given as ``$MLOPS_SEED`` (``runtime.seed()``): the
        ``seed`` parameter if given; else a rerun's ``seed``; else the whole-number default
        of a ``seed`` the file declares (the author chose it); else a new one. A file
        declaring ``seed`` also gets the value as that parameter, so it is in the run's
        parameters too."""
        given = spec.params.get("seed")
        if isinstance(given, int) and not isinstance(given, bool):
            return given
        declared = declared_defaults(file).get("seed")
        if seed is None:
            default = declared[1] if declared else None
            seed = (default if isinstance(default, int) and not isinstance(default, bool)
                    else secrets.randbelow(MAX_SEED))
        if "seed" not in spec.params and declared is not None:
            spec.params["seed"] = seed
        return seed

    def pin_dataset(self, caller: Caller, spec: JobSpec) -> str:
        """``name@vN`` for a ``dataset_version`` of the form ``name@ref`` (ref: ``latest``, a
        tag or a version): what the reference means now, so a rerun reads the same data."""
        name, sep, ref = (spec.dataset_version or "").partition("@")
        if not sep or self.datasets is None:
            return ""
        return f"{name}@{self.datasets.resolve(caller, name, ref or 'latest').version}"

    def snapshot_code(self, user: str, path: str, file: Path, snap: Path) -> None:
        """Copy the checked folder of ``file`` (the staged copy) to ``snap`` and record its git
        commit and the diff of the folder, so the run can be repeated."""
        shutil.copytree(file.parent, snap)
        # git reads the repository where the file lives
        where = (self.workspace(user) / path).parent
        commit = _git(where, "rev-parse", "HEAD").strip()
        info = {"path": path, "git_commit": commit or None}
        if commit:
            info["git_root"] = _git(where, "rev-parse", "--show-toplevel").strip()
            diff = _git(where, "diff", "HEAD", "--", ".")
            if diff:
                (snap / "diff.patch").write_text(diff)
            info["dirty"] = bool(diff)
        (snap / "source.json").write_text(json.dumps(info, indent=1))

    def _snapshot(self, job: Job, file: Path, snapshot_from: Path | None) -> None:
        # Private from the start: the job's code is nobody else's business (the backend later
        # opens the directory to the job's own account).
        self.job_dir(job.id).mkdir(mode=0o700, parents=True, exist_ok=True)
        snap = self.job_dir(job.id) / "snapshot"
        if snapshot_from is not None:
            shutil.copytree(snapshot_from, snap)
            return
        self.snapshot_code(job.user, job.spec.path, file, snap)

    def locked_environment(self, job: Job) -> str:
        """The environment lock ``job`` ran with; :class:`Conflict` when it recorded none."""
        lock = read_untrusted(self.job_dir(job.id) / "environment.lock")
        if not lock or not lock.startswith("# python "):
            raise Conflict(f"job {job.id} recorded no environment lock (it "
                           f"{'never started' if job.started_at is None else 'ended first'}): "
                           "nothing to rebuild; rerun with edits instead")
        return lock

    def rerun(self, caller: Caller, job_id: int, params: dict | None = None,
              exact: bool = False) -> Job:
        """Queue a job again: ``exact`` reuses the code snapshot and parameters as they were;
        otherwise the file as it is now, with ``params`` merged over the old ones."""
        old = self.get(caller, job_id)
        if old.user != caller.name and not caller.is_admin:
            raise Forbidden(f"job {old.id} is {old.user}'s: only its owner reruns it (its code "
                            "snapshot is theirs); submit your own copy instead")
        body = old.spec.to_dict()
        if exact:
            if params:
                raise InvalidInput("rerun exactly takes no parameters; rerun with edits instead")
            if old.dataset_resolved:  # the version "latest" or a tag meant the first time
                body["dataset_version"] = old.dataset_resolved
            spec = parse_spec(body)
            self.projects.require_member(caller, spec.project)
            self.check_gpus(caller, spec)
            self.check_timeout(spec)
            snap = self.job_dir(old.id) / "snapshot"
            file = snap / Path(spec.path).name
            check_param_types(file, spec.params)
            lock = self.locked_environment(old)
            job = self._enqueue(caller, spec, file, snapshot_from=snap, seed=old.seed,
                                snapshot_of=old.snapshot_of or old.id, wake=False)
            # the lock as the control plane read it: the new job's process cannot change it
            (self.job_dir(job.id) / "environment.wanted").write_text(lock)
            job.environment = {"wanted": hashlib.sha256(lock.encode()).hexdigest(),
                               "of": old.id}
            self.store.save(job)
            self.wake()
            return job
        if params is not None and not isinstance(params, dict):
            raise InvalidInput("params must be an object of name: value")
        body["params"] = {**body["params"], **(params or {})}
        return self.submit(caller, body)

    # --- reading ------------------------------------------------------------------------------

    def get(self, caller: Caller, job_id: int) -> Job:
        try:
            job = self.store.get(int(job_id))
        except (TypeError, ValueError):
            raise NotFound(f"no job {job_id}") from None
        if job.user != caller.name and not caller.is_admin:
            project = self.projects.get(job.spec.project)
            if project is None or not self.projects.is_member(caller, project):
                raise NotFound(f"no job {job_id}")
        return job

    def view(self, job: Job) -> dict:
        """A job as the API shows it: with where its executed notebook is (workspace-relative)."""
        d = job.to_dict()
        d["executed_notebook"] = (f"mlops-jobs/{job.id}/{Path(job.spec.path).name}"
                                  if job.spec.kind == "notebook" and job.started_at else None)
        return d

    def list(self, caller: Caller, everyone: bool = False, **filters) -> list[Job]:
        user = None if (everyone and caller.is_admin) else caller.name
        return self.store.list(user=user, **filters)

    def queue(self, caller: Caller) -> list[dict]:
        """Every waiting and running job, by queue position; other users' jobs anonymised
        unless the caller is an administrator (people see they wait behind someone)."""
        out = []
        for j in sorted(self.store.active(), key=lambda j: (j.state != "running",
                                                             j.position or 10**6, j.id)):
            mine = j.user == caller.name or caller.is_admin
            out.append({"id": j.id if mine else None, "user": j.user if mine else "someone",
                        "state": j.state, "gpus": j.spec.gpus, "position": j.position,
                        "reason": j.reason if mine else "", "mine": j.user == caller.name})
        return out

    def logs(self, caller: Caller, job_id: int, offset: int = 0) -> dict:
        job = self.get(caller, job_id)
        path = self.job_dir(job.id) / "output.log"
        if offset < 0:
            raise InvalidInput("offset must be >= 0")
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                chunk = f.read(LOG_CHUNK)
        except FileNotFoundError:
            chunk = b""
        return {"text": chunk.decode("utf-8", "replace"), "offset": offset + len(chunk),
                "complete": job.done and len(chunk) < LOG_CHUNK}

    # --- stopping -----------------------------------------------------------------------------

    def cancel(self, caller: Caller, job_id: int) -> Job:
        job = self.get(caller, job_id)
        self.projects.require_change(caller, job.spec.project, job.user, f"job {job.id}")
        if job.state not in ACTIVE:
            raise Conflict(f"job {job.id} is {job.state} already")
        self.request_stop(job, CANCELLED, by=caller.name)
        return self.store.get(job.id)

    def request_stop(self, job: Job, why: str = CANCELLED, by: str = "") -> None:
        """Mark a job to be stopped; the runner stops it (or drops it from the queue).
        ``by``: the person asking (kept in the job's ``changes``)."""
        job = self.store.get(job.id)
        if job.state not in ACTIVE or job.cancel_requested:
            return
        job.cancel_requested = why
        other = f" by {by}" if by and by != job.user else ""
        if by:
            job.changes.append({"at": clock.now(), "actor": by, "action": why,
                                "by_other": by != job.user})
        if job.state == QUEUED:
            job.state, job.finished_at = why, clock.now()
            job.reason = f"{why} while queued{other}"
            job.position = None
        self.store.save(job)
        self.wake()
