"""The jobs routes of the control plane, through the real platform (hub, proxy, MLflow)."""
from __future__ import annotations

import pytest

from tests.fixtures import until

from .conftest import API, wait_job

SCRIPT = """
from jupyter_mlops.job_runtime import report
lr = 0.1
report("loss", lr * 2, step=0)
print("route job done")
"""


def test_submit_run_and_read_through_the_routes(platform, mlflow_access):
    alice = platform.token("alice")
    bob = platform.token("bob")
    ws = platform.data_dir / "users" / "alice"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "route_train.py").write_text(SCRIPT)
    # Given alice submits a script through the control plane
    r = platform.api("POST", f"{API}/jobs", alice, json={"path": "route_train.py",
                                                         "params": {"lr": 0.3}})
    assert r.status_code == 201, r.text
    job = r.json()
    # Then it runs in the control plane's runner and logs to MLflow with a minted token
    done = wait_job(platform, alice, job["id"])
    assert done["state"] == "succeeded", done["reason"]
    assert done["metrics"]["loss"] == 0.6 and done["run_id"]
    logs = platform.api("GET", f"{API}/jobs/{job['id']}/logs?offset=0", alice).json()
    assert "route job done" in logs["text"] and logs["complete"]
    listed = platform.api("GET", f"{API}/jobs", alice).json()
    assert job["id"] in [j["id"] for j in listed["jobs"]]
    # the run is alice's in MLflow (the token the job had was hers)
    run = platform.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id={done['run_id']}",
                       alice).json()["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags.get("mlops.user", tags.get("mlflow.user")) == "alice"
    # the job's token was revoked when it ended: alice holds no "mlops job" token any more
    tokens = platform.hub("GET", "users/alice/tokens").json()["api_tokens"]
    assert not [t for t in tokens if t["note"].startswith("mlops job")], tokens
    # When bob, a member of the same project, asks for alice's job, he reads it but may not
    # cancel or rerun it (it is hers; only a manager or an administrator could)
    assert platform.api("GET", f"{API}/jobs/{job['id']}", bob).status_code == 200
    assert platform.api("GET", f"{API}/jobs/{job['id']}/logs", bob).status_code == 200
    r = platform.api("POST", f"{API}/jobs/{job['id']}/cancel", bob)
    assert r.status_code == 403 and "belongs to alice" in r.json()["message"], r.text
    r = platform.api("POST", f"{API}/jobs/{job['id']}/rerun", bob, json={"exact": True})
    assert r.status_code == 403 and "only its owner" in r.json()["message"], r.text
    # rerun exactly answers a new job
    r = platform.api("POST", f"{API}/jobs/{job['id']}/rerun", alice, json={"exact": True})
    assert r.status_code == 201 and r.json()["snapshot_of"] == job["id"]
    assert wait_job(platform, alice, r.json()["id"])["state"] == "succeeded"


def test_bad_input_answers_400_with_the_reason(platform, mlflow_access):
    alice = platform.token("alice")
    ws = platform.data_dir / "users" / "alice"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "typed.py").write_text("epochs = 3\n")
    cases = [
        ({"path": "nope.ipynb"}, "no notebook 'nope.ipynb'"),
        ({"path": "typed.py", "params": {"epochs": "many"}}, "parameter epochs of typed.py is int"),
        ({"path": "typed.py", "gpus": 1}, "the platform has 0"),
        ({"path": "data.csv"}, "neither a notebook"),
        ({"path": "typed.py", "colour": "red"}, "unknown job field"),
        ({"path": "typed.py", "gpu_type": "A100"}, "gpu_type needs gpus"),
        ({"path": "typed.py", "gpus": 1, "gpu_type": "A100 x"}, "gpu_type is a GPU type"),
        ({"path": "typed.py", "gpus": 1, "gpu_type": "A100"}, "asks for 1 A100 GPUs; the "
                                                              "platform has 0"),
    ]
    for body, why in cases:
        r = platform.api("POST", f"{API}/jobs", alice, json=body)
        assert r.status_code == 400, (body, r.text)
        assert why in r.json()["message"], (why, r.json())
    r = platform.api("POST", f"{API}/sweeps", alice, json={
        "path": "typed.py", "metric": "m", "space": {"epochs": {"type": "int", "low": 5,
                                                                 "high": 1}}})
    assert r.status_code == 400 and "must be below" in r.json()["message"]
    r = platform.api("POST", f"{API}/pipelines", alice, json={"spec": "steps:\n- {name: a, run: typed.py, needs: [b]}\n"})
    assert r.status_code == 400 and "unknown step 'b'" in r.json()["message"]
    assert platform.api("GET", f"{API}/jobs/999999", alice).status_code == 404
    assert platform.api("GET", f"{API}/jobs", None or "not-a-token").status_code in (401, 403)


