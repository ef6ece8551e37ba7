"""Jobs, sweeps, pipelines and batch predictions of the control plane."""
from __future__ import annotations

from . import parse


class JobCalls:
    def jobs(self, everyone: bool = False):
        """``{"jobs": [...], "queue": [...]}``: the caller's jobs and the queue as they see it
        (``everyone``: every job the caller may see)."""
        return self._send("GET", "api/jobs", params={"all": "1"} if everyone else None)

    def submit_job(self, body: dict):
        return self._send("POST", "api/jobs", json=body)

    def job(self, job_id: int):
        return self._send("GET", f"api/jobs/{int(job_id)}")

    def cancel_job(self, job_id: int):
        return self._send("POST", f"api/jobs/{int(job_id)}/cancel")

    def rerun_job(self, job_id: int, exact: bool = False, params: dict | None = None):
        """The same job again: ``exact`` (same code snapshot and parameters) or the current
        code with ``params`` changed."""
        body = {"exact": exact} if exact else {"params": params or {}}
        return self._send("POST", f"api/jobs/{int(job_id)}/rerun", json=body)

    def job_logs(self, job_id: int, offset: int = 0):
        return self._send("GET", f"api/jobs/{int(job_id)}/logs",
                          params={"offset": int(offset)})

    def sweeps(self):
        return self._send("GET", "api/sweeps", parse.key("sweeps"))

    def create_sweep(self, body: dict):
        return self._send("POST", "api/sweeps", json=body)

    def sweep(self, sweep_id: int):
        return self._send("GET", f"api/sweeps/{int(sweep_id)}")

    def cancel_sweep(self, sweep_id: int):
        return self._send("POST", f"api/sweeps/{int(sweep_id)}/cancel")

    def pipelines(self):
        return self._send("GET", "api/pipelines", parse.key("pipelines"))

    def create_pipeline(self, body: dict):
        return self._send("POST", "api/pipelines", json=body)

    def pipeline(self, pipeline_id: int):
        return self._send("GET", f"api/pipelines/{int(pipeline_id)}")

    def cancel_pipeline(self, pipeline_id: int):
        return self._send("POST", f"api/pipelines/{int(pipeline_id)}/cancel")

    def create_batch_prediction(self, body: dict):
        """A model version over a dataset version, as a job (``{job, outputs, ...}``)."""
        return self._send("POST", "api/batch-predictions", json=body)
