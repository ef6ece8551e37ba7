"""A run's resource samples for the lab's charts: MLflow's system metrics (``system/...``:
CPU and memory use, GPU utilisation and memory) of a job's or trial's run, through the gateway
with the user's own token (so only runs they may read)."""
from __future__ import annotations

import asyncio

import tornado

from .experiment_views import TrackingHandler


class RunResourcesHandler(TrackingHandler):
    @tornado.web.authenticated
    async def get(self, run_id):
        async with self.tracking() as mlflow:
            run = await mlflow.get_run(run_id)
            keys = sorted(m["key"] for m in (run.get("data") or {}).get("metrics") or []
                          if m["key"].startswith("system/"))
            histories = await asyncio.gather(*(mlflow.metric_history(run_id, k) for k in keys))
        start = (run.get("info") or {}).get("start_time") or 0
        self.finish({"run_id": run_id, "metrics": {
            k.removeprefix("system/"): [[(m["timestamp"] - start) / 1000.0, m["value"]]
                                        for m in sorted(h, key=lambda m: m["timestamp"])]
            for k, h in zip(keys, histories)}})


ROUTES = [(r"runs/(?P<run_id>[0-9a-zA-Z_-]+)/resources", RunResourcesHandler)]
