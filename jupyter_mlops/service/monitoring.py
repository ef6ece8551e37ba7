"""The control plane's monitoring, built and run: ``MonitoringSettings`` (traitlets), the
:class:`~jupyter_mlops.core.monitoring.Monitoring` object, and its background work (writing
the traffic series every few seconds, sampling the disk)."""
from __future__ import annotations

import asyncio
import logging

from traitlets import Float
from traitlets.config import Configurable

from ..hub import process_tree
from ..core.monitoring import Monitoring
from ..core.monitoring.health import PlatformHealth
from ..core.monitoring.inputs import InputMonitor
from ..core.monitoring.timeseries import TrafficSeries
from ..serving.inputs import monitored_features

log = logging.getLogger("jupyter_mlops.monitoring")


class MonitoringSettings(Configurable):
    flush_seconds = Float(
        5.0,
        help="""How often the endpoints' traffic, counted in memory, is written to the
        database. What a crash of the control plane loses is at most this much traffic; reads
        (the monitoring view, /api/metrics) write first, so they see every answered call.""",
    ).tag(config=True)

    minute_retention_days = Float(
        8.0,
        help="""Days the per-minute traffic of each deployment version is kept (the last hour
        and day views read it; 8 days of minutes is 11,520 rows per version).""",
    ).tag(config=True)

    hour_retention_days = Float(
        90.0, help="Days the per-hour traffic is kept (the week view reads it).",
    ).tag(config=True)

    disk_sample_seconds = Float(
        600.0,
        help="""How often the size of each part of the data directory is measured (a walk of
        the directory tree: store, MLflow artifacts, workspaces). Growth per day and the
        warning before the disk fills come from these samples. 0: only at start.""",
    ).tag(config=True)

    disk_warn_percent = Float(
        90.0, help="The admin page warns when the data directory's disk is this full (%).",
    ).tag(config=True)

    disk_warn_days = Float(
        7.0,
        help="""The admin page warns when, at the growth of the last week, the disk fills
        within this many days.""",
    ).tag(config=True)


def build_monitoring(settings: MonitoringSettings, context) -> Monitoring:
    db, deployments = context.db, context.deployments
    from ..backends.model_resolvers import MlflowArtifactResolver
    from ..backends.monitoring_reference import MlflowReferenceData

    resolver = deployments.resolver
    reference = (MlflowReferenceData(resolver) if isinstance(resolver, MlflowArtifactResolver)
                 else None)

    def notify():
        feed = getattr(context, "notifications", None)  # the lab's notification feed
        return feed.notify if feed is not None else None

    return Monitoring(
        deployments,
        TrafficSeries(db, settings.minute_retention_days, settings.hour_retention_days),
        InputMonitor(db, reference, notify),
        PlatformHealth(db, context.data_dir,
                       lambda: process_tree.leftovers(context.data_dir),
                       settings.disk_warn_percent, settings.disk_warn_days),
        monitored_features)


async def run_monitoring(monitoring: Monitoring, settings: MonitoringSettings) -> None:
    """Write the traffic series and sample the disk until cancelled; a cancel (the control
    plane stopping cleanly) writes what was counted since the last round first."""
    next_disk = 0.0
    loop = asyncio.get_running_loop()
    try:
        while True:
            try:
                await asyncio.to_thread(monitoring.traffic.flush)
                if loop.time() >= next_disk:
                    await asyncio.to_thread(monitoring.health.sample_disk)
                    next_disk = (loop.time() + settings.disk_sample_seconds
                                 if settings.disk_sample_seconds > 0 else float("inf"))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("monitoring: background work failed; retrying")
            await asyncio.sleep(settings.flush_seconds)
    finally:
        # On the event loop's way out: a stop by the hub (SIGINT) must not cost the last
        # seconds of counts, only a crash may.
        try:
            monitoring.traffic.flush()
        except Exception:
            log.exception("monitoring: the last traffic could not be written")
