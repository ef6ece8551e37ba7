"""Every route of the control plane and of the server extension, called by a data scientist.

Routes are enumerated from the URL tables (``service/routes.py``, ``server/routes.py``) and
from ``docs/openapi.yaml``, so a route anyone adds later is covered without touching this file.
The data scientist (dmitri) must get

* 403 on every administrator route (handlers requiring only ``custom:mlops:admin``);
* 403/404 (or 400 for input the route refuses first) on any route naming a resource of
  project "secret", which mira manages and dmitri is not in: the project itself, its milestones,
  a dataset and a job of it, and whatever else a path parameter names;
* never a 5xx, and never the word "secret" in a successful answer (lists, searches, pages),
  even when asked with ``?project=secret`` or a body naming project "secret".
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tornado import web

from jupyter_mlops.core import roles
from jupyter_mlops.server.routes import ROUTES as SERVER_ROUTES
from jupyter_mlops.service.handlers.base import NoSuchEndpointHandler, NotFoundHandler
from jupyter_mlops.service.routes import routes as service_routes

REPO = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "patch", "delete")
SECRET = "secret"  # the project manager's project; the data scientist is not a member
PM, DS = "mira", "dmitri"  # own people: other modules share the session's platform
PASSWORD = "matrix-pass-1"
# Mutations a data scientist may legitimately make while naming project "secret" in the body,
# because the route ignores the body's project: (method, route pattern) -> why.
MAY_SUCCEED: dict[tuple[str, str], str] = {}
# Reads that are lab-wide by design: route pattern suffix -> why. (None any more: the dataset
# catalog shows a project's datasets to its members only, core.datasets.catalog.)
LAB_WIDE_READS: dict[str, str] = {}


def _methods(handler) -> list[str]:
    return [m for m in METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)]


def _table_routes():
    """(kind, url pattern, handler or None, method) from the URL tables and the document."""
    out = {}
    for pattern, handler, *_ in service_routes("/services/mlops/", None):
        if handler in (NotFoundHandler, NoSuchEndpointHandler):
            continue
        for m in _methods(handler):
            out[("service", pattern, m)] = handler
    for pattern, handler in SERVER_ROUTES:
        for m in _methods(handler):
            out[("server", "/user/{user}/mlops/api/" + pattern, m)] = handler
    for path, item in SPEC["paths"].items():
        for m in METHODS:
            if m in item:
                kind = "server" if path.startswith("/user/") else "service"
                regex = re.sub(r"\{[^}]+\}", "([^/]+)", path)
                if not any(k[2] == m and re.fullmatch(_as_regex(k[1]), _fill_doc(path))
                           for k in out):
                    out[(kind, regex if kind == "service" else path, m)] = None
    return sorted(out.items(), key=lambda kv: kv[0])


def _as_regex(pattern: str) -> str:
    return pattern.replace("{user}", DS)


def _fill_doc(path: str) -> str:
    return re.sub(r"\{[^}]+\}", SECRET, path).replace(f"/user/{SECRET}/", f"/user/{DS}/")


def _groups(pattern: str):
    """Top-level capture groups of a URL regex: (start, end, name, inner pattern)."""
    i, out = 0, []
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "(" and not pattern.startswith("(?:", i):
            depth, j = 1, i + 1
            while depth:
                if pattern[j] == "\\":
                    j += 2
                    continue
                depth += {"(": 1, ")": -1}.get(pattern[j], 0)
                j += 1
            inner = pattern[i + 1:j - 1]
            name = None
            m = re.match(r"\?P<(\w+)>", inner)
            if m:
                name, inner = m.group(1), inner[m.end():]
            out.append((i, j, name, inner))
            i = j
            continue
        i += 1
    return out


def concrete_url(pattern: str, values: dict) -> str:
    """A URL matching ``pattern`` whose parameters name the secret project's things."""
    url, prev = "", 0
    for start, end, name, inner in _groups(pattern):
        before = pattern[:start].rstrip("/").split("/")[-1]  # the collection the id is in
        candidates = []
        if name and name in values:
            candidates.append(values[name])
        candidates += [values.get(before, SECRET), SECRET, PM, "1", "0" * 64, "a" * 12]
        if re.fullmatch(r"[\w-]+(\|[\w-]+)*", inner):  # an alternation: (thumbnail|preview)
            candidates.append(inner.split("|")[0])
        value = next((c for c in candidates if re.fullmatch(inner, c)), None)
        assert value is not None, f"no test value for ({inner}) in {pattern}"
        url += pattern[prev:start] + value
        prev = end
    url += pattern[prev:]
    url = url.replace("{user}", DS).replace("/?", "/")
    url = re.sub(r"\{[^}]+\}", lambda m: values.get(m.group(0)[1:-1], SECRET), url)
    return url.replace("\\.", ".").replace("\\-", "-").rstrip("$")


