"""How jobs reach MLflow and the catalog: a short-lived hub token of the job's user, and the
few MLflow calls the control plane makes itself.

The scopes and the two Protocols are here; the adapters are in ``jupyter_mlops.backends``
(``hub_tokens.HubTokenIssuer`` over the hub's REST API, ``mlflow_rest.MlflowRest`` over MLflow's).

Decision (least privilege): a job never sees the control plane's own token. For each job the
control plane asks the hub for a token *of the job's user* with three scopes: access to the
MLflow service, access to the control plane, and the lab's ``use`` scope (never ``manage`` or
``admin``, whatever the user holds), expiring with the job's time limit and revoked when the job
ends. The job's runs are therefore the user's runs in MLflow, and ``datasets.get`` in a job
reads the catalog as the user (any tag, any store, lineage recorded) but cannot approve,
administer or act as anyone else. The control plane needs the hub scope ``tokens`` for this,
filtered to users who are not hub administrators (``jupyter_mlops.hub.sso``,
``jupyter_mlops.hub.members``): work of a hub administrator gets no token.
"""
from __future__ import annotations

from typing import Callable, Protocol

from .. import roles

MLFLOW_SCOPE = "access:services!service=mlflow"
JOB_SCOPES = [MLFLOW_SCOPE, "access:services!service=mlops", roles.USE]
# A model server only downloads its model version through the MLflow gateway: access to the
# gateway is all the gateway asks of a token (it then scopes by the user's project membership),
# and the hub has no narrower, read-only scope for a service.
MODEL_SERVER_SCOPES = [MLFLOW_SCOPE]


class TokenIssuer(Protocol):
    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        """``(token, token_id)`` of a new token of ``user`` with ``scopes`` (default
        :data:`JOB_SCOPES`), expiring after ``lifetime`` seconds (0: the hub's maximum, if it
        sets one, else never)."""

    async def revoke(self, user: str, token_id: str) -> None: ...


class MlflowRuns(Protocol):
    """The MLflow calls the control plane itself makes: a sweep's parent run, and ending the run
    of a job whose wrapper was killed. Errors are ``core.errors`` (``Unavailable`` when MLflow
    cannot be reached or refuses)."""

    async def experiment_id(self, name: str, project: str = "default") -> str:
        """The experiment named ``name``, created (tagged with ``project``) if absent."""

    async def create_run(self, experiment_id: str, name: str, tags: dict) -> str: ...

    async def log(self, run_id: str, params: dict | None = None, metrics: dict | None = None,
                  tags: dict | None = None) -> None: ...

    async def finish_run(self, run_id: str, status: str = "FINISHED") -> None: ...

    async def end_if_running(self, run_id: str, status: str) -> bool:
        """End a run still RUNNING with ``status``; False if it had ended already."""


# ``(tracking_uri, token) -> MlflowRuns``: how the runner and sweeps get an MLflow client.
MlflowRunsFactory = Callable[[str, str], MlflowRuns]


class FixedTokenIssuer:
    """Hands out given tokens (tests, and MLflow servers without authentication)."""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = tokens or {}

    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        return self.tokens.get(user, ""), ""

    async def revoke(self, user: str, token_id: str) -> None:
        return None
