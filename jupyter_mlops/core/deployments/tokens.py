"""Endpoint tokens: secrets that let outside clients (scripts, other services, no hub account)
call one deployment's endpoint.

Only a SHA-256 of each token is stored; the token itself is shown once, when it is created.
Who may create, list or revoke tokens is the deployments' decision
(:class:`~jupyter_mlops.core.deployments.Deployments`); this module keeps them.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid

import sqlalchemy as sa

from .. import clock
from ..db import Database
from ..errors import InvalidInput, NotFound
from .model import record_event

# How the endpoint tells a deployment token from a hub token in the Authorization header.
TOKEN_PREFIX = "mlops_dep_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class EndpointTokens:
    """The ``deployment_tokens`` table (created by the deployments' schema)."""

    def __init__(self, db: Database):
        self.db = db

    def create(self, name: str, actor: str, note: str = "") -> dict:
        if not isinstance(note, str) or len(note) > 255:
            raise InvalidInput("note must be a string of at most 255 characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = uuid.uuid4().hex[:12]
        with self.db.tx() as conn:
            conn.execute(sa.text(
                "INSERT INTO deployment_tokens (id, deployment, token_hash, note, created_by,"
                " created_at) VALUES (:i, :d, :h, :n, :u, :t)"),
                {"i": token_id, "d": name, "h": _hash(secret), "n": note, "u": actor,
                 "t": clock.now()})
            record_event(conn, name, actor, "token_created", None, note)
        return {"id": token_id, "token": secret, "note": note, "deployment": name}

    def list(self, name: str) -> list[dict]:
        return self.db.query("SELECT id, note, created_by, created_at FROM deployment_tokens"
                             " WHERE deployment = :d ORDER BY created_at", d=name)

    def revoke(self, name: str, actor: str, token_id: str) -> None:
        with self.db.tx() as conn:
            gone = conn.execute(sa.text(
                "DELETE FROM deployment_tokens WHERE id = :i AND deployment = :d"),
                {"i": token_id, "d": name}).rowcount
            if not gone:
                raise NotFound(f"no token {token_id!r} of deployment {name!r}")
            record_event(conn, name, actor, "token_revoked", None, token_id)

    def grants(self, name: str, token: str) -> bool:
        """Whether ``token`` is one of deployment ``name``'s."""
        return bool(self.db.query(
            "SELECT 1 FROM deployment_tokens WHERE token_hash = :h AND deployment = :d",
            h=_hash(token), d=name))

    @staticmethod
    def forget(conn, name: str) -> None:
        """Drop every token of a deleted deployment, in the caller's transaction."""
        conn.execute(sa.text("DELETE FROM deployment_tokens WHERE deployment = :n"),
                     {"n": name})
