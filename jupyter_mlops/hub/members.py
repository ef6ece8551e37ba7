"""The hub group of the users the control plane may act for: every user but hub administrators.

The control plane mints tokens of a job's user (``core.jobs.tracking``). JupyterHub's ``tokens``
scope, unfiltered, would let it mint a token of *any* user with any of their scopes, an
administrator's ``admin:users`` included. Its role therefore holds only
``tokens!group=mlops-members``, and the hub itself (this module, in the hub's process) keeps
that group equal to "users who are not hub administrators": whenever the hub writes a user
(created, logged in, active, made or unmade administrator), the same database transaction puts
them in or takes them out (the first write also sorts everyone already there). The control plane cannot change the group (its ``groups`` scope is
filtered to the two lab-role groups) nor anyone's administrator flag, so no token it can obtain
is an administrator's.
"""
from __future__ import annotations

MEMBERS_GROUP = "mlops-members"

_installed = False
_everyone_seen = False


def _sync_members(session, flush_context, instances) -> None:
    global _everyone_seen
    from jupyterhub import orm

    users = [o for o in (*session.new, *session.dirty) if isinstance(o, orm.User)]
    if not users:
        return
    if not _everyone_seen:  # the first write also covers users from before this rule
        _everyone_seen = True
        with session.no_autoflush:
            users += [u for u in session.query(orm.User) if u not in users]
    group = None
    for user in users:
        member = any(g.name == MEMBERS_GROUP for g in user.groups)
        if member == (not user.admin):
            continue
        if group is None:
            with session.no_autoflush:
                group = session.query(orm.Group).filter_by(name=MEMBERS_GROUP).first()
            if group is None:
                group = orm.Group(name=MEMBERS_GROUP)
                session.add(group)
        if user.admin:
            user.groups = [g for g in user.groups if g.name != MEMBERS_GROUP]
        else:
            user.groups.append(group)


def install() -> None:
    """Keep :data:`MEMBERS_GROUP` in step with the hub's users (in the hub's process; once)."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    event.listen(Session, "before_flush", _sync_members)
    _installed = True
