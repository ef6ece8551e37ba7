"""The platform on Kubernetes: what Zero-to-JupyterHub's ``hub.extraConfig`` runs.

``hub_config/z2jh-values.yaml`` has the chart's ``jupyterhub_config.py`` load ``hub.config``
(``c.MlopsHub.*``, ``c.MlopsKube.*``, ``c.KubeJobBackend.*``...) and then call
:func:`configure_kubernetes`. It adds to what the chart configured (the idle culler's service
and role stay) the same three hub-managed services as the embedded default, running inside
the hub pod:

- ``mlflow-server``: MLflow on Postgres (``MlopsKube.mlflow_backend_store_uri``) with artifacts
  proxied to S3 (``MlopsKube.mlflow_artifacts_destination``), on a unix socket under
  ``MlopsHub.data_dir`` (the hub's volume), never a port;
- ``mlflow``: the hub-authenticated gateway in front of it (``/services/mlflow/``);
- ``mlops``: the control plane (``/services/mlops/``) on Postgres, creating batch/v1 Jobs and
  apps/v1 Deployments + Services with the hub's ServiceAccount
  (``hub_config/k8s-control-plane-rbac.yaml``, made by :func:`make_control_plane_role` and
  :func:`make_control_plane_role_binding`).

Addresses: the proxy reaches the gateway and the control plane through the hub's Kubernetes
Service (``http://hub:PORT``, ports added with ``hub.service.extraPorts``); user servers, job
pods and model servers reach them through the proxy (``http://proxy-public/services/...``),
where hub authentication applies, as users' browsers do.

Secrets never go on a command line (JupyterHub logs services' commands): the hub pod gets them
from Kubernetes Secrets (``hub.extraEnv``) and passes exactly these variables to the services
that need them: ``PGPASSWORD`` (read by libpq for every Postgres URL without a password),
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (read by boto3, for MLflow's artifacts and
the dataset store).

No cluster runs in this project's tests: they execute this against the values file's settings
and validate every object against Kubernetes' schemas.
"""
from __future__ import annotations

import os

from traitlets import Integer, Unicode, default
from traitlets.config import Configurable

from ..core import roles
from . import config as embedded

PG_ENV = ("PGPASSWORD",)
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# The control plane's own settings (another process than the hub): their hub.config sections
# are passed on to its command line.
CONTROL_PLANE_SECTIONS = ("JobSettings", "DeploymentSettings", "KubeJobBackend",
                          "KubeDeployBackend", "StoreSettings", "PlatformAdmin")
CONTROL_PLANE_ROLE = "jupyter-mlops-control-plane"

# What KubeJobBackend and KubeDeployBackend call, and nothing else (KubeSpawner's own rights
# come with the chart's hub Role).
# ref: https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources
CONTROL_PLANE_RULES = [
    # jobs_kube: create_namespaced_job, read_namespaced_job, delete_namespaced_job
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "delete"]},
    # deploy_kube: create/read/delete_namespaced_deployment
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "get", "delete"]},
    # deploy_kube: create/delete_namespaced_service
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete"]},
    # deploy_kube: create/delete_namespaced_horizontal_pod_autoscaler (autoscaling/v2)
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
     "verbs": ["create", "delete"]},
    # deploy_kube, kube_gpu: list_namespaced_pod (why a model server or a job's pod does not
    # start), a pod's log, and the events of a Pending pod (the scheduler's reason)
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    # deploy_kube: create/delete_namespaced_secret, each model server version's MLflow token
    # (never get or list: the control plane has no reason to read other Secrets of the
    # namespace back)
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
]


def make_control_plane_role(*, namespace: str, name: str = CONTROL_PLANE_ROLE) -> dict:
    """The rbac.authorization.k8s.io/v1 Role of the control plane in the namespace its jobs
    and model servers run in."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "jupyter-mlops"}},
        "rules": [dict(rule) for rule in CONTROL_PLANE_RULES],
    }


def make_control_plane_role_binding(*, namespace: str, service_account: str = "hub",
                                    service_account_namespace: str,
                                    name: str = CONTROL_PLANE_ROLE) -> dict:
    """Binds :func:`make_control_plane_role` to the hub pod's ServiceAccount (the control plane
    runs in the hub pod; the chart names the account ``hub``)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/part-of": "jupyter-mlops"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account,
                      "namespace": service_account_namespace}],
    }


