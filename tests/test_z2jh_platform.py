"""hub_config/z2jh-values.yaml runs the whole platform: the services in the hub pod, their
addresses, roles, secrets, network paths and the control plane's RBAC.

Simulated: no cluster. The values' hub.config and hub.extraConfig run as the chart's
jupyterhub_config.py runs them (tests/z2jh_chart.py); the commands they produce are parsed by
the real applications; every Kubernetes object is validated against the official schemas.
"""
import json
import re
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from jupyter_mlops.hub import kube as hub_kube, sso
from tests.z2jh_chart import CULLER, CULLER_ROLE, SECRETS, chart_config, load_values

REPO = Path(__file__).resolve().parents[1]
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
OURS = ("mlflow-server", "mlops", "mlflow")


@pytest.fixture
def values():
    return load_values()


@pytest.fixture
def c(values, tmp_path, monkeypatch):
    return chart_config(values, data_dir=tmp_path / "mlops", monkeypatch=monkeypatch)


def _services(c) -> dict:
    return {s["name"]: s for s in c.JupyterHub.services}


def _validate(obj):
    for v in VERSIONS:
        kubernetes_validate.validate(obj, v, strict=True)


def test_control_plane_runs_the_kubernetes_backends_on_postgres(c, tmp_path):
    from jupyter_mlops.backends.deploy_kube import KubeDeployBackend
    from jupyter_mlops.backends.deploy_local import DeploymentSettings
    from jupyter_mlops.backends.jobs_kube import KubeJobBackend
    from jupyter_mlops.backends.store import StoreSettings
    from jupyter_mlops.service.app import MlopsService
    from jupyter_mlops.service.jobs_platform import JobSettings

    cp = _services(c)["mlops"]
    assert cp["url"] == "http://hub:10101"  # the proxy routes through the hub's Service
    assert cp["command"][1:3] == ["-m", "jupyter_mlops.service"]
    assert cp["environment"] == SECRETS  # secrets by environment, never on the command line
    assert not any(secret in arg for arg in cp["command"] for secret in SECRETS.values())
    service = MlopsService()
    service.initialize(cp["command"][3:])  # what follows `python -m jupyter_mlops.service`
    assert service.db_url == "postgresql://mlops@mlops-postgres:5432/mlops"
    assert service.data_dir == str(tmp_path / "mlops")
    assert service.service_url == "http://0.0.0.0:10101"  # reachable from the proxy pod
    jobs = JobSettings(parent=service)
    assert (jobs.backend, jobs.tracking_uri, jobs.control_plane_url, jobs.optuna_storage) == (
        "kubernetes", "http://proxy-public/services/mlflow",
        "http://proxy-public/services/mlops/", "postgresql://mlops@mlops-postgres:5432/mlops")
    assert (jobs.workspace_root, jobs.jobs_dir) == ("/srv/mlops/users", "/srv/mlops/jobs")
    kjobs = KubeJobBackend(parent=service)
    assert (kjobs.namespace, kjobs.image, kjobs.workspace_claim, kjobs.jobs_claim) == (
        "jhub", "registry.lab.example/jupyter-mlops-singleuser:0.1.0",
        "jupyter-mlops-workspaces", "jupyter-mlops-jobs")
    # GPU jobs run in the CUDA variant of the single-user image, with a larger /dev/shm
    assert (kjobs.gpu_image, kjobs.shm_size) == (
        "registry.lab.example/jupyter-mlops-singleuser-cuda:0.1.0", "8Gi")
    assert DeploymentSettings(parent=service).backend == "kubernetes"
    kdeploy = KubeDeployBackend(parent=service)
    assert (kdeploy.namespace, kdeploy.tracking_uri, kdeploy.image) == (
        "jhub", "http://proxy-public/services/mlflow",
        "registry.lab.example/jupyter-mlops-serve:0.1.0")
    store = StoreSettings(parent=service)
    assert (store.backend, store.s3_bucket, store.s3_path_style, store.s3_access_key_id) == (
        "s3", "mlops-datasets", True, "")  # keys: boto3 reads the environment
    admin = service.config.PlatformAdmin  # as in the embedded default (hub.platform_args)
    assert json.loads(admin.group_projects) == {"cells-team": ["cells"]}
    assert json.loads(service.gpu_devices) == [{"name": "NVIDIA-A100-SXM4-40GB"}] * 4


def test_mlflow_on_postgres_and_s3_listens_on_a_unix_socket_only(c, tmp_path):
    server = _services(c)["mlflow-server"]
    cmd = server["command"]
    assert "url" not in server  # never routed by the proxy
    assert cmd[cmd.index("--backend-store-uri") + 1] == \
        "postgresql://mlflow@mlops-postgres:5432/mlflow"
    assert cmd[cmd.index("--artifacts-destination") + 1] == "s3://mlops-mlflow/artifacts"
    sock = tmp_path / "mlops" / "mlflow" / "run" / "mlflow.sock"
    assert cmd[cmd.index("--uvicorn-opts") + 1] == f"--uds {sock}"
    assert not {"--port", "--host", "-h", "-p"} & set(cmd)
    assert sock.parent.stat().st_mode & 0o777 == 0o700
    assert server["environment"] == {
        "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_S3_ENDPOINT_URL": "http://seaweedfs-s3.storage:8333", **SECRETS}


