"""The Kubernetes backend: the batch/v1 Job builder (strict schema validation) and a job's life
cycle through the runner against the Kubernetes API stand-in (tests/kube_fake.py), with its
scheduler and Job controller on a cluster whose GPU node is tainted. No container runs here:
the test plays the pod's part by writing the job directory as the wrapper would."""
from __future__ import annotations

import asyncio
import json

import kubernetes_validate
import pytest

from jupyter_mlops.backends.jobs_kube import KubeJobBackend, make_job
from jupyter_mlops.core.errors import InvalidInput
from jupyter_mlops.core.gpus import StaticInventory
from tests.fixtures import until_async
from tests.kube_fake import KubeFake, kube_fake, use_kubeconfig  # noqa: F401 (a fixture)
from tests.kube_fake_cluster import GPU_TAINT, make_node

from .conftest import Lab, caller

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
A100 = "NVIDIA-A100-SXM4-40GB"


def test_make_job_is_a_valid_batch_v1_job():
    job = make_job(job_id=7, user="alice@lab", namespace="mlops", image="lab:1",
                   job_dir="/srv/jobs/7", cwd="/srv/users/alice", gpus=2,
                   env={"MLFLOW_TRACKING_URI": "http://mlflow", "USER": "alice"},
                   workspace_claim="workspaces", workspace_path="/srv/users",
                   jobs_claim="jobs", jobs_path="/srv/jobs", grace_seconds=15)
    for v in VERSIONS:
        kubernetes_validate.validate(job, v, strict=True)
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert job["metadata"]["name"] == "mlops-job-7" and job["spec"]["backoffLimit"] == 0
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert c["command"][-1] == "/srv/jobs/7" and "job_wrapper" in c["command"][2]
    # only the user's own workspace and the job's own directory, not the whole claims
    assert c["volumeMounts"] == [
        {"name": "workspace", "mountPath": "/srv/users/alice@lab", "subPath": "alice@lab"},
        {"name": "job", "mountPath": "/srv/jobs/7", "subPath": "7"}]
    assert pod["volumes"] == [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "workspaces"}},
        {"name": "job", "persistentVolumeClaim": {"claimName": "jobs"}}]
    assert pod["terminationGracePeriodSeconds"] == 15 and pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert job["metadata"]["labels"]["mlops.jupyter.org/user"] == "alice-lab"
    assert {"name": "USER", "value": "alice"} in c["env"]
    cpu = make_job(job_id=8, user="bob", namespace="mlops", image="lab:1", job_dir="/j/8",
                   cwd="/w", env={})
    assert "nvidia.com/gpu" not in cpu["spec"]["template"]["spec"]["containers"][0][
        "resources"]["limits"]
    kubernetes_validate.validate(cpu, VERSIONS[-1], strict=True)