class MlopsKube(Configurable):
    """Kubernetes settings of the platform (``hub.config.MlopsKube`` in the Helm values).

    Platform-wide settings shared with the embedded default stay ``c.MlopsHub.*``
    (``data_dir``, ``gpu_devices``, ``group_projects``, ``authenticator``/``oidc_*``...).
    """

    namespace = Unicode(
        help="""Namespace of training Jobs and model servers (and of the control plane's Role).
        Defaults to the hub's own, ``$POD_NAMESPACE`` (the chart sets it on the hub pod).""",
    ).tag(config=True)

    @default("namespace")
    def _default_namespace(self):
        return os.environ.get("POD_NAMESPACE", "default")

    db_url = Unicode(
        "postgresql://mlops@mlops-postgres:5432/mlops",
        help="""Postgres URL of the control plane database (projects, quotas, GPU allocations
        of jobs, deployments and user servers, jobs, Optuna sweeps); the hub reaches it only
        through the control plane's API. Leave the password out: it comes from
        ``$PGPASSWORD`` of the hub pod (a Secret), never a command line. The hub image needs
        ``psycopg2-binary``.""",
    ).tag(config=True)

    mlflow_backend_store_uri = Unicode(
        "postgresql://mlflow@mlops-postgres:5432/mlflow",
        help="""MLflow's backend store (experiments, runs, registered models): a Postgres URL
        without password (``$PGPASSWORD`` again).""",
    ).tag(config=True)

    mlflow_artifacts_destination = Unicode(
        "s3://mlops-mlflow/artifacts",
        help="""Where MLflow keeps artifacts and models, e.g. ``s3://bucket/prefix``. MLflow
        proxies them (``--serve-artifacts``): users, jobs and model servers need no S3 keys.""",
    ).tag(config=True)

    s3_endpoint_url = Unicode(
        "",
        help="""S3 endpoint of MLflow's artifacts when not AWS (MinIO, SeaweedFS, Ceph), e.g.
        ``http://seaweedfs-s3.storage:8333``; becomes ``$MLFLOW_S3_ENDPOINT_URL``. The dataset
        store has its own (``MlopsHub.dataset_store``).""",
    ).tag(config=True)

    control_plane_port = Integer(
        10101,
        help="""Port of the control plane in the hub pod. The hub's Service must expose it
        (``hub.service.extraPorts``) and the hub's NetworkPolicy admit the proxy to it.""",
    ).tag(config=True)

    gateway_port = Integer(
        10102, help="Port of the MLflow gateway in the hub pod (exposed like control_plane_port).",
    ).tag(config=True)

    hub_service = Unicode(
        "hub",
        help="""Name of the hub's Kubernetes Service, through which the proxy reaches the
        services in the hub pod (the chart's ``hub`` unless ``fullnameOverride`` is set).""",
    ).tag(config=True)

    proxy_url = Unicode(
        "http://proxy-public",
        help="""The proxy as pods reach it: user servers, jobs and model servers call MLflow
        and the control plane at ``<proxy_url>/services/...`` with hub tokens. The short name
        works in the hub's namespace; from other namespaces use
        ``http://proxy-public.<hub namespace>.svc.cluster.local``.""",
    ).tag(config=True)


def _secret_env(names) -> dict:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise RuntimeError(
            f"the hub pod lacks {', '.join(missing)}: set them from Secrets with hub.extraEnv "
            "(see hub_config/z2jh-values.yaml)")
    return {n: os.environ[n] for n in names}


def _control_plane_args(c, derived: dict) -> list[str]:
    """``--Section.trait=value`` of the control plane's sections of ``c`` (scalars only), then
    the derived ones; a section setting what ``derived`` decides is refused."""
    args = []
    for section in CONTROL_PLANE_SECTIONS:
        for trait, value in (c[section] if section in c else {}).items():
            if (section, trait) in derived:
                raise RuntimeError(f"{section}.{trait} is derived from MlopsKube/MlopsHub; "
                                   "set those instead")
            if not isinstance(value, (str, int, float, bool)):
                raise RuntimeError(f"{section}.{trait}: only strings and numbers reach the "
                                   "control plane's command line")
            args.append(f"--{section}.{trait}={value}")
    args += [f"--{section}.{trait}={value}" for (section, trait), value in derived.items()]
    return args


def _existing(c, trait: str) -> list:
    # The chart fills these lists (the idle culler's service and role) before extraConfig.
    value = c.JupyterHub.get(trait) if "JupyterHub" in c else None
    return list(value) if isinstance(value, list) else []


