"""The MLflow routes the gateway forwards, each with the rule that scopes it; nothing else passes.

The gateway is an allow-list: a request is forwarded only when its method and path (below the
service prefix) match a row of :data:`ALLOWED`, and then only after the row's rule has checked
every object it names (see :mod:`.mlflow_scope`). Everything else answers 403 for
non-administrators. :data:`REFUSED` names, with a reason, the MLflow routes the platform knowingly
does not offer; it only serves the error message and the test that enumerates MLflow's own routes
(``tests/experiments/test_gateway_routes.py``): a route MLflow adds in an upgrade is in neither
list, is refused, and that test names it.

Rules (the objects a request names are always checked too, whatever the rule: experiment,
run and logged-model ids at any depth of the query or JSON body):

``open``               nothing to scope (the UI's files, health, version, server info)
``experiment``         the experiment ids it names must be in the caller's projects
``experiment_create``  the project tag must name a project of the caller (default: ``default``)
``experiment_search``  the answer is filtered to the caller's projects
``experiment_by_name`` the answered experiment must be in the caller's projects
``run``                the run ids it names (through their experiments)
``run_create``         the experiment it names; the run's ``mlops.user`` tag is stamped
``experiments``        a search: it must name experiments, each one visible
``logged_model``       the logged model in the path or body (through its experiment)
``logged_model_create`` the experiment (and source run) it names
``registered_model``   the registered model named ``name`` (its ``mlops.project`` tag)
``registered_model_create`` the project tag must name a project of the caller
``registered_model_search`` the answer is filtered to the caller's projects
``model_version_create`` the model and the version's source must lie in one visible project
``model_version_search`` the answer is filtered to the caller's projects
``artifact_path``      proxied artifacts: ``<experiment id>/...``, the experiment must be visible
``graphql``            every field of the document, with its arguments (:mod:`.mlflow_graphql`)
``no_ai_gateway``      answered by the gateway itself, never forwarded: no AI gateway endpoints
                       (what MLflow answers when none is configured; its UI asks on every
                       experiment page)
"""
from __future__ import annotations

import re
from dataclasses import dataclass

RULES = {"open", "experiment", "experiment_create", "experiment_search", "experiment_by_name",
         "run", "run_create", "experiments", "logged_model", "logged_model_create",
         "registered_model", "registered_model_create", "registered_model_search",
         "model_version_create", "model_version_search", "artifact_path", "graphql",
         "no_ai_gateway"}

# REST endpoints below /api/<version>/mlflow/ and /ajax-api/<version>/mlflow/ (the UI's copy).
# method(s), API version, endpoint (``<x>`` one path segment), rule.
_REST = """
GET         2.0 experiments/get-by-name                   experiment_by_name
POST        2.0 experiments/create                        experiment_create
GET,POST    2.0 experiments/search                        experiment_search
GET         2.0 experiments/get                           experiment
POST        2.0 experiments/delete                        experiment
POST        2.0 experiments/restore                       experiment
POST        2.0 experiments/update                        experiment
POST        2.0 experiments/set-experiment-tag            experiment
POST        2.0 experiments/delete-experiment-tag         experiment
POST        2.0 runs/create                               run_create
POST        2.0 runs/update                               run
POST        2.0 runs/delete                               run
POST        2.0 runs/restore                              run
POST        2.0 runs/log-metric                           run
POST        2.0 runs/log-parameter                        run
POST        2.0 runs/set-tag                              run
POST        2.0 runs/delete-tag                           run
GET         2.0 runs/get                                  run
POST        2.0 runs/search                               experiments
GET         2.0 artifacts/list                            run
GET         2.0 metrics/get-history                       run
GET         2.0 metrics/get-history-bulk-interval         run
GET         2.0 metrics/get-history-bulk                  run
POST        2.0 runs/log-batch                            run
POST        2.0 runs/log-model                            run
POST        2.0 runs/log-inputs                           run
POST        2.0 runs/outputs                              run
POST        2.0 logged-models                             logged_model_create
GET,PATCH,DELETE 2.0 logged-models/<model_id>             logged_model
POST        2.0 logged-models/search                      experiments
PATCH       2.0 logged-models/<model_id>/tags             logged_model
DELETE      2.0 logged-models/<model_id>/tags/<tag_key>   logged_model
GET         2.0 logged-models/<model_id>/artifacts/directories logged_model
GET         2.0 logged-models/<model_id>/artifacts/files  logged_model
POST        2.0 logged-models/<model_id>/params           logged_model
POST        2.0 registered-models/create                  registered_model_create
POST        2.0 registered-models/rename                  registered_model
PATCH       2.0 registered-models/update                  registered_model
DELETE      2.0 registered-models/delete                  registered_model
GET         2.0 registered-models/get                     registered_model
GET         2.0 registered-models/search                  registered_model_search
GET,POST    2.0 registered-models/get-latest-versions     registered_model
POST        2.0 model-versions/create                     model_version_create
PATCH       2.0 model-versions/update                     registered_model
POST        2.0 model-versions/transition-stage           registered_model
DELETE      2.0 model-versions/delete                     registered_model
GET         2.0 model-versions/get                        registered_model
GET         2.0 model-versions/search                     model_version_search
GET         2.0 model-versions/get-download-uri            registered_model
POST        2.0 registered-models/set-tag                 registered_model
POST        2.0 model-versions/set-tag                    registered_model
DELETE      2.0 registered-models/delete-tag              registered_model
DELETE      2.0 model-versions/delete-tag                 registered_model
GET,POST,DELETE 2.0 registered-models/alias               registered_model
GET         3.0 server-info                               open
GET         2.0 gateway-proxy                             no_ai_gateway
POST        2.0 experiments/search-datasets               experiments
"""

