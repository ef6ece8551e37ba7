"""Every route of the control plane and of the server extension, called by a data scientist.

Routes are enumerated from the URL tables (``service/routes.py``, ``server/routes.py``) and
from ``docs/openapi.yaml``, so a route anyone adds later is covered without touching this file.
Project "secret" is managed by mira and holds real things of hers and of its member mateo: a
milestone, a dataset with a version, a job, a sweep, a pipeline, an MLflow experiment with a
run, a registered model version, a deployment waiting for approval with a client token, and
mira's notification about it. The data scientist dmitri, not in the project, must get

* 403 on every administrator route (handlers requiring only ``custom:mlops:admin``);
* exactly 403 or 404 on every route whose path names one of those things, sent with a
  well-formed request (the body and query a member would send), so what refuses him is the
  access check and not the input check; and, for reads, mira gets 2xx for the very same
  request, so the path names something that exists;
* never a 5xx, and never the word "secret" in a successful answer (lists, searches, pages),
  even when asked with ``?project=secret`` or a body naming project "secret".
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from tornado import web

from jupyter_mlops.core import roles
from jupyter_mlops.server.routes import ROUTES as SERVER_ROUTES
from jupyter_mlops.service.handlers.base import NoSuchEndpointHandler, NotFoundHandler
from jupyter_mlops.service.routes import routes as service_routes
from tests.fixtures import until

REPO = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "patch", "delete")
SECRET = "secret"  # the project manager's project; the data scientist is not a member
PM, DS, MEMBER = "mira", "dmitri", "mateo"  # own people: other modules share the platform
PASSWORD = "matrix-pass-1"
API, MLFLOW = "/services/mlops/api", "/services/mlflow/api/2.0/mlflow"
# Mutations a data scientist may legitimately make while naming project "secret" in the body,
# because the route ignores the body's project: (method, route pattern) -> why.
MAY_SUCCEED: dict[tuple[str, str], str] = {}
# Reads that are lab-wide by design: route pattern suffix -> why. (None any more: the dataset
# catalog shows a project's datasets to its members only, core.datasets.catalog.)
LAB_WIDE_READS: dict[str, str] = {}
# Routes whose path parameters name nothing of anyone else, answered 2xx to the data
# scientist: (method, URL suffix) -> why.
NOT_ANOTHERS: dict[tuple[str, str], str] = {
    ("put", "/datasets/uploads/{session}/a.png"):
        "an upload session is a folder in the caller's own server's cache",
    ("put", "/dataset-objects/{object}"):
        "content is stored under its own hash: the caller sends the bytes, so nothing of "
        "another project is read or changed",
}
# Reads the owner may not get 2xx for although the path names her things: suffix -> why.
OWNER_READ_REFUSED: dict[str, str] = {
    f"/gpus/keep/{PM}": "mira holds no GPU server, so there is none to keep",
    "/endpoints/secret-dep/ping": "the deployment waits for approval: nothing serves",
}
# Query arguments a member sends with a read: URL suffix -> query.
QUERIES = {"/diff": {"from": "v1", "to": "v1"}, "/annotations": {"path": "a.png"},
           "/artifact": {"path": "model/MLmodel"}}
# Path parameters that name no thing of the world: parameter name, collection segment before
# it ("/2": a second parameter in a row), or "<collection> <method>" -> value.
BY_NAME = {"decision": "approve", "what": "monitoring", "action": "ping", "alias": "champion",
           "tag": "stable", "tags": "stable", "aliases": "champion", "rendering": "thumbnail",
           "uploads": "s-matrix-1", "uploads/2": "a.png", "quotas": "user", "quotas/2": PM,
           "deployments/2": "approve", "dataset-objects/2": "thumbnail",
           "endpoints/2": "invocations", "endpoints/2 get": "ping"}


def _methods(handler) -> list[str]:
    """What the handler answers. A forwarding handler (one ``_forward`` for every method)
    answers only the ``methods`` it names, besides the methods its own class defines."""
    out = []
    for m in METHODS:
        if getattr(handler, m) is getattr(web.RequestHandler, m):
            continue
        owner = next(c for c in handler.__mro__ if m in vars(c))
        if "_forward" in vars(owner) and m.upper() not in getattr(handler, "methods", [m.upper()]):
            continue
        out.append(m)
    return out


def _templates(pattern: str) -> set[str]:
    """The route with every parameter as ``{}`` (a table regex and a document path alike),
    and with each word of an alternation (``(thumbnail|preview)``) in its place."""
    outs, prev = [""], 0
    for start, end, _name, inner in _groups(pattern):
        words = inner.split("|") if re.fullmatch(r"[\w-]+(\|[\w-]+)*", inner) else []
        outs = [o + pattern[prev:start] + w for o in outs for w in ["{}", *words]]
        prev = end
    return {re.sub(r"\{[^}]*\}", "{}", (o + pattern[prev:]).replace("\\", "")).rstrip("$")
            .rstrip("/") for o in outs}


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
    known = {(t, k[2]) for k in out for t in _templates(k[1])}
    for path, item in SPEC["paths"].items():
        for m in METHODS:
            if m in item and (_templates(path).pop(), m) not in known:
                kind = "server" if path.startswith("/user/") else "service"
                out[(kind, path, m)] = None
    return sorted(out.items(), key=lambda kv: kv[0])


def _groups(pattern: str):
    """Top-level capture groups of a URL regex, or ``{name}`` parameters of a document path:
    (start, end, name, inner pattern)."""
    i, out = 0, []
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        if pattern[i] == "{":
            j = pattern.index("}", i)
            if pattern[i + 1:j] != "user":  # the server's own user: filled in by the caller
                out.append((i, j + 1, pattern[i + 1:j], "[^/]+"))
            i = j + 1
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


def _value(before: str, name: str | None, inner: str, values: dict, method: str) -> str:
    """The world's thing a path parameter names, by the collection it is in."""
    segs = [s for s in re.sub(r"\([^)]*\)|\{[^}]*\}", "", before).split("/") if s]
    collection = segs[-1] if segs else ""
    if re.search(r"[)}]/$", before):  # a second parameter in a row: uploads/<session>/<path>
        collection += "/2"
    elif collection == "versions" and "models" in segs:
        collection = "model-versions"
    elif collection == "jobs" and segs[-2:] == ["datasets", "jobs"]:
        collection = "dataset-jobs"
    elif collection == "objects":
        collection = "dataset-objects"
    candidates = [BY_NAME.get(name or ""), values.get(collection),
                  BY_NAME.get(f"{collection} {method}"), BY_NAME.get(collection)]
    if re.fullmatch(r"[\w-]+(\|[\w-]+)*", inner):  # an alternation: (thumbnail|preview)
        candidates.append(inner.split("|")[0])
    value = next((c for c in candidates if c and re.fullmatch(inner, c)), None)
    assert value is not None, f"no value of the world for ({inner}) after {before}"
    return value


