"""The three lab roles and the custom hub scopes that carry them.

JupyterHub roles grant the scopes (see ``jupyter_mlops.hub.config``); the control plane and the server
extension derive the caller's lab role from the scopes on their token, so one source of truth
(the hub's role assignments) decides who may do what.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SCOPE_PREFIX = "custom:mlops"
USE = f"{SCOPE_PREFIX}:use"  # call the control plane at all (every lab member)
MANAGE = f"{SCOPE_PREFIX}:manage"  # project manager: projects, members, approvals
ADMIN = f"{SCOPE_PREFIX}:admin"  # system administrator: users, quotas, GPUs, usage
METRICS = f"{SCOPE_PREFIX}:metrics"  # read the Prometheus export (a scraper's token)
# The hub's spawner (a token-only hub service): GPUs for user servers, from the control plane.
SPAWNER = f"{SCOPE_PREFIX}:spawner"

ALL_SCOPES = {
    USE: "Use the MLOps platform: datasets, experiments, jobs and deployments of your projects.",
    MANAGE: "Manage MLOps projects: create projects, add members, approve deployments.",
    ADMIN: "Administer the MLOps platform: quotas, GPU inventory, usage, every project.",
    METRICS: "Read the MLOps platform's Prometheus metrics (/services/mlops/api/metrics).",
    SPAWNER: "Allocate and release the GPUs of user servers (the hub's spawner only).",
}

SYSTEM_ADMINISTRATOR = "system administrator"
PROJECT_MANAGER = "project manager"
DATA_SCIENTIST = "data scientist"


def role_from_scopes(scopes) -> str:
    """The most privileged lab role the scopes grant."""
    scopes = set(scopes)
    if ADMIN in scopes:
        return SYSTEM_ADMINISTRATOR
    if MANAGE in scopes:
        return PROJECT_MANAGER
    return DATA_SCIENTIST


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the hub vouches for it."""

    name: str
    kind: str = "user"
    admin: bool = False
    groups: tuple[str, ...] = ()
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def role(self) -> str:
        return role_from_scopes(self.scopes)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    @classmethod
    def from_hub_model(cls, model: dict) -> "Caller":
        return cls(
            name=model["name"],
            kind=model.get("kind", "user"),
            admin=bool(model.get("admin")),
            groups=tuple(model.get("groups") or ()),
            scopes=frozenset(model.get("scopes") or ()),
        )