def test_gateway_reads_the_socket_and_scopes_projects_in_postgres(c, tmp_path):
    from jupyter_mlops.service.mlflow_gateway import MlflowGateway

    gw = _services(c)["mlflow"]
    assert gw["url"] == "http://hub:10102"
    assert gw["environment"]["PGPASSWORD"] == SECRETS["PGPASSWORD"]
    assert "AWS_SECRET_ACCESS_KEY" not in gw["environment"]  # MLflow proxies the artifacts
    app = MlflowGateway()
    app.parse_command_line(gw["command"][3:])
    assert app.socket_path == str(tmp_path / "mlops" / "mlflow" / "run" / "mlflow.sock")
    assert app.projects_db_url == "postgresql://mlops@mlops-postgres:5432/mlops"
    assert app.service_url == "http://0.0.0.0:10102"


def test_no_service_address_only_the_hub_pod_could_reach(c):
    ours = [s for s in c.JupyterHub.services if s["name"] in OURS]
    assert [s["name"] for s in ours] == list(OURS)
    text = json.dumps(ours)
    assert "127.0.0.1" not in text and "localhost" not in text


def test_the_charts_culler_stays_and_roles_are_the_embedded_ones(c):
    assert c.JupyterHub.services[0] == CULLER
    assert c.JupyterHub.load_roles[0] == CULLER_ROLE
    _, lab_roles = sso.load_roles(set(), local=False)  # OIDC: the IdP fills the groups
    assert c.JupyterHub.load_roles[1:-1] == lab_roles  # then the spawner's (test below)
    from jupyter_mlops.core import roles

    assert set(c.JupyterHub.custom_scopes) == set(roles.ALL_SCOPES) >= {
        "custom:mlops:use", "custom:mlops:manage", "custom:mlops:admin"}
    assert "custom:mlops:admin" in c.Spawner.server_token_scopes
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.oauth_callback_url == \
        "https://jupyter.lab.example/hub/oauth_callback"
    assert "load_groups" not in c.JupyterHub  # JupyterHub refuses it with manage_groups
    assert c.JupyterHub.template_paths == [str(REPO / "jupyter_mlops" / "hub" / "templates")]


def test_user_servers_reach_the_services_through_the_proxy(c):
    assert c.MlopsKubeSpawner.control_plane_url == "http://proxy-public/services/mlops/"
    assert c.MlopsKubeSpawner.mlflow_url == "http://proxy-public/services/mlflow"


def test_the_spawner_takes_gpus_from_the_control_plane_api(c, tmp_path):
    # The hub reaches no database of the control plane: it asks the control plane in its pod
    # with the token of the "mlops-spawner" service, whose role has the spawner scope only.
    from jupyter_mlops.core import roles

    assert "db_url" not in c.MlopsKubeSpawner and "gpu_devices" not in c.MlopsKubeSpawner
    assert c.MlopsKubeSpawner.gpu_api_url == "http://127.0.0.1:10101/services/mlops/"
    token = (tmp_path / "mlops" / "hub" / "spawner_token").read_text().strip()
    assert len(token) == 64 and c.MlopsKubeSpawner.gpu_api_token == token
    assert _services(c)["mlops-spawner"] == {"name": "mlops-spawner", "api_token": token}
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "mlops-spawner")
    assert role["services"] == ["mlops-spawner"] and role["scopes"] == [roles.SPAWNER]


def test_ports_agree_across_service_network_policies_and_urls(values, c):
    hub = values["hub"]
    kube = hub["config"]["MlopsKube"]
    ports = {kube["control_plane_port"], kube["gateway_port"]}
    assert {p["port"] for p in hub["service"]["extraPorts"]} == ports
    assert {p["targetPort"] for p in hub["service"]["extraPorts"]} == ports
    (ingress,) = hub["networkPolicy"]["ingress"]
    assert {p["port"] for p in ingress["ports"]} == ports
    assert {"app": "jupyterhub", "component": "proxy"} in [
        f["podSelector"]["matchLabels"] for f in ingress["from"]]
    (egress,) = values["proxy"]["chp"]["networkPolicy"]["egress"]
    assert {p["port"] for p in egress["ports"]} == ports
    urls = [urlparse(_services(c)[n]["url"]) for n in ("mlops", "mlflow")]
    assert {u.port for u in urls} == ports and {u.hostname for u in urls} == {"hub"}
    # user pods may reach the proxy on its http port by the chart's own singleuser policy
    assert values["singleuser"]["networkPolicy"]["enabled"] is True


