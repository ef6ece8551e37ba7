"""What a deployment is made of, apart from its state machine: the names it accepts, its tables,
the seams it runs through (:class:`DeployBackend`, :class:`ModelResolver`), where its traffic
goes (:class:`Route`) and what that traffic looks like (:class:`Traffic`), and the one writer of
its audit log (:func:`record_event`)."""
from __future__ import annotations

import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import sqlalchemy as sa

from .. import clock

# A DNS label starting with a letter: the name is also a Kubernetes Service name.
NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$")
VISIBILITIES = ("project", "lab")  # project: its members only ("private"); lab: any lab member

# Every table of the component "deployments" (tokens and approval policies included): one list,
# append only, since Database.migrate applies statements by their position in it.
SCHEMA = [
    """CREATE TABLE deployments (
        name VARCHAR(40) PRIMARY KEY,
        project VARCHAR(63) NOT NULL,
        model_name VARCHAR(255) NOT NULL,
        model_version VARCHAR(32) NOT NULL,
        serving_version VARCHAR(32),
        status VARCHAR(32) NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        log TEXT NOT NULL DEFAULT '',
        visibility VARCHAR(16) NOT NULL DEFAULT 'project',
        instance TEXT,
        pending TEXT,
        created_by VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL,
        updated_by VARCHAR(255) NOT NULL,
        updated_at FLOAT NOT NULL
    )""",
    """CREATE TABLE deployment_events (
        id VARCHAR(32) PRIMARY KEY,
        deployment VARCHAR(40) NOT NULL,
        at FLOAT NOT NULL,
        actor VARCHAR(255) NOT NULL,
        action VARCHAR(32) NOT NULL,
        model_version VARCHAR(32),
        detail TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX ix_deployment_events ON deployment_events (deployment, at)",
    """CREATE TABLE deployment_tokens (
        id VARCHAR(32) PRIMARY KEY,
        deployment VARCHAR(40) NOT NULL,
        token_hash VARCHAR(64) NOT NULL UNIQUE,
        note VARCHAR(255) NOT NULL DEFAULT '',
        created_by VARCHAR(255) NOT NULL,
        created_at FLOAT NOT NULL
    )""",
    """CREATE TABLE deployment_policies (
        project VARCHAR(63) PRIMARY KEY,
        require_approval BOOLEAN NOT NULL DEFAULT 0,
        updated_by VARCHAR(255) NOT NULL,
        updated_at FLOAT NOT NULL
    )""",
]


class LoadFailed(Exception):
    """A model server did not become ready; ``log`` is the tail of its output."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class DeployBackend(Protocol):
    """Where model servers run. Instances are JSON-able dicts the backend understands."""

    async def start(self, deployment: str, version: str, model_uri: str) -> dict:
        """Start a server of ``model_uri`` and return once it answers; raise LoadFailed."""

    async def stop(self, instance: dict) -> None:
        """Stop a server (it drains its requests in flight first)."""

    async def alive(self, instance: dict) -> bool:
        """Whether the server still runs and answers (after a control plane restart)."""

    def url(self, instance: dict) -> str:
        """Base URL the control plane proxies to (``<url>/invocations``); a backend whose
        servers listen on unix sockets also has ``socket(instance)``, the path to connect to."""

    def replicas(self, instance: dict) -> int:
        """Servers behind this instance."""


class ModelResolver(Protocol):
    async def resolve(self, model_name: str, version: str) -> str:
        """The URI a model server loads the version from; NotFound if there is no such one."""


@dataclass
class Route:
    """Where an endpoint's traffic goes right now, with the requests in flight there."""

    url: str
    version: str
    inflight: int = 0
    socket: str = ""  # a unix socket to reach ``url`` through (local model servers)


def route_for(backend: DeployBackend, instance: dict, version: str) -> Route:
    """The route to a backend's server (through its unix socket, if the backend has one)."""
    socket = getattr(backend, "socket", None)  # Kubernetes Services are plain URLs
    return Route(backend.url(instance), version, socket=socket(instance) if socket else "")


@dataclass
class Traffic:
    """The last minute of requests through an endpoint: rate, latency, errors."""

    window: float = 60.0
    samples: deque = field(default_factory=deque)  # (time, seconds, ok)

    def record(self, seconds: float, ok: bool) -> None:
        now = clock.now()
        self.samples.append((now, seconds, ok))
        while self.samples and self.samples[0][0] < now - self.window:
            self.samples.popleft()

    def summary(self) -> dict:
        now = clock.now()
        recent = [s for s in self.samples if s[0] >= now - self.window]
        if not recent:
            return {"requests_per_s": 0.0, "p50_ms": None, "p95_ms": None, "errors": 0,
                    "window_s": self.window}
        lat = sorted(s[1] for s in recent)
        pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)  # noqa: E731
        return {"requests_per_s": round(len(recent) / self.window, 3), "p50_ms": pick(0.5),
                "p95_ms": pick(0.95), "errors": sum(1 for s in recent if not s[2]),
                "window_s": self.window}


def record_event(conn, name: str, actor: str, action: str, version: str | None,
                 detail: str = "") -> None:
    """Add a row to the audit log (``deployment_events``) in the caller's transaction."""
    conn.execute(sa.text(
        "INSERT INTO deployment_events (id, deployment, at, actor, action, model_version,"
        " detail) VALUES (:i, :d, :t, :a, :x, :v, :m)"),
        {"i": uuid.uuid4().hex, "d": name, "t": clock.now(), "a": actor, "x": action,
         "v": version, "m": detail})
