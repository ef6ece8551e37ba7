"""The server extension's status route, through a real Jupyter server (pytest-jupyter)."""
import json
import warnings

import pytest
from jupyter_server.utils import JupyterServerAuthWarning
from tornado.httpclient import HTTPClientError


@pytest.fixture(autouse=True)
def outside_the_hub(monkeypatch):
    """A server started by hand: none of what the spawner sets. Earlier tests in the same
    process point MLflow's client somewhere (mlflow.set_tracking_uri also sets
    $MLFLOW_TRACKING_URI), and the settings' defaults read the environment."""
    for name in ("JUPYTER_MLOPS_CONTROL_PLANE_URL", "MLFLOW_TRACKING_URI",
                 "JUPYTER_MLOPS_DATASETS"):
        monkeypatch.delenv(name, raising=False)


async def test_status_reports_unconfigured_components_as_unreachable(jp_fetch, monkeypatch):
    # Given a server started outside the hub (no control plane or MLflow configured), holding
    # no GPU by its allocation (the answer must not depend on the machine having one)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    # When the sidebar asks for the status
    r = await jp_fetch("mlops", "api", "status")
    # Then each check answers with its reason instead of failing the whole call
    body = json.loads(r.body)
    assert r.code == 200
    assert body["control_plane"]["reachable"] is False
    assert "not configured" in body["control_plane"]["error"]
    assert body["mlflow"]["reachable"] is False
    assert body["gpus"]["devices"] == []
    assert body["gpus"]["message"] == "no GPU on this server"


async def test_a_cpu_profile_holding_no_gpu_is_normal_not_a_fault(jp_fetch, monkeypatch):
    # Given a server the spawner started with a CPU profile: an allocation of no device
    monkeypatch.setenv("JUPYTER_MLOPS_PROFILE", "cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    # When the sidebar asks for the status
    gpus_answer = json.loads((await jp_fetch("mlops", "api", "status")).body)["gpus"]
    # Then it says none was asked for, naming the profile, instead of a missing GPU
    assert (gpus_answer["requested"], gpus_answer["profile"]) == (False, "cpu")
    assert gpus_answer["message"] == "CPU profile: no GPU requested"
    assert gpus_answer["devices"] == []


@pytest.mark.parametrize("cuda, nvidia, profile, requested", [
    ("0", "GPU-aaa", "gpu-1", True),  # the local spawner's GPU profile
    (None, "GPU-aaa", "gpu-1", True),  # a Kubernetes GPU pod: the device plugin names it
    (None, "all", "", True),  # a CUDA image's default: every device, so some were wanted
    ("", "void", "", False),  # an empty allocation announced
    (None, None, "cpu", False),  # a Kubernetes pod of a profile whose pod names no device
    (None, None, "", None),  # a server started by hand: nothing is known
])
def test_whether_gpus_were_requested_follows_what_the_spawner_announced(
        cuda, nvidia, profile, requested):
    from jupyter_mlops.server.handlers import gpus_requested

    assert gpus_requested(cuda, nvidia, profile) is requested


async def test_a_simulated_gpu_held_by_allocation_is_shown_without_utilisation(
        jp_fetch, jp_serverapp, monkeypatch):
    # Given a driver that sees no GPU, and a server the spawner gave simulated device 1
    _settings(jp_serverapp).gpu_devices = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "GPU-simulated-1")
    # When the sidebar asks for the status
    body = json.loads((await jp_fetch("mlops", "api", "status")).body)
    # Then the server holds that GPU, said plainly to have no utilisation data
    [gpu] = body["gpus"]["devices"]
    assert (gpu["index"], gpu["uuid"], gpu["utilization_pct"]) == (1, "GPU-simulated-1", None)
    assert body["gpus"]["message"] == "1 GPU(s)"
    assert "no utilisation data" in body["gpus"]["detail"]


async def test_a_real_gpu_held_by_allocation_is_read_from_the_inventory(
        jp_fetch, jp_serverapp, monkeypatch):
    # Given an inventory of two devices with utilisation, and a server holding the second
    _settings(jp_serverapp).gpu_devices = [
        {"name": "A100", "uuid": "GPU-aaa", "utilization_pct": 10, "memory_used_mb": 1},
        {"name": "A100", "uuid": "GPU-bbb", "utilization_pct": 73, "memory_used_mb": 900},
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "GPU-bbb")
    body = json.loads((await jp_fetch("mlops", "api", "status")).body)
    # Then only the held device is shown, with what the inventory measured
    [gpu] = body["gpus"]["devices"]
    assert (gpu["uuid"], gpu["name"], gpu["utilization_pct"]) == ("GPU-bbb", "A100", 73)
    assert body["gpus"]["detail"] == ""


async def test_status_requires_authentication(jp_fetch):
    with pytest.raises(HTTPClientError) as e:
        await jp_fetch("mlops", "api", "status", headers={"Authorization": ""})
    assert e.value.code == 403


async def test_status_against_a_real_platform(jp_fetch, jp_serverapp, platform):
    # Given the extension pointed at a running platform with a real hub token
    settings = _settings(jp_serverapp)
    settings.control_plane_url = f"{platform.url}/services/mlops/"
    settings.mlflow_url = f"{platform.url}/services/mlflow"
    settings.api_token = platform.admin_token()
    # When
    body = json.loads((await jp_fetch("mlops", "api", "status")).body)
    # Then both live checks pass with versions, and the hub's identity is used
    assert body["control_plane"]["reachable"] is True
    assert body["mlflow"]["reachable"] is True and body["mlflow"]["version"][0].isdigit()
    assert body["user"] == {"name": "admin", "role": "system administrator"}


async def test_a_rejected_token_is_reported_not_raised(jp_fetch, jp_serverapp, platform):
    settings = _settings(jp_serverapp)
    settings.control_plane_url = f"{platform.url}/services/mlops/"
    settings.api_token = "forged"
    body = json.loads((await jp_fetch("mlops", "api", "status")).body)
    assert body["control_plane"]["reachable"] is False
    assert "log in" in body["control_plane"]["error"]


def test_every_extension_handler_is_authenticated(jp_configurable_serverapp):
    # jupyter_server warns about any handler method lacking an auth decorator: none allowed.
    from jupyter_server.base.handlers import APIHandler

    class Unguarded(APIHandler):  # a canary: proves the check still fires
        def get(self):
            pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app = jp_configurable_serverapp()
        app.web_app.add_handlers(".*$", [("/canary", Unguarded)])
    lines = [line for w in caught if issubclass(w.category, JupyterServerAuthWarning)
             for line in str(w.message).splitlines()]
    assert any("/canary" in line for line in lines), "the check itself stopped working"
    ours = [line for line in lines if "/mlops/" in line]
    assert not ours, ours


def _settings(serverapp):
    from jupyter_mlops.server.handlers import StatusHandler

    for rules in serverapp.web_app.default_router.rules:
        for rule in getattr(rules.target, "rules", []):
            if rule.target is StatusHandler:
                return rule.target_kwargs["settings"]
    raise AssertionError("status route not registered")
