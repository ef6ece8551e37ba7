"""The Kubernetes backend: the batch/v1 Job builder (strict schema validation) and a job's life
cycle through the runner against the Kubernetes API stand-in (tests/kube_fake.py). No pod runs
here: the test plays the pod's part by writing the job directory as the wrapper would."""
from __future__ import annotations

import asyncio
import json

import kubernetes_validate
import pytest

from jupyter_mlops.backends.jobs_kube import KubeJobBackend, make_job
from tests.kube_fake import kube_fake  # noqa: F401 (a fixture)

from .conftest import Lab, caller

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


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
