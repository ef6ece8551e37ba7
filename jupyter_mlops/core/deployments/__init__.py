"""Deployments: a registered model version served as a REST endpoint with a stable URL.

A deployment belongs to a project and has a name that is its URL
(``/services/mlops/endpoints/<name>/invocations``). It points at one registered model version;
pointing it at another rolls forward or back with no failed request: the new version's server
starts, becomes ready, takes the traffic, and only then is the old one drained and stopped. A
version that fails to load leaves the deployment ``failed`` with the server's log while the
previous version keeps serving.

Where model servers run is a :class:`DeployBackend` (local processes, Kubernetes); where a model
version's files are is a :class:`ModelResolver`. Both are seams, so this module holds the rules
and the state machine and nothing about processes, pods or MLflow's wire protocol.

Statuses: ``starting`` (the first version loads, nothing serves yet), ``ready``, ``updating``
(a new version loads while the previous one serves), ``failed`` (the last version did not load;
``serving_version`` says whether an older one still serves), ``pending_approval`` (the project
requires its manager's approval of a data scientist's deploy or switch; whatever served before
keeps serving until a manager approves).

Audit log (``deployment_events``): who created, switched, deleted, created tokens, and which
version started serving when. Rows stay after the deployment is deleted.

Local model servers are supervised (``supervision``): probed, restarted with backoff when they
stop, their state shown with the deployment (``server``); statuses ``unresponsive`` and
``restarting`` replace ``ready`` while the serving server does not answer.

Modules: ``service`` (:class:`Deployments`, the state machine), ``model`` (names, tables,
seams, routes and traffic, the audit-log writer), ``supervision`` (liveness and restarts),
``tokens`` (endpoint tokens for outside
clients), ``approvals`` (per-project approval policies).
"""
from .approvals import ApprovalPolicies
from .model import (NAME_RE, SCHEMA, VISIBILITIES, DeployBackend, LoadFailed, ModelResolver,
                    Route, Traffic)
from .service import Deployments
from .supervision import SupervisionPolicy, Supervisor
from .tokens import TOKEN_PREFIX, EndpointTokens

__all__ = ["NAME_RE", "SCHEMA", "TOKEN_PREFIX", "VISIBILITIES", "ApprovalPolicies",
           "DeployBackend", "Deployments", "EndpointTokens", "LoadFailed", "ModelResolver",
           "Route", "SupervisionPolicy", "Supervisor", "Traffic"]
