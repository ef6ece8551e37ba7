"""URL table of the server extension (under ``<base_url>mlops/api/``)."""
from jupyter_server.utils import url_path_join

from ..core import api_schema
from . import dataset_workspace
from . import experiment_views as exp
from . import models
from . import passthrough
from . import telemetry
from . import template
from .handlers import NotFoundHandler, StatusHandler

NAMESPACE = "mlops"

ROUTES = [
    (r"status", StatusHandler),
    *dataset_workspace.ROUTES,  # publish, upload, folder status, thumbnails (before the catalog)
    # forwarded to the control plane: catalog, jobs, deployments, projects, notifications,
    # GPU-hours, lineage
    *passthrough.ROUTES,
    *telemetry.ROUTES,  # a run's resource samples (job view)
    *template.ROUTES,  # copy a project template into the workspace
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
