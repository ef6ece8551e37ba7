"""The caller's GPU-hours in the lab: the control plane's ``api/usage`` with the user's own
token (their own hours, their managed projects', or everything for administrators)."""
from __future__ import annotations

import tornado

from .handlers import MlopsHandler


class UsageHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        csv = self.get_argument("format", "json") == "csv"
        client = self.control_plane()
        try:
            body = await client.gpu_usage(csv=csv)
        finally:
            await client.aclose()
        if csv:
            self.set_header("Content-Disposition", 'attachment; filename="gpu-hours.csv"')
            # jupyter_server's APIHandler.finish labels every answer JSON unless told otherwise.
            self.finish(body, set_content_type="text/csv; charset=utf-8")
            return
        self.finish(body)


ROUTES = [(r"usage", UsageHandler)]
