"""Lineage routes: from a dataset version down to runs, model versions and deployments, and
from a deployment or a model version back to dataset versions. What each caller may see is
decided in ``core.datasets.lineage``; MLflow is read on its unix socket."""
from __future__ import annotations

from ...backends.mlflow_lineage import MlflowLineageRecords
from ...core.datasets.lineage import Lineage
from ...core.datasets.manifest import NAME_PATTERN, REF_PATTERN
from .base import ApiHandler


class LineageHandler(ApiHandler):
    @property
    def lineage(self) -> Lineage:
        resolver = self.context.deployments.resolver  # where the MLflow server listens
        return Lineage(self.context.datasets, self.context.deployments, self.context.projects,
                       MlflowLineageRecords(resolver.socket_path, resolver.prefix))


class DatasetVersionLineageHandler(LineageHandler):
    async def get(self, name, ref):
        self.write_json(await self.lineage.of_dataset_version(self.caller, name, ref))


class DeploymentLineageHandler(LineageHandler):
    async def get(self, name):
        self.write_json(await self.lineage.of_deployment(self.caller, name))


class ModelVersionLineageHandler(LineageHandler):
    async def get(self, name, version):
        self.write_json(await self.lineage.of_model_version(self.caller, name, version))


ROUTES = [
    (rf"/datasets/({NAME_PATTERN})/versions/({REF_PATTERN})/lineage",
     DatasetVersionLineageHandler),
    (r"/deployments/([a-z0-9-]+)/lineage", DeploymentLineageHandler),
    (r"/models/([^/]+)/versions/([0-9]{1,9})/lineage", ModelVersionLineageHandler),
]
