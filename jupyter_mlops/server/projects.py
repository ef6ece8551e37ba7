"""The user's projects, for the sidebar: a thin pass-through to the control plane."""
from __future__ import annotations

import os

import tornado

from .handlers import MlopsHandler


def _pages_url() -> str:
    """Browser URL of the control plane's project pages."""
    return os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/services/mlops/projects"


class ProjectsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        client = self.control_plane()
        try:
            projects = await client.projects()
        finally:
            await client.aclose()
        self.finish({"projects": projects, "pages_url": _pages_url()})


class ProjectHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self, name: str):
        client = self.control_plane()
        try:
            project = await client.project(name)
        finally:
            await client.aclose()
        self.finish({**project, "page_url": f"{_pages_url()}/{name}"})


ROUTES = [
    (r"projects", ProjectsHandler),
    (r"projects/(?P<name>[^/]+)", ProjectHandler),
]
