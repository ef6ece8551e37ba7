"""Roles, projects and the admin routes on a real running platform (tests/fixtures.py).

People: admin (system administrator), pat (project manager, group mlops-pms), sam and dan
(data scientists). Everything goes through the public proxy with hub tokens or browser-like
OAuth sessions, as users do.
"""
from __future__ import annotations

import re

import pytest

from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import QuotaExceeded
from jupyter_mlops.core.gpu_allocation import GpuAllocator
from jupyter_mlops.core.gpus import StaticInventory

API = "/services/mlops/api"
PASSWORD = "correct-horse-9"


@pytest.fixture(scope="module")
def people(platform):
    sessions = {"pat": platform.add_user("pat", PASSWORD, groups=["mlops-pms"]),
                "sam": platform.add_user("sam", PASSWORD),
                "dan": platform.add_user("dan", PASSWORD)}
    tokens = {u: platform.token(u) for u in ("pat", "sam", "dan")}
    tokens["admin"] = platform.admin_token()
    return tokens, sessions


def call(platform, tokens, who, method, path, **kw):
    return platform.api(method, API + path, tokens[who], **kw)


def test_each_person_gets_their_lab_role(platform, people):
    tokens, _ = people
    roles = {u: call(platform, tokens, u, "GET", "/status").json()["role"] for u in tokens}
    assert roles == {"admin": "system administrator", "pat": "project manager",
                     "sam": "data scientist", "dan": "data scientist"}


def test_project_lifecycle_and_visibility(platform, people):
    tokens, _ = people
    # Given pat (a project manager) creates "cells" with sam in it
    r = call(platform, tokens, "pat", "POST", "/projects",
             json={"name": "cells", "description": "cell detection", "members": ["sam"]})
    assert r.status_code == 201, r.text
    assert r.json()["can_manage"] is True
    # Then sam sees it, dan does not even learn it exists
    assert "cells" in [p["name"] for p in call(platform, tokens, "sam", "GET",
                                                "/projects").json()["projects"]]
    assert call(platform, tokens, "dan", "GET", "/projects/cells").status_code == 404
    assert call(platform, tokens, "dan", "GET", "/projects/cells/progress").status_code == 404
    # Data scientists create nothing and change nothing
    assert call(platform, tokens, "dan", "POST", "/projects",
                json={"name": "mine"}).status_code == 403
    r = call(platform, tokens, "sam", "PUT", "/projects/cells/members/dan", json={})
    assert r.status_code == 403 and "manager" in r.json()["message"]
    # Bad input is a clear 400
    for body, word in (({"name": "Bad Name"}, "lowercase"), ({"name": "x", "gpu_quota": -2},
                                                              "gpu_quota"),
                       ({"name": "x", "colour": "red"}, "colour")):
        r = call(platform, tokens, "pat", "POST", "/projects", json=body)
        assert r.status_code == 400 and word in r.json()["message"], r.text
    assert call(platform, tokens, "pat", "POST", "/projects", data="[").status_code == 400
    assert call(platform, tokens, "pat", "POST", "/projects",
                json={"name": "cells"}).status_code == 409
    r = call(platform, tokens, "pat", "PATCH", "/projects/cells", json={"name": "renamed"})
    assert r.status_code == 400 and "name" in r.json()["message"]
    # pat adds dan, adds a milestone; dan now sees the project
    assert call(platform, tokens, "pat", "PUT", "/projects/cells/members/dan",
                json={"role": "member"}).status_code == 200
    r = call(platform, tokens, "pat", "POST", "/projects/cells/milestones",
             json={"title": "baseline mAP 0.5", "due": "2026-12-15"})
    assert r.status_code == 201, r.text
    assert call(platform, tokens, "pat", "POST", "/projects/cells/milestones",
                json={"title": "x", "due": "soon"}).status_code == 400
    detail = call(platform, tokens, "dan", "GET", "/projects/cells").json()
    assert detail["can_manage"] is False
    assert [m["title"] for m in detail["milestones"]] == ["baseline mAP 0.5"]
    assert {m["username"] for m in detail["members"]} == {"pat", "sam", "dan"}


