"""Training jobs, hyperparameter sweeps and pipelines: model, queue, runner (no web code)."""
from .model import Job, JobSpec, parse_spec
from .runner import JobRunner
from .service import Jobs
from .store import JobStore

__all__ = ["Job", "JobSpec", "JobRunner", "JobStore", "Jobs", "parse_spec"]
