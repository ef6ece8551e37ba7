"""The platform's and the deployments' metrics in Prometheus' text format (``GET /api/metrics``).

Names and labels are documented in docs/monitoring.md; the Grafana dashboard in
docs/grafana-dashboard.json reads them. Counters come from the time series the control plane
keeps (they restart from what is kept when a series is pruned, which ``rate()`` reads as a
counter reset); gauges are read at scrape time.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .timeseries import BATCH_BOUNDS, LATENCY_BOUNDS_MS, Bucket


def _histogram(name, doc, labels, series, bounds, scale, hist_of, sum_of):
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, b in series:
        hist = hist_of(b)
        acc, buckets = 0, []
        for bound, n in zip([*bounds, None], hist):
            acc += n
            buckets.append(("+Inf" if bound is None else repr(bound * scale), acc))
        fam.add_metric(values, buckets, sum_of(b))
    return fam


class PlatformCollector:
    """A prometheus_client collector over the monitoring objects, read at each scrape."""

    def __init__(self, snapshot):
        self.snapshot = snapshot  # () -> dict with deployments, totals, drift, health

    def collect(self):
        s = self.snapshot()
        info = GaugeMetricFamily("mlops_deployment_info", "A deployment and the version it "
                                 "serves (always 1).", labels=["deployment", "project", "model",
                                                               "version", "status"])
        for d in s["deployments"]:
            info.add_metric([d["name"], d["project"], d["model_name"],
                             d["serving_version"] or "", d["status"]], 1)
        yield info
        totals: dict[tuple[str, str], Bucket] = s["totals"]
        series = [([dep, ver], b) for (dep, ver), b in sorted(totals.items())]
        req = CounterMetricFamily("mlops_deployment_requests", "Calls of a deployment's "
                                  "endpoint through the control plane.",
                                  labels=["deployment", "version"])
        err = CounterMetricFamily("mlops_deployment_errors", "Calls answered with an error, "
                                  "by class (4xx: the caller's input; 5xx: the model server).",
                                  labels=["deployment", "version", "class"])
        for values, b in series:
            req.add_metric(values, b.requests)
            err.add_metric([*values, "4xx"], b.errors_4xx)
            err.add_metric([*values, "5xx"], b.errors_5xx)
        yield req
        yield err
        yield _histogram("mlops_deployment_latency_seconds", "Time the control plane waited "
                         "for the model server's answer.", ["deployment", "version"], series,
                         LATENCY_BOUNDS_MS, 0.001, lambda b: b.latency_hist,
                         lambda b: b.latency_sum / 1000.0)
        yield _histogram("mlops_deployment_batch_rows", "Rows (inputs) per call.",
                         ["deployment", "version"], series, BATCH_BOUNDS, 1,
                         lambda b: b.batch_hist, lambda b: float(b.rows_sum))
        drifted = GaugeMetricFamily("mlops_deployment_drifted", "1 while the recorded inputs "
                                    "of a deployment drifted past its threshold.",
                                    labels=["deployment", "version"])
        for name, st in sorted(s["drift"].items()):
            drifted.add_metric([name, st["version"]], 1 if st["drifted"] else 0)
        yield drifted
        health = s["health"]
        up = GaugeMetricFamily("mlops_process_up", "1 while a platform process runs.",
                               labels=["kind", "name"])
        cpu = GaugeMetricFamily("mlops_process_cpu_percent", "CPU use (% of one core).",
                                labels=["kind", "name"])
        mem = GaugeMetricFamily("mlops_process_resident_bytes", "Resident memory.",
                                labels=["kind", "name"])
        restarts = GaugeMetricFamily("mlops_process_restarts_7d", "Restarts in the last 7 "
                                     "days.", labels=["kind", "name"])
        for g in health["services"]:
            labels = [g["kind"], g["name"]]
            up.add_metric(labels, 1 if g["state"] == "running" else 0)
            cpu.add_metric(labels, g["cpu_percent"])
            mem.add_metric(labels, g["rss_bytes"])
            restarts.add_metric(labels, g["restarts_7d"])
        yield from (up, cpu, mem, restarts)
        disk = health["disk"]
        yield GaugeMetricFamily("mlops_disk_total_bytes", "Size of the data directory's disk.",
                                value=disk["total_bytes"])
        yield GaugeMetricFamily("mlops_disk_free_bytes", "Free space on it.",
                                value=disk["free_bytes"])
        parts = GaugeMetricFamily("mlops_data_dir_bytes", "Bytes in each part of the data "
                                  "directory (at the last disk sample).", labels=["part"])
        for p in disk["parts"]:
            parts.add_metric([p["name"]], p["bytes"])
        yield parts
        q = health["queue"]
        yield GaugeMetricFamily("mlops_jobs_queued", "Jobs waiting to run.", value=q["queued"])
        yield GaugeMetricFamily("mlops_jobs_running", "Jobs running.", value=q["running"])
        yield GaugeMetricFamily("mlops_jobs_longest_wait_seconds", "How long the oldest queued "
                                "job has waited (0: none waits).",
                                value=q["longest_wait_s"] or 0)


def render(snapshot) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector(snapshot))
    return generate_latest(registry), CONTENT_TYPE_LATEST