def concrete_url(pattern: str, values: dict, method: str = "get") -> str:
    """A URL matching ``pattern`` whose parameters name the secret project's things."""
    url, prev = "", 0
    for start, end, name, inner in _groups(pattern):
        url += pattern[prev:start] + _value(pattern[:start], name, inner, values, method)
        prev = end
    url += pattern[prev:]
    url = url.replace("{user}", DS).replace("/?", "/")
    return url.replace("\\.", ".").replace("\\-", "-").rstrip("$")


def _admin_only(handler) -> bool:
    """Routes of administrators, or of the hub's spawner only (GPUs of user servers)."""
    return handler is not None and tuple(getattr(handler, "required_scopes", ())) in (
        (roles.ADMIN,), (roles.SPAWNER,))


def build_world(platform) -> dict:
    """Project "secret" of mira (its member mateo) with one of everything a path can name;
    mira's and dmitri's servers. Answers the tokens and ``values``: the thing per collection."""
    from concurrent.futures import ThreadPoolExecutor

    platform.add_user(PM, PASSWORD, groups=["mlops-pms"])
    for user in (DS, MEMBER):
        platform.add_user(user, PASSWORD)
    pat, mat = platform.token(PM), platform.token(MEMBER)
    with ThreadPoolExecutor(2) as spawns:  # the two servers start while the rest is made
        started = [spawns.submit(platform.start_server, user) for user in (PM, DS)]
        values = _seed(platform, pat, mat)
        for s in started:
            s.result()
    return _publish(platform, pat, values)


