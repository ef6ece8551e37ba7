"""Lineage routes of the server extension: passthroughs of the control plane's, called with the
user's own hub token (the control plane decides what the user may see)."""
from __future__ import annotations

from urllib.parse import quote

import tornado

from ..core.datasets.manifest import NAME_PATTERN, REF_PATTERN
from .datasets import DatasetsBase


class DatasetVersionLineageHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name, ref):
        await self.proxy("GET", f"api/datasets/{name}/versions/{ref}/lineage")


class DeploymentLineageHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name):
        await self.proxy("GET", f"api/deployments/{name}/lineage")


class ModelVersionLineageHandler(DatasetsBase):
    @tornado.web.authenticated
    async def get(self, name, version):
        await self.proxy("GET", f"api/models/{quote(name, safe='')}/versions/{version}/lineage")


ROUTES = [
    (rf"datasets/(?P<name>{NAME_PATTERN})/versions/(?P<ref>{REF_PATTERN})/lineage",
     DatasetVersionLineageHandler),
    (r"deployments/(?P<name>[a-z0-9-]+)/lineage", DeploymentLineageHandler),
    (r"models/(?P<name>[^/]+)/versions/(?P<version>[0-9]{1,9})/lineage",
     ModelVersionLineageHandler),
]
