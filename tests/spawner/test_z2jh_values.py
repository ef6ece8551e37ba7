"""hub_config/z2jh-values.yaml: the spawner it configures builds valid pods for every profile."""
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from jupyter_mlops_spawner import objects
from jupyter_mlops_spawner.profiles import Profile
from tests.kube_fake import use_kubeconfig, write_kubeconfig
from tests.spawner.kube_helpers import StubUser
from tests.z2jh_chart import chart_config

HUB_CONFIG = Path(__file__).resolve().parents[2] / "hub_config"
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


@pytest.fixture
def values():
    return yaml.safe_load((HUB_CONFIG / "z2jh-values.yaml").read_text())


def test_dataset_volume_file_matches_builders():
    docs = list(yaml.safe_load_all((HUB_CONFIG / "k8s-dataset-volume.yaml").read_text()))
    assert docs == [
        objects.make_dataset_pv(name="jupyter-mlops-datasets", nfs_server="nfs.lab.example",
                                nfs_path="/exports/cells", capacity="500Gi"),
        objects.make_dataset_pvc(name="jupyter-mlops-datasets", namespace="jhub",
                                 capacity="500Gi", volume_name="jupyter-mlops-datasets"),
    ]
    for doc in docs:
        for v in VERSIONS:
            kubernetes_validate.validate(doc, v, strict=True)


@pytest.mark.asyncio
async def test_values_build_valid_pods_for_every_profile(values, tmp_path, monkeypatch):
    use_kubeconfig(monkeypatch, write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9"))
    hub_config = values["hub"]["config"]
    cls = import_item(hub_config["JupyterHub"]["spawner_class"])
    # the spawner's settings as the chart's config leaves them (URLs derived by extraConfig)
    chart = chart_config(values, data_dir=tmp_path / "mlops", monkeypatch=monkeypatch)
    spawner_cfg = dict(chart.MlopsKubeSpawner)
    # no control plane in this test: the spawner's GPU accounting is left out
    assert spawner_cfg.pop("gpu_api_url").endswith("/services/mlops/")
    assert spawner_cfg.pop("gpu_api_token")
    assert spawner_cfg["control_plane_url"] == "http://proxy-public/services/mlops/"
    profiles = [Profile.from_dict(p) for p in spawner_cfg["profiles"]]
    assert [p.slug for p in profiles] == ["cpu", "gpu-1", "a100-2"]
    # What Zero-to-JupyterHub derives from singleuser.* (image, static home storage: each
    # user's directory on the shared workspaces claim)
    su = values["singleuser"]
    c = Config({"MlopsKubeSpawner": spawner_cfg})
    c.KubeSpawner.image = f"{su['image']['name']}:{su['image']['tag']}"
    assert su["storage"]["type"] == "static"
    c.KubeSpawner.volumes = [{"name": "home", "persistentVolumeClaim": {
        "claimName": su["storage"]["static"]["pvcName"]}}]
    c.KubeSpawner.volume_mounts = [{"name": "home", "mountPath": su["storage"]["homeMountPath"],
                                    "subPath": su["storage"]["static"]["subPath"]}]
    from jupyterhub.objects import Hub

    for p in profiles:
        sp = cls(hub=Hub(), user=StubUser("alice", groups=["deep-learning"]), config=c,
                 api_token="t", oauth_client_id="jupyterhub-user-alice", _mock=True)
        sp.user_options = {"profile": p.slug}
        await sp.load_user_options()
        async with ApiClient() as api:
            pod = api.sanitize_for_serialization(await sp.get_pod_manifest())
        for v in VERSIONS:
            kubernetes_validate.validate(pod, v, strict=True)
        nb = pod["spec"]["containers"][0]
        assert {"name": "datasets", "mountPath": "/mnt/datasets", "readOnly": True} in \
            nb["volumeMounts"]
        assert {"name": "home", "mountPath": "/home/jovyan", "subPath": "alice"} in \
            nb["volumeMounts"]
        assert nb["resources"].get("limits", {}).get("nvidia.com/gpu") == \
            (str(p.gpus) if p.gpus else None)
        assert nb["image"] == (p.image or c.KubeSpawner.image)
        env = {e["name"]: e.get("value") for e in nb["env"]}
        assert env["JUPYTER_MLOPS_CONTROL_PLANE_URL"] == spawner_cfg["control_plane_url"]
        assert env["MLFLOW_TRACKING_URI"] == spawner_cfg["mlflow_url"]
        assert env["MLFLOW_TRACKING_TOKEN"] == "t"
    # the deep-learning profile is not offered to others
    sp = cls(hub=Hub(), user=StubUser("bob"), config=c, api_token="t",
             oauth_client_id="jupyterhub-user-bob", _mock=True)
    assert [p.slug for p in sp.allowed_profiles()] == ["cpu", "gpu-1"]


def test_https_ends_at_the_ingress_and_in_cluster_urls_stay_reachable(values):
    # TLS offloaded to an Ingress with the site's certificate; the proxy itself stays plain
    # HTTP inside the cluster (the chart's other HTTPS types redirect its plain port to 443,
    # which the in-cluster http://proxy-public URLs of servers and jobs could not follow).
    assert values["proxy"]["https"] == {"enabled": True, "type": "offload"}
    assert values["proxy"]["service"]["type"] == "ClusterIP"
    ingress = values["ingress"]
    assert ingress["enabled"] and ingress["tls"][0]["secretName"] == "jupyter-mlops-tls"
    public = values["hub"]["config"]["MlopsHub"]["public_url"]
    assert public.startswith("https://")
    host = public.split("://")[1].split("/")[0]
    assert host in ingress["hosts"] and ingress["hosts"] == ingress["tls"][0]["hosts"]