def _caller(platform, pat: str):
    def call(method, path, token=pat, **kw):
        r = platform.api(method, path, token, **kw)
        assert r.status_code in (200, 201, 202), (
            f"seeding: {method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()
    return call


def _seed(platform, pat: str, mat: str) -> dict:
    from PIL import Image

    call = _caller(platform, pat)
    call("POST", API + "/projects", json={"name": SECRET, "members": [MEMBER]})
    v = {"projects": SECRET, "members": MEMBER, "deployment-policies": SECRET, "idle": PM,
         "keep": PM, "users": PM, "servers": PM, "deployments": "secret-dep",
         "endpoints": "secret-dep", "datasets": "secret-data", "versions": "v1",
         "models": "secret-model", "model-versions": "1"}
    v["milestones"] = str(call("POST", API + f"/projects/{SECRET}/milestones",
                               json={"title": "secret milestone", "due": "2027-01-01"})["id"])
    # MLflow: an experiment, a run with a model's files, a registered version of that model
    tag = [{"key": "mlops.project", "value": SECRET}]
    v["experiments"] = call("POST", MLFLOW + "/experiments/create",
                            json={"name": "secret-exp", "tags": tag})["experiment_id"]
    run = call("POST", MLFLOW + "/runs/create",
               json={"experiment_id": v["experiments"]})["run"]["info"]
    v["runs"] = run["run_id"]
    where = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    r = platform.api("PUT", "/services/mlflow/api/2.0/mlflow-artifacts/artifacts/"
                     f"{where}/model/MLmodel", pat, data=b"flavors: {}\n")
    assert r.status_code == 200, r.text
    call("POST", MLFLOW + "/registered-models/create", json={"name": v["models"], "tags": tag})
    call("POST", MLFLOW + "/model-versions/create",
         json={"name": v["models"], "source": run["artifact_uri"] + "/model",
               "run_id": v["runs"]})
    # mateo's deployment waits for mira's approval (so no model server starts); her client
    # token of it; the notification that asked her
    call("PUT", API + f"/deployment-policies/{SECRET}", json={"require_approval": True})
    call("POST", API + "/deployments", mat, json={"name": v["deployments"], "version": 1,
                                                  "model_name": v["models"],
                                                  "project": SECRET})
    v["tokens"] = call("POST", API + f"/deployments/{v['deployments']}/tokens",
                       json={"note": "robot"})["id"]
    v["notifications"] = str(call("GET", API + "/notifications")["notifications"][0]["id"])
    # a job, a sweep, a pipeline
    ws = platform.data_dir / "users" / PM
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "secret_job.py").write_text("print('secret')\n")
    v["jobs"] = str(call("POST", API + "/jobs", json={"path": "secret_job.py",
                                                     "project": SECRET})["id"])
    v["sweeps"] = str(call("POST", API + "/sweeps", json={
        "path": "secret_job.py", "space": {"x": {"type": "float", "low": 0, "high": 1}},
        "metric": "loss", "trials": 1, "project": SECRET})["id"])
    v["pipelines"] = str(call("POST", API + "/pipelines", json={"spec": {
        "name": "secret-pipe", "project": SECRET,
        "steps": [{"name": "a", "run": "secret_job.py"}]}})["id"])
    # a folder of one image in each workspace
    for user in (PM, DS):
        folder = platform.data_dir / "users" / user / "cells"
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 128).save(folder / "a.png")
        folder.chmod(0o755)
        (folder / "a.png").chmod(0o644)
    return v


def _publish(platform, pat: str, v: dict) -> dict:
    """Mira publishes her folder from her server as v1 of "secret-data"."""
    call = _caller(platform, pat)
    call("POST", API + "/datasets", json={"name": v["datasets"], "project": SECRET,
                                          "description": "secret"})
    mine = f"/user/{PM}/mlops/api/datasets"
    v["dataset-jobs"] = call("POST", f"{mine}/{v['datasets']}/publish",
                             json={"folder": "cells", "message": "first"})["id"]
    until(lambda: call("GET", f"{mine}/jobs/{v['dataset-jobs']}")["state"] == "done", 60,
          "mira's publish of secret-data")
    manifest = call("GET", API + f"/datasets/{v['datasets']}/versions/v1/manifest")["manifest"]
    v["dataset-objects"] = manifest["files"][0]["hash"]
    image = (platform.data_dir / "users" / PM / "cells" / "a.png").read_bytes()
    return {"pat": pat, "dan": platform.token(DS), "values": v, "manifest": manifest,
            "image": image}


@pytest.fixture(scope="module")
def world(platform):
    return build_world(platform)


def valid_request(method: str, url: str, world: dict) -> dict:
    """What a member of the project would send: query, JSON body, form or bytes."""
    v = world["values"]
    if method == "get":
        return {"params": next((q for k, q in QUERIES.items() if url.endswith(k)), None)}
    if method == "delete":
        return {}
    if "/dataset-objects/" in url or "/datasets/uploads/" in url:
        return {"data": world["image"]}
    if url.startswith("/services/mlops/projects/"):  # the project page's form
        return {"data": {"action": "add-member", "user": DS, "role": "manager"}}
    if url.startswith("/services/mlops/gpus/keep/"):
        return {"data": {}}
    bodies = [  # (URL suffix pattern, body)
        (r"/projects/[^/]+", {"description": "changed by someone"}),
        (r"/members/[^/]+", {"role": "manager"}),
        (r"/milestones", {"title": "another milestone", "due": "2027-02-01"}),
        (r"/milestones/\d+", {"done": True}),
        (r"/datasets/[^/]+/versions", {"manifest": world["manifest"], "message": "again"}),
        (r"/reference", {"project": SECRET}),
        (r"/tags/[^/]+", {"version": "v1"}),
        (r"/publish", {"folder": "cells", "message": "into someone else's dataset"}),
        (r"/datasets/[^/]+/status", {"folder": "cells", "version": "v1"}),
        (r"/deployments/[^/]+", {"version": 1}),
        (r"/monitoring", {"record_inputs": False}),
        (r"/tokens", {"note": "mine now"}),
        (r"/(approve|reject)", {"reason": "looks fine"}),
        (r"/(predict|invocations)", {"inputs": [[0.0]]}),
        (r"/deployment-policies/[^/]+", {"require_approval": False}),
        (r"/aliases/[^/]+", {"version": v["model-versions"]}),
        (r"/rerun", {}),
    ]
    body = next((b for pattern, b in bodies if re.search(pattern + "$", url)), None)
    return {"json": body}


