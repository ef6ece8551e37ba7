"""The lab's notification feed: what happened to a person's work, kept for them to read.

The control plane calls :meth:`Notifications.notify` when something a person should hear about
happens (their job, sweep or pipeline ended, someone else changed their deployment, an approval
waits for them, their server holds an idle GPU); JupyterLab polls the caller's own feed
(``GET api/notifications?since=<id>``) and shows each new entry with the lab's notification
API, an action opening ``link``.

Rules:

* a person reads and marks only their own notifications; another person's id is absent
  (:class:`NotFound`), as everywhere else;
* ids only grow (``since`` is a cursor: "everything after the last one I showed");
* each person keeps at most ``keep_per_user`` notifications, the oldest go first, so a chatty
  sweep cannot grow the database without bound;
* ``link`` is an absolute URL path (``/services/mlops/...``), an http(s) URL, or
  ``mlops:<kind>/<id>`` naming an object the lab opens in its own view (``mlops:jobs/12``,
  ``mlops:deployments/cells``); anything else (``javascript:``) is refused.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Iterable

import sqlalchemy as sa

from . import clock
from .db import Database
from .errors import InvalidInput, NotFound
from .roles import Caller

SCHEMA = [
    """CREATE TABLE notifications (
        id INTEGER PRIMARY KEY,
        username VARCHAR(255) NOT NULL,
        kind VARCHAR(64) NOT NULL,
        message TEXT NOT NULL,
        link TEXT,
        created FLOAT NOT NULL,
        is_read BOOLEAN NOT NULL DEFAULT FALSE
    )""",
    "CREATE INDEX notifications_by_user ON notifications (username, id)",
]

# ``job.failed``, ``deployment.changed``, ``approval.requested``, ``gpu.idle``...
KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}(\.[a-z][a-z0-9_-]{0,30})?$")
LINK_RE = re.compile(r"^(/(?!/)[^\s]*|https?://[^\s]+|mlops:[a-z-]+/[^\s]+)$")
# Kinds whose last part says something went wrong or waits on the reader: shown as warnings.
WARNING_WORDS = ("failed", "error", "rejected", "cancelled", "idle", "requested", "changed",
                 "stopped", "warning")
MAX_MESSAGE = 1000
MAX_LINK = 2000


@dataclass(frozen=True)
class Notification:
    id: int
    user: str
    kind: str
    level: str  # "info" or "warning": how the lab shows it
    message: str
    link: str | None
    created: float
    read: bool

    def to_dict(self) -> dict:
        return asdict(self)


def level_of(kind: str) -> str:
    last = kind.rsplit(".", 1)[-1]
    return "warning" if any(w in last for w in WARNING_WORDS) else "info"


def _row(r) -> Notification:
    return Notification(id=int(r["id"]), user=r["username"], kind=r["kind"],
                        level=level_of(r["kind"]), message=r["message"], link=r["link"],
                        created=float(r["created"]), read=bool(r["is_read"]))


class Notifications:
    """The feed, in the control plane's database."""

    def __init__(self, db: Database, keep_per_user: int = 200):
        if keep_per_user < 1:
            raise InvalidInput("a notification feed keeps at least one entry per person")
        self.db = db
        self.keep_per_user = keep_per_user
        try:
            db.migrate("notifications", SCHEMA)
        except sa.exc.OperationalError:
            time.sleep(0.2)  # another process migrated at the same moment
            db.migrate("notifications", SCHEMA)

    def notify(self, users: Iterable[str], kind: str, message: str,
               link: str | None = None) -> list[Notification]:
        """Tell each of ``users`` (usernames; repeats and empty names skipped) ``message``.

        All or none are stored (one transaction). Returns what was stored.
        """
        if isinstance(users, str):
            raise InvalidInput("notify takes a list of usernames, not one string")
        names = list(dict.fromkeys(u for u in users if isinstance(u, str) and u))
        if not isinstance(kind, str) or not KIND_RE.match(kind):
            raise InvalidInput(f"a notification kind looks like 'job.failed', not {kind!r}")
        if not isinstance(message, str) or not message.strip():
            raise InvalidInput("a notification needs a message")
        message = message.strip()
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 1] + "…"
        if link is not None and (not isinstance(link, str) or len(link) > MAX_LINK
                                 or not LINK_RE.match(link)):
            raise InvalidInput(
                "a notification link is a URL path, an http(s) URL or mlops:<kind>/<id>, "
                f"not {str(link)[:80]!r}")
        if not names:
            return []
        at = clock.now()
        ids = []
        with self.db.tx() as conn:
            # Ids computed here rather than by SERIAL/AUTOINCREMENT: one statement for SQLite
            # and Postgres alike. The newest row is never pruned, so ids never repeat.
            next_id = conn.execute(sa.text(
                "SELECT COALESCE(MAX(id), 0) + 1 FROM notifications")).scalar_one()
            for name in names:
                conn.execute(sa.text(
                    "INSERT INTO notifications (id, username, kind, message, link, created,"
                    " is_read) VALUES (:i, :u, :k, :m, :l, :c, :r)"),
                    {"i": next_id, "u": name, "k": kind, "m": message, "l": link, "c": at,
                     "r": False})
                ids.append(next_id)
                next_id += 1
                self._prune(conn, name)
        rows = self.db.query(
            f"SELECT * FROM notifications WHERE id IN ({','.join(map(str, ids))}) ORDER BY id")
        return [_row(r) for r in rows]

    def _prune(self, conn, name: str) -> None:
        cutoff = conn.execute(sa.text(
            "SELECT id FROM notifications WHERE username = :u ORDER BY id DESC"
            " LIMIT 1 OFFSET :k"), {"u": name, "k": self.keep_per_user - 1}).first()
        if cutoff:
            conn.execute(sa.text("DELETE FROM notifications WHERE username = :u AND id < :c"),
                         {"u": name, "c": cutoff[0]})

    def list(self, caller: Caller, since: int = 0, limit: int = 100) -> dict:
        """The caller's own notifications after id ``since``, oldest first (at most ``limit``),
        and how many of all theirs are unread."""
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidInput("since is the id of a notification (a whole number >= 0)")
        limit = max(1, min(int(limit), 500))
        rows = self.db.query(
            "SELECT * FROM notifications WHERE username = :u AND id > :s ORDER BY id"
            " LIMIT :n", u=caller.name, s=since, n=limit)
        unread = self.db.query(
            "SELECT COUNT(*) AS n FROM notifications WHERE username = :u AND is_read = :f",
            u=caller.name, f=False)[0]["n"]
        last = self.db.query("SELECT COALESCE(MAX(id), 0) AS m FROM notifications"
                             " WHERE username = :u", u=caller.name)[0]["m"]
        return {"notifications": [_row(r).to_dict() for r in rows], "unread": int(unread),
                "last_id": int(last)}

    def mark_read(self, caller: Caller, notification_id: int) -> Notification:
        """Mark one of the caller's notifications read (another person's is absent)."""
        with self.db.tx() as conn:
            done = conn.execute(sa.text(
                "UPDATE notifications SET is_read = :t WHERE id = :i AND username = :u"),
                {"t": True, "i": int(notification_id), "u": caller.name}).rowcount
        if not done:
            raise NotFound(f"no notification {notification_id}")
        rows = self.db.query("SELECT * FROM notifications WHERE id = :i",
                             i=int(notification_id))
        return _row(rows[0])
