"""Login and lab roles on the hub: local accounts by default, OpenID Connect (Keycloak, any
OIDC provider) through oauthenticator's ``GenericOAuthenticator`` in production.

The three lab roles are JupyterHub roles carried by groups (``mlops-admins``, ``mlops-pms``;
everyone else is a data scientist), each granting least-privilege custom scopes
(``core.roles``). With local accounts the administrator puts people into these groups (the
hub's admin page or the MLOps admin page). With OIDC the identity provider's groups decide at
every login: ``MlopsHub.group_roles`` maps IdP groups to roles, and the IdP groups themselves
become hub groups (``manage_groups``), which ``MlopsHub.group_projects`` links to projects in the
control plane.
"""
from __future__ import annotations

from typing import Callable, Iterable

from ..core import roles
from .members import MEMBERS_GROUP

# Role name in MlopsHub.group_roles -> the hub group that carries the role (see load_roles).
ROLE_GROUPS = {"admin": "mlops-admins", "manager": "mlops-pms"}
ACCESS = ["access:services!service=mlops", "access:services!service=mlflow"]

# What the control plane's own token may do on the hub, and nothing else (no admin:users, no
# spawning, no other groups, no tokens of administrators):
CONTROL_PLANE_SCOPES = [
    # the admin page: list users and their servers, stop a server
    "list:users", "read:users", "read:users:activity", "read:servers", "delete:servers",
    # the admin page: move users between the two lab-role groups (only those groups)
    *(f"groups!group={g}" for g in ROLE_GROUPS.values()),
    # jobs: an expiring token of the job's user (MLflow, the control plane, custom:mlops:use),
    # revoked when the job ends (core/jobs/tracking.JOB_SCOPES); Kubernetes model server
    # versions: a token of the deployment's creator (MLflow only). Only for members of the
    # group the hub keeps equal to "not a hub administrator" (jupyter_mlops.hub.members).
    f"tokens!group={MEMBERS_GROUP}",
]


def hub_groups_for(idp_groups: Iterable[str], group_roles: dict[str, str]) -> list[str]:
    """The hub groups of a user the IdP puts in ``idp_groups``: the IdP groups themselves
    (projects link to them) plus the role groups the mapping gives."""
    out = set(idp_groups)
    for g in idp_groups:
        role = group_roles.get(g)
        if role:
            out.add(ROLE_GROUPS[role])
    return sorted(out)


def groups_from_auth_state(groups_claim: str, group_roles: dict[str, str]) -> Callable:
    """``GenericOAuthenticator.auth_state_groups_key`` as a callable applying the mapping."""

    def groups(auth_state: dict) -> list[str]:
        user = auth_state.get("oauth_user") or {}
        raw = user.get(groups_claim) or []
        if isinstance(raw, str):  # some IdPs send one group as a string
            raw = [raw]
        # Keycloak sends full paths ("/cells-team") when "full group path" is on.
        return hub_groups_for([str(g).lstrip("/") for g in raw], group_roles)

    return groups


def discover(issuer: str, timeout: float = 10.0) -> dict:
    """The provider's ``.well-known/openid-configuration`` (authorize, token, userinfo URLs)."""
    from ..client import ClientConfig, SyncTransport
    from ..core.errors import MlopsError

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with SyncTransport(ClientConfig(issuer, timeout=timeout, name="OIDC provider")) as idp:
            return idp.request("GET", ".well-known/openid-configuration",
                               follow_redirects=True).json()
    except (MlopsError, ValueError) as e:
        raise RuntimeError(
            f"OIDC discovery at {url} failed ({e}); check MlopsHub.oidc_issuer or set "
            "MlopsHub.oidc_endpoints") from None


def configure_oidc(c, hub) -> None:
    """Point JupyterHub at the OIDC provider of ``hub`` (an ``MlopsHub``)."""
    if not hub.oidc_issuer:
        raise RuntimeError("MlopsHub.authenticator = 'oidc' needs MlopsHub.oidc_issuer")
    endpoints = dict(hub.oidc_endpoints) or {}
    if not {"authorization_endpoint", "token_endpoint", "userinfo_endpoint"} <= set(endpoints):
        endpoints = {**discover(hub.oidc_issuer), **endpoints}
    g = c.GenericOAuthenticator
    c.JupyterHub.authenticator_class = "generic-oauth"
    g.client_id = hub.oidc_client_id
    g.client_secret = hub.oidc_client_secret
    g.oauth_callback_url = hub.public_url.rstrip("/") + "/hub/oauth_callback"
    g.authorize_url = endpoints["authorization_endpoint"]
    g.token_url = endpoints["token_endpoint"]
    g.userdata_url = endpoints["userinfo_endpoint"]
    g.scope = list(hub.oidc_scopes)
    g.username_claim = hub.oidc_username_claim
    g.login_service = hub.oidc_login_service
    g.manage_groups = True
    g.auth_state_groups_key = groups_from_auth_state(hub.oidc_groups_claim, dict(hub.group_roles))
    # Hub administrators are the IdP's system administrators (after mapping).
    g.admin_groups = {ROLE_GROUPS["admin"]}
    if hub.oidc_allowed_groups:
        g.allowed_groups = set(hub.oidc_allowed_groups)
    else:
        g.allow_all = True
    # Roles follow the IdP at each login, not what an earlier login left behind.
    c.Authenticator.admin_users = set()
    c.Authenticator.allow_existing_users = False


def load_roles(admin_users: Iterable[str], local: bool) -> tuple[dict, list]:
    """``(load_groups, load_roles)`` of the three lab roles and the control plane's own role."""
    # With local accounts the configured administrators are system administrators too. With
    # OIDC the authenticator owns group membership (JupyterHub refuses load_groups then); the
    # role groups are created by the role assignments below.
    groups = {
        ROLE_GROUPS["admin"]: {"users": sorted(admin_users)},
        ROLE_GROUPS["manager"]: {"users": []},
    } if local else {}
    role_list = [
        {"name": "user", "scopes": ["self", roles.USE, *ACCESS]},
        {"name": "mlops-admin", "groups": [ROLE_GROUPS["admin"]],
         "scopes": [roles.ADMIN, roles.MANAGE, roles.USE, roles.METRICS, *ACCESS]},
        {"name": "mlops-project-manager", "groups": [ROLE_GROUPS["manager"]],
         "scopes": [roles.MANAGE, roles.USE, *ACCESS]},
        {"name": "mlops-control-plane", "services": ["mlops"],
         "description": "What the MLOps admin page does on the hub.",
         "scopes": CONTROL_PLANE_SCOPES},
    ]
    return groups, role_list
