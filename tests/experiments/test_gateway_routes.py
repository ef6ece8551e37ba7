"""The gateway's allow-list against the routes the installed MLflow actually serves.

Every route of MLflow's Flask app, its REST/GraphQL table (``handlers.get_endpoints``) and its
FastAPI routers must be either allowed with a rule or knowingly refused: a route a new MLflow
adds is refused by the gateway (it matches no allowed row) and this test names it.
"""
from __future__ import annotations

import re

import pytest

from jupyter_mlops.service import mlflow_routes
from jupyter_mlops.service.mlflow_graphql import graphql_ids
from jupyter_mlops.core.errors import Forbidden, InvalidInput


def _fastapi_routes(routes, prefix=""):
    for r in routes:
        if hasattr(r, "original_router"):  # an included router
            yield from _fastapi_routes(r.original_router.routes,
                                       prefix + r.include_context.prefix)
        elif getattr(r, "methods", None):
            for m in r.methods:
                yield m, prefix + r.path


def mlflow_endpoints() -> list[tuple[str, str]]:
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import create_fastapi_app
    from mlflow.server.handlers import get_endpoints

    eps = [(m, p) for p, _, methods in get_endpoints() for m in methods]
    eps += [(m, rule.rule) for rule in flask_app.url_map.iter_rules()
            for m in rule.methods - {"HEAD", "OPTIONS"}]
    eps += list(_fastapi_routes(create_fastapi_app().routes))
    # a concrete path: every parameter becomes a plausible value
    return sorted({(m, re.sub(r"[<{](?:path:)?(\w+)(?::path)?[>}]", "123", p))
                   for m, p in eps})


def test_every_mlflow_route_is_allowed_with_a_rule_or_refused():
    endpoints = mlflow_endpoints()
    assert len(endpoints) > 300  # MLflow 3 serves several hundred; an empty list proves nothing
    undecided, allowed = [], set()
    for method, path in endpoints:
        m = mlflow_routes.match(method, path)
        if m.rule is not None:
            assert m.rule in mlflow_routes.RULES
            allowed.add((method, path))
        elif not mlflow_routes.known_refusal(method, path):
            undecided.append(f"{method} {path}")
    assert not undecided, ("MLflow routes neither allowed nor knowingly refused (the gateway "
                           "refuses them; decide in mlflow_routes.py):\n" + "\n".join(undecided))
    # what a lab needs is there, through both the client's and the UI's API
    for need in [("GET", "/api/2.0/mlflow/runs/get"), ("GET", "/ajax-api/2.0/mlflow/runs/get"),
                 ("GET", "/api/2.0/mlflow/logged-models/123"),
                 ("POST", "/api/2.0/mlflow/model-versions/create"),
                 ("PUT", "/api/2.0/mlflow-artifacts/artifacts/123"),
                 ("POST", "/graphql"), ("GET", "/health")]:
        assert need in allowed, need


@pytest.mark.parametrize("method,path,reason", [
    ("GET", "/api/2.0/mlflow/webhooks", "webhooks"),
    ("POST", "/api/3.0/mlflow/traces/search", "traces"),
    ("POST", "/api/2.0/mlflow/logged-models/search/extra", "not an MLflow route"),
    ("DELETE", "/api/2.0/mlflow/runs/get", "not allowed"),
    ("GET", "/api/2.0/mlflow/runs/get/", "not an MLflow route"),
    ("GET", "/admin", "not an MLflow route"),
])
def test_everything_else_is_refused_with_a_reason(method, path, reason):
    m = mlflow_routes.match(method, path)
    assert m.rule is None and reason in m.reason


def test_graphql_arguments_are_read_as_the_server_reads_them():
    run = "a" * 32
    # inline literal, variable, variable default, alias, fragment: all name the run
    for doc, variables in [
        ('{ mlflowGetRun(input: {runId: "%s"}) { run { info { runId } } } }' % run, {}),
        ("query Q($id: String) { x: mlflowGetRun(input: {runId: $id}) { __typename } }",
         {"id": run}),
        ('query Q($id: String = "%s") { mlflowGetRun(input: {runId: $id}) { __typename } }'
         % run, {}),
        ('query Q($i: MlflowGetRunInput = {runId: "%s"}) { mlflowGetRun(input: $i) '
         '{ __typename } }' % run, {}),
        ('{ ...F } fragment F on Query { mlflowGetRun(input: {runId: "%s"}) '
         '{ __typename } }' % run, {}),
        ('query A { test { output } } query B { mlflowGetRun(input: {runId: "%s"}) '
         '{ __typename } }' % run, {}),
    ]:
        assert graphql_ids({"query": doc, "variables": variables}).runs == {run}, doc
    ids = graphql_ids({"query": "mutation { mlflowSearchRuns(input: {experimentIds: "
                                "[\"7\", \"8\"]}) { __typename } }"})
    assert ids.experiments == {"7", "8"}


@pytest.mark.parametrize("request_, error", [
    ({"query": "{ mlflowSearchModelVersions(input: {}) { __typename } }"}, Forbidden),
    ({"query": "{ __schema { types { name } } }"}, Forbidden),
    ({"query": "subscription { x }"}, Forbidden),
    ({"query": "mutation { mlflowSearchRuns(input: {}) { __typename } }"}, InvalidInput),
    ({"query": "{ mlflowGetRun(input: {runId: [\"x\"]}) { __typename } }"}, InvalidInput),
    ({"query": "{ " * 5000}, InvalidInput),
    ({"query": "{ ...F }"}, InvalidInput),
    ({"query": 3}, InvalidInput),
    ({"query": "{ test }", "variables": [1]}, InvalidInput),
    ("{ test }", InvalidInput),
])
def test_graphql_outside_the_ui_operations_is_refused(request_, error):
    with pytest.raises(error):
        graphql_ids(request_)
