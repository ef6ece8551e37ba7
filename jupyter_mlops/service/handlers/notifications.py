"""The caller's notification feed (``api/notifications``): read it, mark entries read.

Only ever the caller's own entries (``core.notifications``); another person's id is a 404.
"""
from __future__ import annotations

from .base import ApiHandler


class NotificationsHandler(ApiHandler):
    async def get(self):
        # the document checks since/limit are whole numbers in range (core.api_schema)
        self.write_json(self.context.notifications.list(
            self.caller, since=int(self.get_argument("since", "") or 0),
            limit=int(self.get_argument("limit", "") or 100)))


class NotificationReadHandler(ApiHandler):
    async def post(self, notification_id):
        self.write_json(self.context.notifications.mark_read(
            self.caller, int(notification_id)).to_dict())


ROUTES = [
    (r"/notifications", NotificationsHandler),
    (r"/notifications/([0-9]+)/read", NotificationReadHandler),
]
