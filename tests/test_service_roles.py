"""Least privilege of the services' own hub tokens: the control plane mints tokens for the
users it works for, never for a hub administrator, and cannot widen what it may do."""
from __future__ import annotations

import psutil
import requests


def service_token(platform, module: str) -> str:
    """The hub API token a service of ``platform`` runs with (from its environment)."""
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if module in cmd and str(platform.data_dir.resolve()) in " ".join(cmd):
            return p.environ()["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no {module} process of this platform")


def as_service(platform, token, method, path, **kw) -> requests.Response:
    return requests.request(method, f"{platform.url}/hub/api/{path}", timeout=30,
                            headers={"Authorization": f"token {token}"}, **kw)


def test_the_control_plane_mints_tokens_only_for_non_administrators(platform):
    cp = service_token(platform, "jupyter_mlops.service")
    platform.add_user("nadia", "nadia-password-1")
    body = {"note": "test", "expires_in": 60, "scopes": ["access:services!service=mlflow"]}
    # Its normal work: a token of a user who is not an administrator
    r = as_service(platform, cp, "POST", "users/nadia/tokens", json=body)
    assert r.status_code == 201, r.text
    as_service(platform, cp, "DELETE", f"users/nadia/tokens/{r.json()['id']}")
    # A token of an administrator, with or without scopes asked for: refused
    for asked in (body, {"note": "test", "expires_in": 60}):
        r = as_service(platform, cp, "POST", "users/admin/tokens", json=asked)
        assert r.status_code == 403, r.text
    # Nor can it put the administrator into the group it may mint tokens for, or make
    # someone an administrator
    # (the hub answers 404 "no access to resources or resources not found" for what a token
    # may not see at all)
    r = as_service(platform, cp, "POST", "groups/mlops-members/users",
                   json={"users": ["admin"]})
    assert r.status_code in (403, 404), r.text
    r = as_service(platform, cp, "PATCH", "users/nadia", json={"admin": True})
    assert r.status_code in (403, 404), r.text
    # When the hub's administrator makes nadia an administrator, the rule follows at once
    assert platform.hub("PATCH", "users/nadia", json={"admin": True}).status_code == 200
    try:
        r = as_service(platform, cp, "POST", "users/nadia/tokens", json=body)
        assert r.status_code == 403, r.text
    finally:
        assert platform.hub("PATCH", "users/nadia", json={"admin": False}).status_code == 200
    r = as_service(platform, cp, "POST", "users/nadia/tokens", json=body)
    assert r.status_code == 201, r.text
    as_service(platform, cp, "DELETE", f"users/nadia/tokens/{r.json()['id']}")


def test_the_control_plane_changes_only_the_lab_role_groups(platform):
    cp = service_token(platform, "jupyter_mlops.service")
    platform.add_user("omar", "omar-password-1")
    platform.hub("POST", "groups/other-team")
    # The admin page's role change works
    r = as_service(platform, cp, "POST", "groups/mlops-pms/users", json={"users": ["omar"]})
    assert r.status_code == 200, r.text
    r = as_service(platform, cp, "DELETE", "groups/mlops-pms/users", json={"users": ["omar"]})
    assert r.status_code == 200, r.text
    # Any other group is not its to change
    r = as_service(platform, cp, "POST", "groups/other-team/users", json={"users": ["omar"]})
    assert r.status_code in (403, 404), r.text
    assert "omar" not in platform.hub("GET", "groups/other-team").json()["users"]


def test_the_mlflow_services_hold_no_hub_role(platform):
    services = platform.hub("GET", "services").json()
    assert services["mlops"]["roles"] == ["mlops-control-plane"]
    # and the membership the control plane relies on is the hub's: admin is not in it
    assert "admin" not in platform.hub("GET", "groups/mlops-members").json()["users"]
    assert services["mlflow"]["roles"] == [] and services["mlflow-server"]["roles"] == []
    # the gateway's own token can read no user, let alone mint a token
    gw = service_token(platform, "jupyter_mlops.service.mlflow_gateway")
    assert as_service(platform, gw, "GET", "users/admin").status_code in (403, 404)
    assert as_service(platform, gw, "POST", "users/admin/tokens",
                      json={"expires_in": 60}).status_code == 403


def test_members_group_follows_every_write_of_a_user():
    # The hub's own database, in memory, with the rule installed as the hub installs it
    from jupyterhub import orm

    from jupyter_mlops.hub import members as hub_members

    hub_members.install()
    db = orm.new_session_factory("sqlite://")()

    def members():
        group = orm.Group.find(db, hub_members.MEMBERS_GROUP)
        return sorted(u.name for u in group.users) if group else []

    # Given a new user, and an administrator
    db.add(orm.User(name="ana"))
    db.add(orm.User(name="root-admin", admin=True))
    db.commit()
    assert members() == ["ana"]
    # When ana is made an administrator she leaves the group in the same transaction
    ana = orm.User.find(db, "ana")
    ana.admin = True
    db.commit()
    assert members() == []
    # and back when she is not one any more
    ana.admin = False
    db.commit()
    assert members() == ["ana"]
    # A login that replaces her groups with the identity provider's (manage_groups) keeps it
    ana.groups = [orm.Group(name="cells-team")]
    db.commit()
    assert members() == ["ana"] and "cells-team" in [g.name for g in ana.groups]
