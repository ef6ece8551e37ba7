"""The pod-template parts training Jobs and model-server Deployments share: literal dicts, and a
pod made of them is valid for the cluster (strict schema, no cluster needed)."""
import kubernetes_validate

from jupyter_mlops.backends.kube_pods import (claim_volume, container_resources,
                                              container_security_context, env_vars, pod_spec)

VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def test_a_pod_built_from_the_shared_parts():
    volume, mount = claim_volume(name="jobs", claim="mlops-jobs", mount_path="/srv/jobs")
    container = {
        "name": "work",
        "image": "lab:1",
        "env": env_vars({"B": 2, "A": "x"}, secrets={"TOKEN": ("reader", "token")}),
        "resources": container_resources(cpu_request="1", memory_request="2Gi",
                                         memory_limit="8Gi", cpu_limit="4", gpus=2),
        "securityContext": container_security_context(read_only_root=True),
        "volumeMounts": [mount],
    }
    spec = pod_spec(containers=[container], volumes=[volume], grace_seconds=15.0,
                    service_account="trainer", restartPolicy="Never")
    assert spec == {
        "automountServiceAccountToken": False,
        "restartPolicy": "Never",
        "containers": [{
            "name": "work",
            "image": "lab:1",
            # in the order given, values as strings, secrets last and by reference only
            "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "x"},
                    {"name": "TOKEN",
                     "valueFrom": {"secretKeyRef": {"name": "reader", "key": "token"}}}],
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                          "limits": {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "2"}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "jobs", "mountPath": "/srv/jobs"}],
        }],
        "volumes": [{"name": "jobs", "persistentVolumeClaim": {"claimName": "mlops-jobs"}}],
        "terminationGracePeriodSeconds": 15,
        "serviceAccountName": "trainer",
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    for v in VERSIONS:
        kubernetes_validate.validate(pod, v, strict=True)


def test_the_defaults_leave_out_what_was_not_asked_for():
    # Jobs give no CPU limit and most pods no GPUs: nothing is added for them.
    assert container_resources(cpu_request="500m", memory_request="1Gi",
                               memory_limit="4Gi") == {
        "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
    assert container_security_context() == {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
    assert env_vars({}) == []
    # No ServiceAccount named: none in the spec, and still no token mounted.
    assert pod_spec(containers=[], volumes=[], grace_seconds=40) == {
        "automountServiceAccountToken": False, "containers": [], "volumes": [],
        "terminationGracePeriodSeconds": 40}