def test_a_jobs_pinned_dataset_version_is_mounted_read_only_or_downloaded(tmp_path):
    # Given the control plane placed cells v2 on the dataset claim, and not v3 (another
    # project's version, or not placed yet)
    (tmp_path / "cells" / "v2").mkdir(parents=True)
    (tmp_path / "cells" / "v2" / ".mlops-version.json").write_text("{}")
    backend = KubeJobBackend(datasets_claim="jupyter-mlops-datasets",
                             datasets_root=str(tmp_path))
    assert backend.mountable_version("cells@v2") == "cells@v2"
    # a version not on the claim, a tag, or no claim configured: the job downloads it
    assert backend.mountable_version("cells@v3") == ""
    assert backend.mountable_version("cells@gold") == ""
    assert KubeJobBackend().mountable_version("cells@v2") == ""
    job = make_job(job_id=11, user="alice", namespace="mlops", image="lab:1", job_dir="/j/11",
                   cwd="/w", env={"JUPYTER_MLOPS_DATASETS": "/srv/datasets", "USER": "alice"},
                   datasets_claim="jupyter-mlops-datasets", datasets_path="/mnt/datasets",
                   dataset_version=backend.mountable_version("cells@v2"))
    for v in VERSIONS:
        kubernetes_validate.validate(job, v, strict=True)
    pod = job["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["volumes"] == [{"name": "dataset", "persistentVolumeClaim": {
        "claimName": "jupyter-mlops-datasets", "readOnly": True}}]
    assert c["volumeMounts"] == [{"name": "dataset", "mountPath": "/mnt/datasets/cells/v2",
                                  "subPath": "cells/v2", "readOnly": True}]
    # datasets.get looks there first
    # (and, asking for no GPU, it sees none of its node's, whatever its image sets)
    assert c["env"] == [{"name": "JUPYTER_MLOPS_DATASETS", "value": "/mnt/datasets"},
                        {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"},
                        {"name": "USER", "value": "alice"}]
    plain = make_job(job_id=12, user="alice", namespace="mlops", image="lab:1", job_dir="/j/12",
                     cwd="/w", env={}, datasets_claim="jupyter-mlops-datasets",
                     datasets_path="/mnt/datasets",
                     dataset_version=backend.mountable_version("cells@v3"))
    assert plain["spec"]["template"]["spec"]["volumes"] == []


@pytest.mark.asyncio
async def test_job_lifecycle_against_the_kube_fake(tmp_path, kube_fake):  # noqa: F811
    lab = Lab(tmp_path, 2, "", {})
    lab.backend = KubeJobBackend(namespace="default")
    lab.runner.backend = lab.backend
    lab.runner.start()
    try:
        lab.write("alice", "train.py", "print('hi')\n")
        job = lab.jobs.submit(caller("alice"), {"path": "train.py", "gpus": 1})
        running = await lab.wait(job.id, states=("running",))
        k8s = kube_fake.get("jobs", "default", f"mlops-job-{job.id}")
        assert k8s is not None
        c = k8s["spec"]["template"]["spec"]["containers"][0]
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert running.handle == {"backend": "kubernetes", "namespace": "default",
                                  "job": f"mlops-job-{job.id}", "token_id": ""}
        # the "pod" reports progress and finishes, as the wrapper would
        d = lab.jobs.job_dir(job.id)
        (d / "progress.json").write_text(json.dumps({"done": 1, "total": 2, "label": "half"}))
        await asyncio.sleep(0.5)
        assert lab.jobs.store.get(job.id).progress["label"] == "half"
        (d / "exit.json").write_text(json.dumps({"status": "succeeded", "returncode": 0,
                                                 "error": "", "metrics": {"map": 0.8}}))
        kube_fake.set_status("jobs", "default", f"mlops-job-{job.id}", {"succeeded": 1})
        done = await lab.wait(job.id)
        assert done.state == "succeeded" and done.metrics == {"map": 0.8}
        assert lab.allocator.holders() == []
        # a pod that fails without an outcome, and a cancel that deletes the Job
        failing = lab.jobs.submit(caller("alice"), {"path": "train.py"})
        await lab.wait(failing.id, states=("running",))
        kube_fake.set_status("jobs", "default", f"mlops-job-{failing.id}", {
            "failed": 1, "conditions": [{"type": "Failed", "status": "True",
                                         "reason": "BackoffLimitExceeded",
                                         "message": "Job has reached the specified backoff limit"}]})
        failed = await lab.wait(failing.id)
        assert failed.state == "failed" and "backoff limit" in failed.reason
        victim = lab.jobs.submit(caller("alice"), {"path": "train.py"})
        await lab.wait(victim.id, states=("running",))
        lab.jobs.cancel(caller("alice"), victim.id)
        assert (await lab.wait(victim.id)).state == "cancelled"
        assert kube_fake.get("jobs", "default", f"mlops-job-{victim.id}") is None
    finally:
        await lab.runner.stop()
        await lab.backend.close()


def test_a_gpu_job_is_placed_as_user_pods_are():
    job = make_job(job_id=9, user="alice", namespace="mlops", image="lab:1", job_dir="/j/9",
                   cwd="/w", env={}, gpus=1, gpu_resource="nvidia.com/mig-3g.20gb",
                   shm_size="8Gi", placement=KubeJobBackend(runtime_class="nvidia")
                   .pod_placement(1, A100))
    pod = job["spec"]["template"]["spec"]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": A100}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["volumes"] == [{"name": "dshm", "emptyDir": {"medium": "Memory",
                                                            "sizeLimit": "8Gi"}}]
    c = pod["containers"][0]
    assert c["volumeMounts"] == [{"name": "dshm", "mountPath": "/dev/shm"}]
    assert c["resources"]["limits"] == {"memory": "8Gi", "nvidia.com/mig-3g.20gb": "1"}
    for v in VERSIONS:
        kubernetes_validate.validate(job, v, strict=True)
    # without GPUs: no GPU taint toleration, no GPU type
    cpu = make_job(job_id=10, user="bob", namespace="mlops", image="lab:1", job_dir="/j/10",
                   cwd="/w", env={})["spec"]["template"]["spec"]
    assert cpu["tolerations"] == [] and cpu["nodeSelector"] == {}