def configure_kubernetes(c) -> tuple[embedded.MlopsHub, MlopsKube]:
    """Add jupyter-mlops to Zero-to-JupyterHub's config ``c``. Returns the settings used."""
    hub = embedded.settings_from(c)
    kube = MlopsKube(config=c)
    py = hub.python
    # The embedded default's layout on the hub's volume (docs/data-directory.md): the services
    # need control/ (cookie secrets), hub/ (local accounts) and MLflow's 0700 socket directory
    # before they start; store/, datasets/, users/ stay empty (S3 and claims hold those).
    embedded.make_dirs(hub)
    run = embedded.mlflow_socket(hub).parent

    embedded.configure_login(c, hub)
    cp_url = f"{kube.proxy_url}/services/mlops/"
    mlflow_url = f"{kube.proxy_url}/services/mlflow"
    c.MlopsKubeSpawner.control_plane_url = cp_url
    c.MlopsKubeSpawner.mlflow_url = mlflow_url
    spawner_service = []
    if hub.gpu_devices is not None:
        # The GPU pool is the control plane's (allocations and quotas in its database, shared
        # with jobs and deployments): the spawner asks its API, in this pod, as the token-only
        # service "mlops-spawner", as the embedded default does; the hub keeps no GPU state.
        # Without a pool the scheduler alone places GPUs.
        c.MlopsKubeSpawner.gpu_api_url = \
            f"http://127.0.0.1:{kube.control_plane_port}/services/mlops/"
        c.MlopsKubeSpawner.gpu_api_token = embedded.spawner_token(hub)
        spawner_service = [{"name": embedded.SPAWNER_SERVICE,
                            "api_token": embedded.spawner_token(hub)}]

    pg = _secret_env(PG_ENV)
    s3 = _secret_env(S3_ENV)
    mlflow_env = {**embedded.MLFLOW_ENV, **pg, **s3}
    if kube.s3_endpoint_url:
        mlflow_env["MLFLOW_S3_ENDPOINT_URL"] = kube.s3_endpoint_url
    derived = {
        ("JobSettings", "backend"): "kubernetes",
        ("DeploymentSettings", "backend"): "kubernetes",
        # Pods reach MLflow and the control plane through the proxy, with their user's token.
        ("JobSettings", "tracking_uri"): mlflow_url,
        ("JobSettings", "control_plane_url"): cp_url,
        ("JobSettings", "optuna_storage"): kube.db_url,
        ("KubeJobBackend", "namespace"): kube.namespace,
        ("KubeDeployBackend", "namespace"): kube.namespace,
        ("KubeDeployBackend", "tracking_uri"): mlflow_url,
    }
    for key, value in hub.dataset_store.items():
        if key in ("s3_access_key_id", "s3_secret_access_key"):
            raise RuntimeError(f"MlopsHub.dataset_store.{key}: on Kubernetes the keys come "
                               "from a Secret ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY)")
        derived[("StoreSettings", key)] = value
    cp_cmd = [py, "-m", "jupyter_mlops.service", f"--MlopsService.data_dir={hub.data_dir}",
              # All interfaces: the proxy connects through the hub's Service, not localhost.
              f"--MlopsService.service_url=http://0.0.0.0:{kube.control_plane_port}",
              f"--MlopsService.db_url={kube.db_url}",
              *embedded.platform_args(hub), *_control_plane_args(c, derived)]
    gw_cmd = [py, "-m", "jupyter_mlops.service.mlflow_gateway",
              f"--MlflowGateway.socket_path={embedded.mlflow_socket(hub)}",
              f"--MlflowGateway.cookie_secret_file={hub.path('control', 'gateway_secret')}",
              f"--MlflowGateway.service_url=http://0.0.0.0:{kube.gateway_port}",
              # project scoping reads the control plane's database, on Postgres here
              f"--MlflowGateway.projects_db_url={kube.db_url}"]
    services = embedded.mlops_services(
        mlflow_command=embedded.mlflow_server_command(
            python=py, backend_store_uri=kube.mlflow_backend_store_uri,
            artifacts_destination=kube.mlflow_artifacts_destination,
            workers=hub.mlflow_workers, socket_path=str(embedded.mlflow_socket(hub))),
        mlflow_env=mlflow_env, mlflow_cwd=str(run.parent),
        control_plane_url=f"http://{kube.hub_service}:{kube.control_plane_port}",
        control_plane_command=cp_cmd, control_plane_env={**pg, **s3},
        gateway_url=f"http://{kube.hub_service}:{kube.gateway_port}",
        gateway_command=gw_cmd, gateway_env={**embedded.MLFLOW_ENV, **pg})
    c.JupyterHub.services = _existing(c, "services") + services + spawner_service

    groups, lab_roles = embedded.configure_roles(c, hub)
    c.JupyterHub.load_roles = _existing(c, "load_roles") + lab_roles
    if spawner_service:
        c.JupyterHub.load_roles.append({
            "name": embedded.SPAWNER_SERVICE, "services": [embedded.SPAWNER_SERVICE],
            "scopes": [roles.SPAWNER],
            "description": "The hub's spawner: GPUs of user servers, from the control plane."})
    if groups:
        c.JupyterHub.load_groups = groups
    return hub, kube