# Everything else of MLflow's, each family with the reason it is not offered.
REFUSED = [
    (r"(traces|unified-traces|get-online-trace-details|get-trace-artifact)\b",
     "GenAI traces are not offered by this platform"),
    (r"(gateway|secrets)/|gateway-proxy\b", "MLflow's AI gateway is not offered by this platform"),
    (r"runs/create-promptlab-run", "MLflow's prompt lab is not offered by this platform"),
    (r"upload-artifact", "artifacts are logged with the MLflow client (the UI's upload is not "
                         "offered)"),
    (r"ui-telemetry", "telemetry is off"),
    (r"(scorers?|issues|label-schemas|review-queues|genai|prompt-optimization|assistant)\b",
     "MLflow's GenAI evaluation features are not offered by this platform"),
    (r"datasets\b", "MLflow's evaluation datasets are not offered (the platform's dataset "
                    "catalog is at /services/mlops/)"),
    (r"webhooks\b", "MLflow webhooks would call arbitrary URLs from the platform"),
    (r"workspaces\b", "MLflow workspaces are off; projects scope MLflow instead"),
    (r"(demo|jobs)/", "MLflow's demo data and server-side jobs are not offered"),
    (r"(mlflow-artifacts/presigned/|artifacts/presigned-(upload|download)-url)",
     "artifacts go through the gateway, never to the store directly"),
    (r"online-scoring|internal", "MLflow's internal routes are not offered"),
    (r"mcp-servers\b", "MLflow's MCP server registry is not offered"),
    (r"v1/traces", "OpenTelemetry trace ingestion is not offered"),
]

_SEGMENT = r"[^/]+"


@dataclass(frozen=True)
class Route:
    methods: frozenset
    regex: re.Pattern
    rule: str
    endpoint: str


def _compile() -> list[Route]:
    routes = []
    for line in _REST.strip().splitlines():
        methods, version, endpoint, rule = line.split()
        assert rule in RULES, rule
        pattern = re.sub(r"<\w+>", _SEGMENT, re.escape(endpoint).replace(r"\<", "<")
                         .replace(r"\>", ">"))
        # (MLflow registers a few endpoints without the slash before "mlflow")
        regex = re.compile(rf"/(?:api|ajax-api)/{re.escape(version)}/?mlflow/{pattern}")
        routes.append(Route(frozenset(methods.split(",")), regex, rule, endpoint))
    other = [  # outside the REST API
        ("GET", r"/", "open"),
        ("GET", r"/static-files/.+", "open"),
        ("GET", r"/build/.+", "open"),
        ("GET", r"/health", "open"),
        ("GET", r"/version", "open"),
        ("GET", r"/get-artifact", "run"),
        ("GET", r"/model-versions/get-artifact", "registered_model"),
        ("GET,POST", r"/graphql", "graphql"),
        ("GET,PUT,DELETE", r"/(?:api|ajax-api)/2\.0/mlflow-artifacts/artifacts/.+",
         "artifact_path"),
        ("GET", r"/(?:api|ajax-api)/2\.0/mlflow-artifacts/artifacts", "artifact_path"),
        ("POST", r"/(?:api|ajax-api)/2\.0/mlflow-artifacts/mpu/(?:create|complete|abort)/.+",
         "artifact_path"),
    ]
    for methods, pattern, rule in other:
        routes.append(Route(frozenset(methods.split(",")), re.compile(pattern), rule, pattern))
    return routes


ALLOWED = _compile()


@dataclass(frozen=True)
class Match:
    rule: str | None  # None: refused
    reason: str = ""
    params: dict | None = None  # path segments, e.g. the logged model id

    @property
    def streams(self) -> bool:
        """Bodies of any size pass through unread (artifact bytes)."""
        return self.rule == "artifact_path"


def match(method: str, path: str) -> Match:
    """The route of ``method path`` (the path below the service prefix, decoded)."""
    method = "GET" if method == "HEAD" else method
    path_known = False
    for route in ALLOWED:
        if route.regex.fullmatch(path):
            path_known = True
            if method not in route.methods:
                continue
            params = {}
            m = re.search(r"/logged-models/([^/]+)", path)
            if m and route.rule == "logged_model":
                params["model_id"] = m.group(1)
            return Match(route.rule, params=params)
    if path_known:
        return Match(None, f"{method} is not allowed on {path}")
    endpoint = _endpoint(path)
    for pattern, reason in REFUSED:
        if re.match(pattern, endpoint):
            return Match(None, reason)
    return Match(None, f"{path} is not an MLflow route this platform offers")


def _endpoint(path: str) -> str:
    return re.sub(r"^/(?:api|ajax-api)/\d\.\d/?(?:mlflow/)?", "", path).lstrip("/")


def known_refusal(method: str, path: str) -> bool:
    """Whether :data:`REFUSED` names this route (used by the route enumeration test)."""
    endpoint = _endpoint(path)
    return any(re.match(pattern, endpoint) for pattern, _ in REFUSED)