def test_magics_submit_and_sweep(platform, mlflow_access, monkeypatch, capsys):
    from IPython.core.error import UsageError

    from jupyter_mlops import magics
    from jupyter_mlops.magics import load_ipython_extension

    class Shell:
        def register_magics(self, m):
            self.registered = m

    load_ipython_extension(Shell())
    ws = platform.data_dir / "users" / "alice"
    (ws / "nb").mkdir(parents=True, exist_ok=True)
    (ws / "nb" / "magic_train.py").write_text(SCRIPT)
    (ws / "nb" / "space.yaml").write_text("lr: {type: float, low: 0.1, high: 0.9}\n")
    monkeypatch.setenv("JUPYTER_MLOPS_CONTROL_PLANE_URL", f"{platform.url}/services/mlops/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", platform.token("alice"))
    monkeypatch.setenv("HOME", str(ws))
    monkeypatch.chdir(ws / "nb")  # the kernel runs in the notebook's directory
    run = magics.SUBCOMMANDS["submit"].run
    job = run(["magic_train.py", "-p", "lr=0.25"], None)
    assert job["spec"]["path"] == "nb/magic_train.py" and job["spec"]["params"] == {"lr": 0.25}
    assert f"job {job['id']}" in capsys.readouterr().out
    alice = platform.token("alice")
    assert wait_job(platform, alice, job["id"])["metrics"]["loss"] == 0.5
    sweep = magics.SUBCOMMANDS["sweep"].run(
        ["magic_train.py", "--space", "space.yaml", "--metric", "loss", "--trials", "2",
         "--parallel", "2", "--pruner", "none"], None)
    assert sweep["n_trials"] == 2 and sweep["metric"] == "loss"
    with pytest.raises(UsageError, match="gpu_type needs gpus"):  # the magic sends its type
        run(["magic_train.py", "--gpu-type", "A100"], None)
    try:
        magics.SUBCOMMANDS["submit"].run(["nope.ipynb"], None)
    except UsageError as e:
        assert "no notebook 'nope/nb.ipynb'" in str(e) or "nope.ipynb" in str(e)
    else:
        raise AssertionError("an unknown notebook must be refused")
    s = until(lambda: (s := platform.api("GET", f"{API}/sweeps/{sweep['id']}", alice).json())
              ["state"] != "running" and s, 90, "the sweep's end")
    assert s["state"] == "succeeded" and len(s["trials"]) == 2


def test_job_submitted_from_the_lab_outlives_the_users_server(platform, mlflow_access):
    """Through the server extension (as the panel does); then the server stops, the job goes on."""
    token = platform.token("carol")
    ws = platform.data_dir / "users" / "carol"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "long.py").write_text("import time\nfor i in range(6):\n    print(i, flush=True)\n"
                                "    time.sleep(0.5)\nprint('outlived')\n")
    platform.start_server("carol", token=token)
    r = platform.api("POST", "user/carol/mlops/api/jobs", token, json={"path": "long.py"})
    assert r.status_code == 201, r.text
    job = r.json()
    bad = platform.api("POST", "user/carol/mlops/api/jobs", token, json={"path": "gone.py"})
    assert bad.status_code == 400 and "no script 'gone.py'" in bad.json()["message"]
    wait_job(platform, token, job["id"], states=("running",))
    r = platform.hub("DELETE", "users/carol/server")
    assert r.status_code in (202, 204), r.text
    until(lambda: not platform.hub("GET", "users/carol").json().get("servers"), 30,
          "carol's server to stop")
    done = wait_job(platform, token, job["id"])
    assert done["state"] == "succeeded", done["reason"]
    logs = platform.api("GET", f"{API}/jobs/{job['id']}/logs", token).json()
    assert "outlived" in logs["text"]


DATASET_JOB = """
import mlflow
from jupyter_mlops import datasets
from jupyter_mlops.client import ControlPlane
path = datasets.get("job-cells", version="gold")  # a named tag: only the catalog knows it
files = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
print("dataset files:", ",".join(files))
"""


def test_a_job_reads_the_catalog_as_its_user(platform, mlflow_access, tmp_path):
    from jupyter_mlops import datasets
    from jupyter_mlops.client import ControlPlane

    alice = platform.token("alice")
    client = ControlPlane(f"{platform.url}/services/mlops/", alice)
    for i, names in enumerate((["a.txt"], ["a.txt", "b.txt"])):
        folder = tmp_path / f"v{i + 1}"
        folder.mkdir()
        for n in names:
            (folder / n).write_text(f"{n} of v{i + 1}\n")
        datasets.publish(folder, "job-cells", f"version {i + 1}", client=client,
                         tags=["gold"] if i == 0 else ())
    ws = platform.data_dir / "users" / "alice"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "dataset_job.py").write_text(DATASET_JOB)
    # Given alice's job asks the catalog for the version tagged "gold" (v1, not the latest)
    job = platform.api("POST", f"{API}/jobs", alice, json={"path": "dataset_job.py"}).json()
    done = wait_job(platform, alice, job["id"], timeout=120)
    logs = platform.api("GET", f"{API}/jobs/{job['id']}/logs?offset=0", alice).json()["text"]
    # Then the job got v1 through the control plane with its own token of alice's
    assert done["state"] == "succeeded", logs[-2000:]
    assert "dataset files: a.txt\n" in logs, logs[-2000:]
    # and the version is the job's run's MLflow dataset input (lineage)
    run = platform.api("GET", f"services/mlflow/api/2.0/mlflow/runs/get?run_id={done['run_id']}",
                       alice).json()["run"]
    inputs = run.get("inputs", {}).get("dataset_inputs", [])
    assert any(d["dataset"]["name"].startswith("job-cells") for d in inputs), run.get("inputs")
