"""GPU-hours for everyone (``/api/usage``): one's own, a manager's projects, an administrator's
everything, as JSON or CSV; the logic is core.usage."""
from __future__ import annotations

from ...core.usage import as_csv, report_for
from .base import ApiHandler


class UsageHandler(ApiHandler):
    """GET ``?format=json|csv``: the GPU-hours (7 and 30 days, by project) the caller may see."""

    async def get(self):
        self.context.admin.sync()  # open sessions counted up to now
        report = report_for(self.context.admin.usage, self.context.projects, self.caller)
        if self.get_query_argument("format", "json") == "csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="gpu-hours.csv"')
            self.finish(as_csv(report))
            return
        self.write_json(report)


ROUTES = [(r"/usage", UsageHandler)]