def _admin_only(handler) -> bool:
    """Routes of administrators, or of the hub's spawner only (GPUs of user servers)."""
    return handler is not None and tuple(getattr(handler, "required_scopes", ())) in (
        (roles.ADMIN,), (roles.SPAWNER,))


@pytest.fixture(scope="module")
def world(platform):
    """The PM's project "secret" with a milestone, a dataset and a job; the DS's server."""
    platform.add_user(PM, PASSWORD, groups=["mlops-pms"])
    platform.add_user(DS, PASSWORD)
    pat, dan = platform.token(PM), platform.token(DS)
    api = "/services/mlops/api"
    r = platform.api("POST", api + "/projects", pat, json={"name": SECRET})
    assert r.status_code in (201, 409), r.text
    r = platform.api("POST", api + f"/projects/{SECRET}/milestones", pat,
                     json={"title": "secret milestone", "due": "2027-01-01"})
    assert r.status_code == 201, r.text
    values = {"projects": SECRET, "name": SECRET, "user": PM, "milestones": str(r.json()["id"])}
    r = platform.api("POST", api + "/datasets", pat,
                     json={"name": "secret-data", "project": SECRET, "description": "secret"})
    assert r.status_code in (201, 409), f"seeding a dataset of project secret: {r.text}"
    values["datasets"] = "secret-data"
    ws = platform.data_dir / "users" / PM
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "secret_job.py").write_text("print('secret')\n")
    r = platform.api("POST", api + "/jobs", pat, json={"path": "secret_job.py",
                                                       "project": SECRET})
    assert r.status_code == 201, f"seeding a job of project secret: {r.text}"
    values["jobs"] = str(r.json()["id"])
    platform.start_server(DS)
    # one image in dan's workspace, for a publish into the secret project's dataset
    from PIL import Image

    folder = platform.data_dir / "users" / DS / "cells"
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 128).save(folder / "a.png")
    folder.chmod(0o755)
    (folder / "a.png").chmod(0o644)
    return {"dan": dan, "values": values}


ALL = _table_routes()


def test_every_table_route_is_enumerated():
    kinds = {k[0] for k, _ in ALL}
    assert kinds == {"service", "server"}
    assert len(ALL) > 40, [k for k, _ in ALL]


@pytest.mark.parametrize("key,handler", ALL, ids=[f"{k[2].upper()} {k[1]}" for k, _ in ALL])
def test_data_scientist_is_refused_what_is_not_theirs(platform, world, key, handler):
    kind, pattern, method = key
    url = concrete_url(pattern, world["values"])
    body = {"project": SECRET, "name": SECRET, "path": "x.py"}
    if pattern.endswith("/publish"):
        body = {"folder": "cells", "message": "into someone else's dataset"}
    r = platform.api(method.upper(), url, world["dan"],
                     params={"project": SECRET} if method == "get" else None,
                     json=body if method in ("post", "put", "patch") else None,
                     allow_redirects=False)
    where = f"{method.upper()} {url} ({pattern})"
    assert r.status_code < 500, f"{where} answered {r.status_code}: {r.text[:300]}"
    if _admin_only(handler):
        assert r.status_code == 403, f"{where}: admin route answered {r.status_code}"
        return
    if method == "get" and any(pattern.endswith(k) for k in LAB_WIDE_READS):
        assert r.status_code == 200, f"{where}: {r.status_code}"
        return
    if r.status_code == 202 and pattern.endswith("/publish"):
        # publishing runs as a job; it must end refused, before anything is recorded
        _assert_job_refused(platform, world["dan"], url, r.json())
        return
    has_params = bool(_groups(pattern)) or "{" in pattern.replace("{user}", "")
    if has_params:
        assert r.status_code in (400, 403, 404, 405), (
            f"{where}: another project's resource answered {r.status_code}: {r.text[:300]}")
        return
    if method != "get" and (method, pattern) not in MAY_SUCCEED:
        assert not 200 <= r.status_code < 300, (
            f"{where}: a body naming project 'secret' was accepted: {r.text[:300]}")
    if 200 <= r.status_code < 300 or 300 <= r.status_code < 400:
        assert SECRET not in r.text.lower(), f"{where} shows the secret project: {r.text[:300]}"


def _assert_job_refused(platform, token, url, job):
    import time

    status_url = url.rsplit("/datasets/", 1)[0] + f"/datasets/jobs/{job['id']}"
    deadline = time.monotonic() + 60
    while job.get("state") == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
        job = platform.api("GET", status_url, token).json()
    assert job.get("state") != "running", f"publish job still running: {job}"
    assert job.get("state") != "done" and job.get("error"), f"publish was not refused: {job}"
    assert "secret" in job["error"] or "project" in job["error"], job["error"]