def test_the_values_fragments_are_valid_kubernetes(values):
    """The objects the chart renders around these fragments (validated with the fragments
    in place; the rest of each object as the chart writes it)."""
    hub = values["hub"]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hub"},
               "spec": {"type": "ClusterIP", "selector": {"component": "hub"},
                        "ports": [{"name": "hub", "port": 8081, "targetPort": "http"},
                                  *hub["service"]["extraPorts"]]}}
    hub_policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                  "metadata": {"name": "hub"},
                  "spec": {"podSelector": {"matchLabels": {"component": "hub"}},
                           "policyTypes": ["Ingress"], "ingress": hub["networkPolicy"]["ingress"]}}
    proxy_policy = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "proxy"},
                    "spec": {"podSelector": {"matchLabels": {"component": "proxy"}},
                             "policyTypes": ["Egress"],
                             "egress": values["proxy"]["chp"]["networkPolicy"]["egress"]}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hub"},
           "spec": {"serviceAccountName": "hub", "volumes": hub["extraVolumes"],
                    "containers": [{"name": "hub", "image": "hub:1", "env": hub["extraEnv"],
                                    "volumeMounts": hub["extraVolumeMounts"]}]}}
    for obj in (service, hub_policy, proxy_policy, pod):
        _validate(obj)
    mounts = {m["mountPath"] for m in hub["extraVolumeMounts"]}
    jobs = hub["config"]["JobSettings"]
    assert {jobs["workspace_root"], jobs["jobs_dir"]} == mounts
    claims = {v["persistentVolumeClaim"]["claimName"] for v in hub["extraVolumes"]}
    backend = hub["config"]["KubeJobBackend"]
    assert {backend["workspace_claim"], backend["jobs_claim"]} == claims
    assert values["singleuser"]["storage"]["static"]["pvcName"] == backend["workspace_claim"]


def test_rbac_file_matches_builders():
    docs = list(yaml.safe_load_all((REPO / "hub_config" / "k8s-control-plane-rbac.yaml")
                                   .read_text()))
    assert docs == [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "jupyter-mlops-control-plane", "namespace": "jhub",
                      "labels": {"app.kubernetes.io/part-of": "jupyter-mlops"}},
         "rules": [
             {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "delete"]},
             {"apiGroups": ["apps"], "resources": ["deployments"],
              "verbs": ["create", "get", "delete"]},
             {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete"]},
             {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
              "verbs": ["create", "delete"]},
             {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
             {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
             {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "jupyter-mlops-control-plane", "namespace": "jhub",
                      "labels": {"app.kubernetes.io/part-of": "jupyter-mlops"}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "jupyter-mlops-control-plane"},
         "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": "jhub"}]},
    ]
    assert docs == [hub_kube.make_control_plane_role(namespace="jhub"),
                    hub_kube.make_control_plane_role_binding(
                        namespace="jhub", service_account_namespace="jhub")]
    for doc in docs:
        _validate(doc)


def test_role_grants_every_api_call_of_the_backends():
    """Read from the backends' source, so a new API call without its verb fails here."""
    verbs = {"create": "create", "read": "get", "delete": "delete", "list": "list"}
    resources = {"job": "jobs", "deployment": "deployments", "service": "services",
                 "horizontal_pod_autoscaler": "horizontalpodautoscalers", "pod": "pods",
                 "pod_log": "pods/log", "secret": "secrets", "event": "events"}
    granted = {(res, verb) for rule in hub_kube.CONTROL_PLANE_RULES
               for res in rule["resources"] for verb in rule["verbs"]}
    needed = set()
    # every module of the Kubernetes backends (called or passed as a function)
    for path in sorted((REPO / "jupyter_mlops" / "backends").glob("*kube*.py")):
        source = path.read_text()
        for verb, res in re.findall(r"\b(create|read|delete|list)_namespaced_(\w+)\b", source):
            needed.add((resources[res], verbs[verb]))
    assert len(needed) >= 10
    assert needed == granted  # nothing missing, nothing more


def test_secrets_must_come_from_the_pod_and_derived_settings_stay_derived(
        values, tmp_path, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    values["hub"]["extraEnv"] = [e for e in values["hub"]["extraEnv"]
                                 if e["name"] != "PGPASSWORD"]
    with pytest.raises(RuntimeError, match="lacks PGPASSWORD"):
        chart_config(values, data_dir=tmp_path, monkeypatch=monkeypatch)

    values = load_values()
    values["hub"]["config"]["KubeJobBackend"]["namespace"] = "elsewhere"
    with pytest.raises(RuntimeError, match="KubeJobBackend.namespace is derived"):
        chart_config(values, data_dir=tmp_path, monkeypatch=monkeypatch)

    values = load_values()
    values["hub"]["config"]["MlopsHub"]["dataset_store"]["s3_secret_access_key"] = "x"
    with pytest.raises(RuntimeError, match="keys come from a Secret"):
        chart_config(values, data_dir=tmp_path, monkeypatch=monkeypatch)