ALL = _table_routes()


def test_every_table_route_is_enumerated():
    kinds = {k[0] for k, _ in ALL}
    assert kinds == {"service", "server"}
    assert len(ALL) > 40, [k for k, _ in ALL]


def _names_a_thing(pattern: str) -> bool:
    return bool(_groups(pattern.replace("{user}", "")))


@pytest.mark.parametrize("key,handler", ALL, ids=[f"{k[2].upper()} {k[1]}" for k, _ in ALL])
def test_data_scientist_is_refused_what_is_not_theirs(platform, world, key, handler):
    kind, pattern, method = key
    url = concrete_url(pattern, world["values"], method)
    where = f"{method.upper()} {url} ({pattern})"
    if not _names_a_thing(pattern) or _admin_only(handler):
        _check_unparameterised(platform, world, method, pattern, url, handler, where)
        return
    request = valid_request(method, url, world)
    r = platform.api(method.upper(), url, world["dan"], allow_redirects=False, **request)
    assert r.status_code < 500, f"{where} answered {r.status_code}: {r.text[:300]}"
    own = next((why for (m, suffix), why in NOT_ANOTHERS.items() if m == method and re.search(
        re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(suffix)) + "$", url)), None)
    if own:
        assert 200 <= r.status_code < 300, f"{where} ({own}): {r.status_code} {r.text[:300]}"
        return
    if r.status_code == 202 and pattern.endswith("/publish"):
        # publishing runs as a job; it must end refused, before anything is recorded
        _assert_job_refused(platform, world["dan"], url, r.json())
        return
    assert r.status_code in (403, 404), (
        f"{where}: a well-formed request for another project's thing answered "
        f"{r.status_code}: {r.text[:300]}")
    if method == "get" and not any(url.endswith(k) for k in OWNER_READ_REFUSED):
        mine = url.replace(f"/user/{DS}/", f"/user/{PM}/")
        r = platform.api("GET", mine, world["pat"], allow_redirects=False, **request)
        assert 200 <= r.status_code < 300, (
            f"GET {mine}: the owner's own read answered {r.status_code}, so the refusal above "
            f"proves nothing: {r.text[:300]}")


def _check_unparameterised(platform, world, method, pattern, url, handler, where):
    """Lists, searches and creations: nothing of project "secret" shows or is made."""
    body = {"project": SECRET, "name": SECRET, "path": "x.py"}
    r = platform.api(method.upper(), url, world["dan"],
                     params={"project": SECRET} if method == "get" else None,
                     json=body if method in ("post", "put", "patch") else None,
                     allow_redirects=False)
    assert r.status_code < 500, f"{where} answered {r.status_code}: {r.text[:300]}"
    if _admin_only(handler):
        assert r.status_code == 403, f"{where}: admin route answered {r.status_code}"
        return
    if method == "get" and any(pattern.endswith(k) for k in LAB_WIDE_READS):
        assert r.status_code == 200, f"{where}: {r.status_code}"
        return
    if method != "get" and (method, pattern) not in MAY_SUCCEED:
        assert not 200 <= r.status_code < 300, (
            f"{where}: a body naming project 'secret' was accepted: {r.text[:300]}")
    if 200 <= r.status_code < 400:
        assert SECRET not in r.text.lower(), f"{where} shows the secret project: {r.text[:300]}"


def _assert_job_refused(platform, token, url, job):
    status_url = url.rsplit("/datasets/", 1)[0] + f"/datasets/jobs/{job['id']}"
    job = until(lambda: (j := platform.api("GET", status_url, token).json())["state"] != "running"
                and j, 60, "the publish job's end")
    assert job.get("state") != "done" and job.get("error"), f"publish was not refused: {job}"
    assert "secret" in job["error"] or "project" in job["error"], job["error"]