def test_quota_ceiling_and_enforcement_at_the_next_allocation(platform, people):
    tokens, _ = people
    call(platform, tokens, "pat", "POST", "/projects", json={"name": "nuclei"})
    # Only administrators set the ceiling; the manager's quota stays below it
    assert call(platform, tokens, "pat", "PATCH", "/projects/nuclei",
                json={"gpu_quota_max": 4}).status_code == 403
    assert call(platform, tokens, "admin", "PATCH", "/projects/nuclei",
                json={"gpu_quota_max": 1}).status_code == 200
    r = call(platform, tokens, "pat", "PATCH", "/projects/nuclei", json={"gpu_quota": 2})
    assert r.status_code == 400 and "above the 1 GPU" in r.json()["message"]
    assert call(platform, tokens, "pat", "PATCH", "/projects/nuclei",
                json={"gpu_quota": 0}).status_code == 200
    # The allocator every spawn and job goes through (same database) now refuses the project
    db = Database(f"sqlite:///{platform.data_dir / 'control' / 'mlops.sqlite'}")
    try:
        alloc = GpuAllocator(db, StaticInventory([{"name": "A100"}]))
        with pytest.raises(QuotaExceeded, match="project nuclei is 0"):
            alloc.allocate("job", "t-1", user="pat", count=1, project="nuclei")
        # raising it lets the next one through
        call(platform, tokens, "pat", "PATCH", "/projects/nuclei", json={"gpu_quota": 1})
        assert len(alloc.allocate("job", "t-1", user="pat", count=1, project="nuclei")) == 1
        alloc.release("job", "t-1")
    finally:
        db.dispose()


def test_admin_routes_refuse_everyone_else(platform, people):
    tokens, _ = people
    for who in ("pat", "sam"):
        for method, path in (("GET", "/admin/overview"), ("GET", "/admin/usage"),
                             ("PUT", "/admin/users/dan/role"), ("DELETE",
                                                                "/admin/users/dan/server")):
            r = call(platform, tokens, who, method, path, json={"role": "admin"})
            assert r.status_code == 403, (who, method, path, r.status_code)
    overview = call(platform, tokens, "admin", "GET", "/admin/overview").json()
    roles = {u["name"]: u["role"] for u in overview["users"]}
    assert roles["pat"] == "project manager" and roles["sam"] == "data scientist"
    assert {"cells", "default"} <= {p["name"] for p in overview["projects"]}
    r = call(platform, tokens, "admin", "GET", "/admin/usage", params={"days": "x"})
    assert r.status_code == 400


def test_admin_sets_a_local_accounts_role(platform, people):
    tokens, _ = people
    r = call(platform, tokens, "admin", "PUT", "/admin/users/dan/role", json={"role": "boss"})
    assert r.status_code == 400
    assert call(platform, tokens, "admin", "PUT", "/admin/users/nobody/role",
                json={"role": "manager"}).status_code == 404
    assert call(platform, tokens, "admin", "PUT", "/admin/users/dan/role",
                json={"role": "manager"}).status_code == 200
    # dan's tokens now carry the manager's scope (the hub resolves a token's scopes from its
    # owner's roles; the control plane caches what a token may do for HubAuth.cache_max_age,
    # so a fresh token shows it at once)
    fresh = {"dan": platform.token("dan")}
    assert call(platform, fresh, "dan", "GET", "/status").json()["role"] == "project manager"
    assert call(platform, fresh, "dan", "POST", "/projects",
                json={"name": "dan-proj"}).status_code == 201
    call(platform, tokens, "admin", "PUT", "/admin/users/dan/role", json={"role": "scientist"})
    fresh = {"dan": platform.token("dan")}
    assert call(platform, fresh, "dan", "GET", "/status").json()["role"] == "data scientist"
    groups = platform.hub("GET", "users/dan").json()["groups"]
    assert "mlops-pms" not in groups and "mlops-admins" not in groups


def _page(session, url):
    r = session.get(url)
    assert r.status_code == 200, (r.status_code, r.url, r.text[:300])
    return r


def test_admin_page_forms_need_the_xsrf_token(platform, people):
    _, sessions = people
    admin = platform.login("admin", platform.admin_password)
    page = _page(admin, platform.url + "/services/mlops/admin").text
    assert "MLOps administration" in page and "pat" in page
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    form = platform.url + "/services/mlops/admin/quotas"
    # Without the token the cookie is not accepted: nothing changes
    r = admin.post(form, data={"kind": "user", "name": "sam", "gpus": "0"},
                   allow_redirects=False)
    assert r.status_code in (401, 403), r.status_code
    assert "sam" not in [q["name"] for q in platform.api(
        "GET", API + "/gpus/quotas", platform.admin_token()).json()["quotas"]]
    # With it, the quota is set and shown
    r = admin.post(form, data={"kind": "user", "name": "sam", "gpus": "0", "_xsrf": xsrf})
    assert r.status_code == 200 and "GPU quota of user sam set to 0" in r.text
    r = admin.post(form, data={"kind": "user", "name": "sam", "gpus": "-1", "_xsrf": xsrf})
    assert "must be &gt;= 0" in r.text or "must be >= 0" in r.text
    # a data scientist's browser gets 403 on the page, and a page for the projects it has
    sam = sessions["sam"]
    assert sam.get(platform.url + "/services/mlops/admin").status_code == 403
    assert "cells" in _page(sam, platform.url + "/services/mlops/projects").text
    # clean up for the other tests
    admin.post(form, data={"kind": "user", "name": "sam", "gpus": "", "_xsrf": xsrf})