@pytest.mark.asyncio
async def test_gpu_jobs_run_on_the_tainted_gpu_node_or_say_why_they_cannot(tmp_path,
                                                                         monkeypatch):
    # The accounting pool says 2 A100s, the cluster has one GPU node left with 1 GPU (the
    # other is down): the platform starts a second job the cluster cannot place.
    nodes = [make_node("cpu-1"), make_node("gpu-1", gpus=1, taints=[GPU_TAINT],
                                           labels={"nvidia.com/gpu.product": A100})]
    with KubeFake(nodes=nodes, controllers=True) as fake:
        use_kubeconfig(monkeypatch, fake.write_kubeconfig(tmp_path / "kubeconfig"))
        lab = Lab(tmp_path, 2, "", {})
        lab.allocator.inventory = StaticInventory([{"name": A100}] * 2)
        lab.backend = lab.runner.backend = KubeJobBackend(namespace="default",
                                                          pending_timeout=3)
        lab.runner.start()
        pod_of = lambda job_id: next((p for p in fake.list("pods", "default")  # noqa: E731
                                      if p["metadata"]["labels"].get("job-name")
                                      == f"mlops-job-{job_id}"), None)
        try:
            lab.write("alice", "train.py", "print('hi')\n")
            with pytest.raises(InvalidInput, match="gpu_type needs gpus"):
                lab.jobs.submit(caller("alice"), {"path": "train.py", "gpu_type": "A100"})
            with pytest.raises(InvalidInput, match="gpu_type is a GPU type"):
                lab.jobs.submit(caller("alice"), {"path": "train.py", "gpus": 1,
                                                  "gpu_type": "A100; rm"})
            with pytest.raises(InvalidInput, match="asks for 1 H100 GPUs; the platform has 0"):
                lab.jobs.submit(caller("alice"), {"path": "train.py", "gpus": 1,
                                                  "gpu_type": "H100"})
            first = lab.jobs.submit(caller("alice"), {"path": "train.py", "gpus": 1,
                                                      "gpu_type": A100})
            # the Job controller's pod goes to the tainted GPU node, which it tolerates
            pod = await until_async(lambda: (p := pod_of(first.id)) and p["status"][
                "phase"] == "Running" and p, 20, "the first job's pod running")
            assert pod["spec"]["nodeName"] == "gpu-1"
            assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": A100}
            assert fake.get("jobs", "default", f"mlops-job-{first.id}")["status"][
                "active"] == 1
            await until_async(lambda: lab.jobs.store.get(first.id).reason == "", 10,
                              "no reason once the pod runs")

            second = lab.jobs.submit(caller("alice"), {"path": "train.py", "gpus": 1})
            waiting = await until_async(
                lambda: "cannot be scheduled" in (j := lab.jobs.store.get(second.id)).reason
                and j, 20, "the second job's reason")
            assert waiting.state == "running"
            name = pod_of(second.id)["metadata"]["name"]
            # the GPU node is full, the CPU node has none (its taint is tolerated: not named)
            why = (f"pod {name} cannot be scheduled: 0/2 nodes are available: 2 Insufficient "
                   "nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption "
                   "victims found for incoming pod.")
            assert waiting.reason == why
            failed = await lab.wait(second.id, timeout=20)
            assert (failed.state, failed.reason) == ("failed",
                                                     f"not started within 3 s: {why}")
            assert fake.get("jobs", "default", f"mlops-job-{second.id}") is None
            assert [h.owner for h in lab.allocator.holders()] == [str(first.id)]

            # the first job's pod ends: the Job controller marks the Job, the runner the job
            d = lab.jobs.job_dir(first.id)
            (d / "exit.json").write_text(json.dumps({"status": "succeeded", "returncode": 0,
                                                     "error": "", "metrics": {}}))
            fake.set_status("pods", "default", pod["metadata"]["name"], {"phase": "Succeeded"})
            assert (await lab.wait(first.id, timeout=20)).state == "succeeded"
            assert fake.get("jobs", "default", f"mlops-job-{first.id}")["status"][
                "succeeded"] == 1
        finally:
            await lab.runner.stop()
            await lab.backend.close()
