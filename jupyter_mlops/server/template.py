"""Project templates: copy one into the workspace (the sidebar's "Copy the cell-detection
template"). A thin layer over :mod:`jupyter_mlops.demo.template`."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import tornado

from ..demo import template
from .handlers import MlopsHandler


class TemplatesHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        self.finish({"templates": template.listing()})

    @tornado.web.authenticated
    async def post(self):
        body = self.json_body()
        root = Path(self.settings.get("server_root_dir") or os.getcwd())
        copied = await asyncio.to_thread(template.copy_to, body.get("dest"), root,
                                         str(body.get("template") or "cells"))
        self.set_status(201)
        self.finish(copied)


ROUTES = [
    (r"template", TemplatesHandler),
]
