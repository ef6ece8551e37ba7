"""The control plane's URL table: data, not code. Later capabilities append their routes here."""
from .handlers import datasets
from .handlers.base import NotFoundHandler
from .handlers.gpus import (GpuAllocationsHandler, GpuQuotaHandler, GpuQuotasHandler,
                            GpusHandler)
from .handlers.status import StatusHandler


def routes(prefix: str, context) -> list[tuple]:
    """``prefix`` is the service prefix, e.g. ``/services/mlops/``."""
    api = prefix.rstrip("/") + "/api"
    table = [
        (r"/status", StatusHandler),
        (r"/gpus", GpusHandler),
        (r"/gpus/allocations", GpuAllocationsHandler),
        (r"/gpus/quotas", GpuQuotasHandler),
        (r"/gpus/quotas/([^/]+)/([^/]+)", GpuQuotaHandler),
        *datasets.ROUTES,
    ]
    out = [(api + path, handler, {"context": context}) for path, handler in table]
    out.append((api + r"/.*", NotFoundHandler, {"context": context}))
    return out
