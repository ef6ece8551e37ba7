"""Jobs, sweeps and pipelines routes of the control plane (``api/jobs``, ``api/sweeps``,
``api/pipelines``). Each a few lines over ``core.jobs``; another user's job answers 404."""
from __future__ import annotations

from ...core.errors import InvalidInput
from .base import ApiHandler


def _int_arg(handler, name: str, default: int = 0) -> int:
    raw = handler.get_argument(name, None)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number") from None


class JobsHandler(ApiHandler):
    async def get(self):
        p = self.context.jobs
        everyone = self.get_argument("all", "") in ("1", "true")
        self.write_json({"jobs": [p.jobs.view(j) for j in p.jobs.list(self.caller, everyone)],
                         "queue": p.jobs.queue(self.caller)})

    async def post(self):
        job = self.context.jobs.jobs.submit(self.caller, self.get_json_body())
        self.write_json(self.context.jobs.jobs.view(job), status=201)


class JobHandler(ApiHandler):
    async def get(self, job_id):
        jobs = self.context.jobs.jobs
        self.write_json(jobs.view(jobs.get(self.caller, job_id)))


class JobCancelHandler(ApiHandler):
    async def post(self, job_id):
        jobs = self.context.jobs.jobs
        self.write_json(jobs.view(jobs.cancel(self.caller, job_id)))


class JobRerunHandler(ApiHandler):
    async def post(self, job_id):
        body = self.get_json_body()
        unknown = set(body) - {"exact", "params"}
        if unknown:
            raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
        jobs = self.context.jobs.jobs
        job = jobs.rerun(self.caller, job_id, params=body.get("params"),
                         exact=bool(body.get("exact")))
        self.write_json(jobs.view(job), status=201)


class JobLogsHandler(ApiHandler):
    async def get(self, job_id):
        self.write_json(self.context.jobs.jobs.logs(self.caller, job_id,
                                                    _int_arg(self, "offset")))


class SweepsHandler(ApiHandler):
    async def get(self):
        self.write_json({"sweeps": self.context.jobs.sweeps.list(self.caller)})

    async def post(self):
        self.write_json(self.context.jobs.sweeps.create(self.caller, self.get_json_body()),
                        status=201)


class SweepHandler(ApiHandler):
    async def get(self, sweep_id):
        self.write_json(self.context.jobs.sweeps.get(self.caller, sweep_id))


class SweepCancelHandler(ApiHandler):
    async def post(self, sweep_id):
        self.write_json(self.context.jobs.sweeps.cancel(self.caller, sweep_id))


class PipelinesHandler(ApiHandler):
    async def get(self):
        self.write_json({"pipelines": self.context.jobs.pipelines.list(self.caller)})

    async def post(self):
        self.write_json(self.context.jobs.pipelines.create(self.caller, self.get_json_body()),
                        status=201)


class PipelineHandler(ApiHandler):
    async def get(self, pipeline_id):
        self.write_json(self.context.jobs.pipelines.get(self.caller, pipeline_id))


class PipelineCancelHandler(ApiHandler):
    async def post(self, pipeline_id):
        self.write_json(self.context.jobs.pipelines.cancel(self.caller, pipeline_id))


ROUTES = [
    (r"/jobs", JobsHandler),
    (r"/jobs/([0-9]+)", JobHandler),
    (r"/jobs/([0-9]+)/cancel", JobCancelHandler),
    (r"/jobs/([0-9]+)/rerun", JobRerunHandler),
    (r"/jobs/([0-9]+)/logs", JobLogsHandler),
    (r"/sweeps", SweepsHandler),
    (r"/sweeps/([0-9]+)", SweepHandler),
    (r"/sweeps/([0-9]+)/cancel", SweepCancelHandler),
    (r"/pipelines", PipelinesHandler),
    (r"/pipelines/([0-9]+)", PipelineHandler),
    (r"/pipelines/([0-9]+)/cancel", PipelineCancelHandler),
]
