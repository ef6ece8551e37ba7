"""Jobs, sweeps and pipelines routes of the server extension: the lab's side of the control
plane's ``api/jobs``, ``api/sweeps`` and ``api/pipelines``, called with the user's own token."""
from __future__ import annotations

import json

import tornado

from ..core.errors import InvalidInput
from .handlers import MlopsHandler


class _Base(MlopsHandler):
    async def call(self, method: str, *args, status: int = 200):
        client = self.control_plane()
        try:
            result = await getattr(client, method)(*args)
        finally:
            await client.aclose()
        self.set_status(status)
        self.finish(json.dumps(result))


class JobsHandler(_Base):
    @tornado.web.authenticated
    async def get(self):
        await self.call("jobs", self.get_argument("all", "") in ("1", "true"))

    @tornado.web.authenticated
    async def post(self):
        await self.call("submit_job", self.json_body(), status=201)


class JobHandler(_Base):
    @tornado.web.authenticated
    async def get(self, job_id):
        await self.call("job", job_id)


class JobCancelHandler(_Base):
    @tornado.web.authenticated
    async def post(self, job_id):
        await self.call("cancel_job", job_id)


class JobRerunHandler(_Base):
    @tornado.web.authenticated
    async def post(self, job_id):
        body = self.json_body()
        await self.call("rerun_job", job_id, bool(body.get("exact")), body.get("params"),
                        status=201)


class JobLogsHandler(_Base):
    @tornado.web.authenticated
    async def get(self, job_id):
        try:
            offset = int(self.get_argument("offset", "0"))
        except ValueError:
            raise InvalidInput("offset must be a whole number") from None
        await self.call("job_logs", job_id, offset)


class SweepsHandler(_Base):
    @tornado.web.authenticated
    async def get(self):
        client = self.control_plane()
        try:
            sweeps = await client.sweeps()
        finally:
            await client.aclose()
        self.finish(json.dumps({"sweeps": sweeps}))

    @tornado.web.authenticated
    async def post(self):
        await self.call("create_sweep", self.json_body(), status=201)


class SweepHandler(_Base):
    @tornado.web.authenticated
    async def get(self, sweep_id):
        await self.call("sweep", sweep_id)


class SweepCancelHandler(_Base):
    @tornado.web.authenticated
    async def post(self, sweep_id):
        await self.call("cancel_sweep", sweep_id)


class PipelinesHandler(_Base):
    @tornado.web.authenticated
    async def get(self):
        client = self.control_plane()
        try:
            pipelines = await client.pipelines()
        finally:
            await client.aclose()
        self.finish(json.dumps({"pipelines": pipelines}))

    @tornado.web.authenticated
    async def post(self):
        await self.call("create_pipeline", self.json_body(), status=201)


class PipelineHandler(_Base):
    @tornado.web.authenticated
    async def get(self, pipeline_id):
        await self.call("pipeline", pipeline_id)


class PipelineCancelHandler(_Base):
    @tornado.web.authenticated
    async def post(self, pipeline_id):
        await self.call("cancel_pipeline", pipeline_id)


ROUTES = [
    (r"jobs", JobsHandler),
    (r"jobs/([0-9]+)", JobHandler),
    (r"jobs/([0-9]+)/cancel", JobCancelHandler),
    (r"jobs/([0-9]+)/rerun", JobRerunHandler),
    (r"jobs/([0-9]+)/logs", JobLogsHandler),
    (r"sweeps", SweepsHandler),
    (r"sweeps/([0-9]+)", SweepHandler),
    (r"sweeps/([0-9]+)/cancel", SweepCancelHandler),
    (r"pipelines", PipelinesHandler),
    (r"pipelines/([0-9]+)", PipelineHandler),
    (r"pipelines/([0-9]+)/cancel", PipelineCancelHandler),
]
