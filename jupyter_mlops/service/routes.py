"""The control plane's URL table: data, not code. Later capabilities append their routes here."""
from ..core import api_schema
from .handlers import datasets
from .handlers import admin, pages, projects
from .handlers import deployments
from .handlers import jobs
from .handlers import gpu_idle
from .handlers import usage
from .handlers import monitoring
from .handlers import notifications
from .handlers import lineage
from .handlers.base import NoSuchEndpointHandler, NotFoundHandler
from .handlers.gpus import (GpuAllocationsHandler, GpuAvailabilityHandler, GpuQuotaHandler,
                            GpuQuotasHandler, GpusHandler, ServerGpuHandler, ServerGpusHandler)
from .handlers.status import StatusHandler


def routes(prefix: str, context) -> list[tuple]:
    """``prefix`` is the service prefix, e.g. ``/services/mlops/``."""
    api_schema.operations(api_schema.SERVICE, prefix)  # the input schemas, or no start at all
    api = prefix.rstrip("/") + "/api"
    table = [
        (r"/status", StatusHandler),
        *deployments.ROUTES,
        (r"/gpus", GpusHandler),
        (r"/gpus/allocations", GpuAllocationsHandler),
        (r"/gpus/allocations/servers", ServerGpusHandler),
        (r"/gpus/allocations/servers/([^/]+)", ServerGpuHandler),
        (r"/gpus/availability", GpuAvailabilityHandler),
        *gpu_idle.ROUTES,
        *usage.ROUTES,
        (r"/gpus/quotas", GpuQuotasHandler),
        (r"/gpus/quotas/([^/]+)/([^/]+)", GpuQuotaHandler),
        *datasets.ROUTES,
        *lineage.ROUTES,
    ]
    table += [*admin.ROUTES, *projects.ROUTES]
    table += jobs.ROUTES
    table += monitoring.ROUTES
    table += notifications.ROUTES
    kw = {"context": context, "service_prefix": prefix}
    out = [(api + path, handler, kw) for path, handler in table]
    # Last of the API: any other path, or a parameter the patterns above refuse, is a JSON 404.
    out.append((api + r"/.*", NotFoundHandler, kw))
    out.append((prefix.rstrip("/") + "/" + deployments.ENDPOINT_ROUTE[0],
                deployments.ENDPOINT_ROUTE[1], kw))
    out.append((prefix.rstrip("/") + "/endpoints/.*", NoSuchEndpointHandler, kw))
    # Server-rendered pages (admin page, project pages), outside /api.
    page_table = [(r"/?", pages.RootPageHandler), *admin.PAGES, *projects.PAGES, *gpu_idle.PAGES,
                  *deployments.PAGES]
    out += [(prefix.rstrip("/") + path, handler, kw) for path, handler in page_table]
    return out
