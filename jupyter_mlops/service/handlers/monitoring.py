"""Monitoring routes: a deployment's traffic and drift, its input recording, the platform's
health (administrators) and the Prometheus export. Domain in ``core.monitoring``."""
from __future__ import annotations

import asyncio

from ...core import roles
from .base import ApiHandler


class DeploymentMetricsHandler(ApiHandler):
    """``GET deployments/<name>/metrics?window=1h|1d|7d``: traffic per version over time."""

    async def get(self, name):
        window = self.get_query_argument("window", "1h")
        self.write_json(await asyncio.to_thread(self.context.monitoring.metrics, self.caller,
                                                name, window))


class DeploymentDriftHandler(ApiHandler):
    """``GET deployments/<name>/drift``: recent inputs against the version's reference."""

    async def get(self, name):
        self.write_json(await self.context.monitoring.drift(self.caller, name))


class DeploymentMonitoringHandler(ApiHandler):
    """``GET``/``PUT deployments/<name>/monitoring``: input recording (opt-in), sampling rate,
    retention and drift threshold."""

    async def get(self, name):
        self.write_json(self.context.monitoring.settings(self.caller, name))

    async def put(self, name):
        self.write_json(self.context.monitoring.set_settings(self.caller, name,
                                                             self.get_json_body()))


class PlatformHealthHandler(ApiHandler):
    """``GET admin/health``: services, CPU/memory, disk and queue (administrators)."""

    required_scopes = (roles.ADMIN,)

    async def get(self):
        self.write_json(await asyncio.to_thread(self.context.monitoring.health.report))


class PrometheusHandler(ApiHandler):
    """``GET metrics``: Prometheus text, for administrators and tokens scoped to read it."""

    required_scopes = (roles.ADMIN, roles.METRICS)

    async def get(self):
        from ...core.monitoring.prometheus import render

        body, ctype = await asyncio.to_thread(render, self.context.monitoring.snapshot)
        self.set_header("Content-Type", ctype)
        self.finish(body)


ROUTES = [
    (r"/deployments/([a-z0-9-]+)/metrics", DeploymentMetricsHandler),
    (r"/deployments/([a-z0-9-]+)/drift", DeploymentDriftHandler),
    (r"/deployments/([a-z0-9-]+)/monitoring", DeploymentMonitoringHandler),
    (r"/admin/health", PlatformHealthHandler),
    (r"/metrics", PrometheusHandler),
]
