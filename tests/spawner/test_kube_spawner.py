"""MlopsKubeSpawner through kubespawner's real code path (reflectors included) on kube_fake."""
from __future__ import annotations

import time

import pytest
import pytest_asyncio
from tornado import web
from traitlets.config import Config

from jupyter_mlops_spawner.kube import MlopsKubeSpawner
from tests.kube_fake import KubeFake, use_kubeconfig
from tests.spawner.kube_helpers import make_spawner
from tests.spawner.test_profiles import check_profile_form_hooks

pytestmark = pytest.mark.asyncio(loop_scope="module")
PYTORCH = "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake(tmp_path_factory):
    # One A100 node with one GPU; the pytorch image "does not exist" unless a test says so.
    with KubeFake(node_gpus=1, node_labels={"nvidia.com/gpu.product": "A100"}) as f, \
            pytest.MonkeyPatch.context() as mp:
        use_kubeconfig(mp, f.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kc"))
        yield f
        await MlopsKubeSpawner._stop_all_reflectors()


async def test_start_running_stop(fake):
    sp = make_spawner("alice", profile="cpu")
    url = await sp.start()
    assert url == "http://127.0.0.1:8888"
    assert await sp.poll() is None
    pod = fake.get("pods", "default", sp.pod_name)
    nb = pod["spec"]["containers"][0]
    assert {"name": "datasets", "mountPath": "/mnt/datasets", "readOnly": True} in \
        nb["volumeMounts"]
    assert pod["spec"]["volumes"][-1] == {"name": "datasets", "persistentVolumeClaim": {
        "claimName": "jupyter-mlops-datasets", "readOnly": True}}
    assert pod["status"]["phase"] == "Running"
    assert [e["reason"] for e in sp.events][:2] == ["Scheduled", "Pulled"]
    await sp.stop()
    assert fake.get("pods", "default", sp.pod_name) is None
    assert await sp.poll() == 1
    # the watch really carried the changes: list once, then watch from its resourceVersion
    assert ("GET", "/api/v1/namespaces/default/pods") in fake.requests


async def test_no_gpu_free_fails_fast_with_the_scheduler_reason(fake):
    fake.bad_images.discard(PYTORCH)
    alice = make_spawner("alice", profile="gpu-1")
    await alice.start()
    bob = make_spawner("bob", profile="gpu-1")
    t0 = time.monotonic()
    with pytest.raises(web.HTTPError) as e:
        await bob.start()
    took = time.monotonic() - t0
    assert took < 10, f"took {took:.1f} s; start_timeout is {bob.start_timeout}"
    assert e.value.status_code == 409
    assert e.value.jupyterhub_message.startswith(
        "Cannot start One GPU: the cluster cannot schedule it: 0/1 nodes are available: "
        "1 Insufficient nvidia.com/gpu.")
    assert fake.get("pods", "default", bob.pod_name) is None  # no pending pod left behind
    await alice.stop()
    # The same server started again with the CPU profile: nothing of the GPU one lingers
    # (kubespawner merges a profile's dict values into the spawner's current ones)
    alice.user_options = {"profile": "cpu"}
    await alice.start()
    spec = fake.get("pods", "default", alice.pod_name)["spec"]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"].get("limits", {})
    assert "nvidia.com/gpu.product" not in spec.get("nodeSelector", {})
    assert spec["containers"][0]["image"] == "quay.io/jupyter/scipy-notebook:2025-01-06"
    await alice.stop()


async def test_node_selector_mismatch_and_image_pull_failure(fake):
    c = Config()
    c.MlopsKubeSpawner.profiles = [
        {"slug": "h100", "display_name": "H100", "gpus": 1, "gpu_type": "H100"},
        {"slug": "torch", "display_name": "Torch", "image": PYTORCH}]
    sp = make_spawner("carol", c, profile="h100")
    with pytest.raises(web.HTTPError, match="didn't match Pod's node affinity/selector"):
        await sp.start()
    fake.bad_images.add(PYTORCH)
    sp = make_spawner("carol", c, profile="torch")
    with pytest.raises(web.HTTPError) as e:
        await sp.start()
    assert "ErrImagePull" in e.value.jupyterhub_message and PYTORCH in e.value.jupyterhub_message
    fake.bad_images.discard(PYTORCH)


async def test_the_kube_spawner_offers_the_profile_form(fake):
    check_profile_form_hooks(make_spawner("alice"))


async def test_disallowed_profile_refused_before_any_pod(fake):
    sp = make_spawner("dave", profile="big")
    before = len(fake.requests)
    with pytest.raises(web.HTTPError) as e:
        await sp.start()
    assert e.value.status_code == 403
    assert "profile 'big' is not available to dave" in e.value.jupyterhub_message
    assert not [r for r in fake.requests[before:] if r[0] == "POST"]
    form = await sp.mlops_options_form()
    assert 'value="cpu"' in form and 'value="big"' not in form
    member = make_spawner("erin", groups=["deep-learning"], profile="big")
    assert 'value="big"' in await member.mlops_options_form()


async def test_user_namespace_policy_quota_and_cluster_refusal(fake):
    c = Config()
    c.MlopsKubeSpawner.enable_user_namespaces = True
    c.MlopsKubeSpawner.user_namespace_template = "jupyter-{username}"
    c.MlopsKubeSpawner.hub_namespace = "jhub"
    c.MlopsKubeSpawner.dataset_nfs = {"server": "nfs.lab", "path": "/cells", "capacity": "1Ti"}
    sp = make_spawner("frank", c, profile="cpu")
    await sp.start()
    ns = "jupyter-frank"
    assert fake.get("namespaces", None, ns)
    pol = fake.get("networkpolicies", ns, "jupyter-mlops-isolation")
    assert pol["spec"]["ingress"][1]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "jhub"}}
    quota = fake.get("resourcequotas", ns, "jupyter-mlops-gpus")
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "1"}  # largest allowed profile
    pvc = fake.get("persistentvolumeclaims", ns, "jupyter-mlops-datasets")
    assert pvc["spec"]["volumeName"] == "jupyter-mlops-datasets-jupyter-frank"
    assert fake.get("persistentvolumes", None, "jupyter-mlops-datasets-jupyter-frank")[
        "spec"]["nfs"] == {"server": "nfs.lab", "path": "/cells", "readOnly": True}
    await sp.stop()
    # an administrator's own cap in the namespace: the API refuses the pod; we say why
    fake.create("resourcequotas", ns, {"metadata": {"name": "admin-cap"},
                                       "spec": {"hard": {"requests.nvidia.com/gpu": "0"}}})
    sp = make_spawner("frank", c, profile="gpu-1")
    with pytest.raises(web.HTTPError) as e:
        await sp.start()
    assert e.value.status_code == 403, e.value.jupyterhub_message
    assert "exceeded quota: admin-cap" in e.value.jupyterhub_message

