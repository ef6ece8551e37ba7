"""``/metrics`` of a model server, in Prometheus' text format (prometheus_client)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self, deployment: str, version: str):
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge("mlops_model_info", "The model this server serves.", ["deployment", "version"],
              registry=r).labels(deployment, version).set(1)
        self._requests = Counter("mlops_invocations", "Requests to /invocations by status.",
                                 ["status"], registry=r)
        self._by_status: dict = {}
        self._latency = Histogram("mlops_invocation_seconds",
                                  "Time from a request's last byte to its answer.",
                                  buckets=_LATENCY_BUCKETS, registry=r)
        self._batch = Histogram("mlops_batch_requests", "Requests per model call.",
                                buckets=_BATCH_BUCKETS, registry=r)
        self._predict = Histogram("mlops_predict_seconds", "Time of one model call.",
                                  buckets=_LATENCY_BUCKETS, registry=r)

    def request(self, status: int, seconds: float) -> None:
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = self._requests.labels(str(status))
        child.inc()
        self._latency.observe(seconds)

    def batch(self, size: int, seconds: float) -> None:
        self._batch.observe(size)
        self._predict.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
