"""URL table of the server extension (under ``<base_url>mlops/api/``)."""
from jupyter_server.utils import url_path_join

from ..core import api_schema
from . import datasets
from . import experiments as exp
from . import models
from . import deployments
from . import projects
from . import jobs
from . import notifications
from . import usage
from . import telemetry
from . import template
from . import lineage
from .handlers import NotFoundHandler, StatusHandler

NAMESPACE = "mlops"

ROUTES = [
    (r"status", StatusHandler),
    *deployments.ROUTES,  # deployments, try-it, client tokens
    *datasets.ROUTES,  # the dataset catalog, publish, status, thumbnails
    *projects.ROUTES,  # the user's projects for the sidebar
    *jobs.ROUTES,  # jobs, sweeps, pipelines
    *notifications.ROUTES,  # the caller's notification feed
    *usage.ROUTES,  # the caller's GPU-hours
    *telemetry.ROUTES,  # a run's resource samples (job view)
    *template.ROUTES,  # copy a project template into the workspace
    *lineage.ROUTES,  # dataset version <-> runs <-> model versions <-> deployments
    # experiments, runs and the model registry (MLflow through the gateway)
    (r"experiments", exp.ExperimentsHandler),
    (r"experiments/(?P<experiment_id>[^/]+)", exp.ExperimentHandler),
    (r"experiments/(?P<experiment_id>[^/]+)/runs", exp.RunsHandler),
    (r"runs/compare", exp.CompareHandler),
    (r"runs/(?P<run_id>[0-9a-zA-Z_-]+)", exp.RunHandler),
    (r"runs/(?P<run_id>[0-9a-zA-Z_-]+)/artifacts", exp.ArtifactsHandler),
    (r"runs/(?P<run_id>[0-9a-zA-Z_-]+)/artifact", exp.ArtifactHandler),
    (r"models", models.ModelsHandler),
    (r"models/register", models.RegisterHandler),
    (r"models/(?P<name>[^/]+)/versions", models.ModelVersionsHandler),
    (r"models/(?P<name>[^/]+)/aliases/(?P<alias>[^/]+)", models.AliasHandler),
]


def setup_route_handlers(web_app, settings) -> None:
    base = url_path_join(web_app.settings["base_url"], NAMESPACE, "api")
    # the input schemas (core.api_schema), or no start at all
    api_schema.operations(api_schema.SERVER, url_path_join(web_app.settings["base_url"],
                                                           NAMESPACE + "/"))
    # Last: any other path under the API, or a parameter the patterns refuse, is a JSON 404.
    table = [*ROUTES, (r".*", NotFoundHandler)]
    web_app.add_handlers(
        ".*$",
        [(url_path_join(base, path), handler, {"settings": settings}) for path, handler in table],
    )
