"""The caller's notification feed in the lab: the control plane's ``api/notifications``,
called with the user's own token (so only ever their own entries)."""
from __future__ import annotations

import tornado

from .handlers import MlopsHandler


class NotificationsHandler(MlopsHandler):
    @tornado.web.authenticated
    async def get(self):
        # the document checks since/limit are whole numbers in range (core.api_schema)
        client = self.control_plane()
        try:
            feed = await client.notifications(int(self.get_argument("since", "") or 0),
                                              int(self.get_argument("limit", "") or 100))
        finally:
            await client.aclose()
        self.finish(feed)


class NotificationReadHandler(MlopsHandler):
    @tornado.web.authenticated
    async def post(self, notification_id):
        client = self.control_plane()
        try:
            self.finish(await client.mark_notification_read(int(notification_id)))
        finally:
            await client.aclose()


ROUTES = [
    (r"notifications", NotificationsHandler),
    (r"notifications/([0-9]+)/read", NotificationReadHandler),
]
