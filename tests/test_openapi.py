"""Every route in docs/openapi.yaml answers as described, on a real running platform.

Routes are collected from the document itself, so a route added there is tested here: called
without credentials (must be refused), and, when every parameter has an ``example``, called
as the administrator with its answer validated against the schema of the status it returns.
Routes of one job, sweep or pipeline are called with a real one of a data scientist (olga)
instead of the document's example id, so their success answers are validated too.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fixtures import until

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
REGISTRY = Registry().with_resource("urn:spec", Resource(SPEC, specification=DRAFT202012))
METHODS = ("get", "post", "put", "patch", "delete")
OWNED = re.compile(r"/api/(jobs|sweeps|pipelines)/\{id\}")  # called with olga's real ones


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def operations():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                yield pytest.param(path, method, id=f"{method.upper()} {path}")


def _params(path: str, method: str) -> list[dict]:
    item = SPEC["paths"][path]
    return [*item.get("parameters", []), *item[method].get("parameters", [])]


def _example_request(path: str, method: str):
    """URL path, query and JSON body from the examples, or None when one is missing."""
    query = {}
    url = path
    for p in _params(path, method):
        if "example" not in p:
            return None
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", str(p["example"]))
        elif p["in"] == "query":
            query[p["name"]] = p["example"]
    body = None
    rb = SPEC["paths"][path][method].get("requestBody")
    if rb:
        content = rb.get("content", {}).get("application/json", {})
        if "example" not in content:
            return None
        body = content["example"]
    return url, query, body


def test_document_is_valid_openapi():
    validate_spec(SPEC)


def test_every_operation_documents_its_refusals():
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                codes = set(item[method]["responses"])
                assert codes & {"401", "403", "302"}, f"{method} {path} documents no refusal"


@pytest.fixture(scope="module")
def admin_server(platform):
    platform.start_server("admin")
    return platform


@pytest.fixture(scope="module")
def owned(platform):
    """A finished job, a sweep and a pipeline of the data scientist olga (administrators
    read everyone's; they cannot run jobs themselves)."""
    platform.add_user("olga", "openapi-pass-1")
    token = platform.token("olga")
    ws = platform.data_dir / "users" / "olga"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "olga_job.py").write_text("print('described')\n")
    api = "/services/mlops/api"

    def create(kind, body):
        r = platform.api("POST", f"{api}/{kind}", token, json=body)
        assert r.status_code == 201, f"POST {kind}: {r.status_code} {r.text[:300]}"
        return str(r.json()["id"])

    ids = {"jobs": create("jobs", {"path": "olga_job.py"}),
           "sweeps": create("sweeps", {"path": "olga_job.py", "metric": "loss", "trials": 1,
                                       "space": {"x": {"type": "float", "low": 0, "high": 1}}}),
           "pipelines": create("pipelines", {"spec": {"name": "olga-pipe", "steps": [
               {"name": "a", "run": "olga_job.py"}]}})}
    until(lambda: platform.api("GET", f"{api}/jobs/{ids['jobs']}", token).json()["state"]
          in ("succeeded", "failed"), 60, "olga's job to end")
    return ids


@pytest.mark.parametrize("path,method", list(operations()))
def test_route_refuses_anonymous_callers(admin_server, path, method):
    url = path
    for p in _params(path, method):
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", str(p.get("example", "admin")))
    url = re.sub(r"\{[^}]+\}", "admin", url)
    r = requests.request(method, admin_server.url + url, allow_redirects=False, timeout=30)
    assert r.status_code in (401, 403, 302), f"{method} {url} answered {r.status_code}"


def callable_operations():
    for param in operations():
        path, method = param.values
        if _example_request(path, method) is not None:
            yield param


def test_every_read_route_can_be_called_from_the_document():
    """GET routes have no side effects: each must carry examples so it is called below."""
    missing = [f"GET {path}" for path, item in SPEC["paths"].items()
               if "get" in item and _example_request(path, "get") is None]
    assert not missing, f"add `example` to the parameters of: {missing}"


@pytest.mark.parametrize("path,method", list(callable_operations()))
def test_route_answers_as_described(admin_server, owned, path, method):
    url, query, body = _example_request(path, method)
    kind = OWNED.search(path)
    if kind:
        kind = kind.group(1)
        url = re.sub(rf"/{kind}/[0-9]+", f"/{kind}/{owned[kind]}", url, count=1)
    r = admin_server.api(method, url, admin_server.admin_token(), params=query, json=body)
    responses = SPEC["paths"][path][method]["responses"]
    if kind and method == "get":
        assert r.status_code == 200, f"GET {url} of olga's: {r.status_code} {r.text[:300]}"
    assert str(r.status_code) in responses, (
        f"{method.upper()} {url} answered {r.status_code}, documented: {sorted(responses)}"
        f"\n{r.text[:500]}"
    )
    content = responses[str(r.status_code)]
    if "$ref" in content:
        content = REGISTRY.resolver().lookup("urn:spec" + content["$ref"]).contents
    schema = content.get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        ref = {"$ref": "urn:spec#/" + _pointer("paths", path, method, "responses",
                                                str(r.status_code)) }
        if "$ref" in responses[str(r.status_code)]:
            ref = {"$ref": "urn:spec" + responses[str(r.status_code)]["$ref"]}
        ref["$ref"] += "/" + _pointer("content", "application/json", "schema")
        Draft202012Validator(ref, registry=REGISTRY).validate(r.json())
