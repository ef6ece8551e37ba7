"""MLflow killed while a training job logs to it: the job waits for it and finishes with its one
run complete (no metric lost or doubled); meanwhile MLflow calls answer a JSON 503 with the
reason and the sidebar says MLflow is unreachable; the hub starts MLflow again by itself."""
from __future__ import annotations

import re

from .conftest import API, HEAL_SECONDS, is_json_error, kill, until

# Logs a metric every step until the test lets it finish (after MLflow is back).
LOGGING_JOB = """
import os, time
from jupyter_mlops.job_runtime import progress, report
step = 0
while not os.path.exists("mlflow_fault_go"):
    report("loss", 1.0 / (step + 1), step=step)
    progress(step + 1, 0, f"step {step + 1}")
    step += 1
    time.sleep(0.3)
print("finished after", step, "steps", flush=True)
"""
MLFLOW_API = "services/mlflow/api/2.0/mlflow"


def sidebar_status(platform, token):
    r = platform.api("GET", "/user/ada/mlops/api/status", token)
    assert r.status_code == 200, r.text
    return r.json()


def test_mlflow_killed_while_a_job_logs(faulty):
    p = faulty
    p.add_user("ada", "ada-password-1")
    token = p.token("ada")
    ws = p.data_dir / "users" / "ada"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "mlflow_fault_go").unlink(missing_ok=True)
    (ws / "mlflow_fault_train.py").write_text(LOGGING_JOB)
    r = p.api("POST", f"{API}/jobs", token, json={"path": "mlflow_fault_train.py",
                                                  "experiment": "mlflow-fault"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    p.start_server("ada")  # her lab's sidebar, while the job starts
    assert sidebar_status(p, token)["mlflow"]["reachable"] is True

    def job():
        return p.api("GET", f"{API}/jobs/{job_id}", token).json()

    # When MLflow dies while the job logs
    until(lambda: job()["progress"].get("done", 0) >= 3, 90, "the job logs")
    kill(p, "mlflow")

    # Then a call to MLflow answers a JSON 503 with the reason, the sidebar says so, and the
    # rest of the platform works
    r = p.api("GET", f"{MLFLOW_API}/experiments/search?max_results=5", token)
    assert is_json_error(r, (503,)), (r.status_code, r.text[:300])
    status = sidebar_status(p, token)
    assert status["mlflow"]["reachable"] is False
    assert "tracking server" in status["mlflow"]["error"]
    assert status["control_plane"]["reachable"] is True
    assert job()["state"] == "running"

    # And the hub starts MLflow again without anyone acting; the job's logging resumes
    until(lambda: sidebar_status(p, token)["mlflow"]["reachable"], HEAL_SECONDS,
          "MLflow answers again")
    seen = job()["progress"]["done"]
    # (its MLflow client may be in a pause of its retries: up to about a minute)
    until(lambda: job()["progress"]["done"] > seen + 2, HEAL_SECONDS, "the job logs again")
    (ws / "mlflow_fault_go").write_text("")
    done = until(lambda: (j := job())["state"] not in ("queued", "running") and j, 90,
                 "the job ends")
    assert done["state"] == "succeeded", done["reason"]

    # One run for the job, complete, with every step logged once
    r = p.api("POST", f"{MLFLOW_API}/runs/search", token, json={
        "experiment_ids": [done["experiment_id"]],
        "filter": f"tags.`mlops.job_id` = '{job_id}'"})
    runs = r.json().get("runs", [])
    assert [x["info"]["run_id"] for x in runs] == [done["run_id"]], r.text
    assert runs[0]["info"]["status"] == "FINISHED"
    log = p.api("GET", f"{API}/jobs/{job_id}/logs?offset=0", token).json()["text"]
    steps = int(re.search(r"finished after (\d+) steps", log).group(1))
    history = p.api("GET", f"{MLFLOW_API}/metrics/get-history?run_id={done['run_id']}"
                    "&metric_key=loss&max_results=10000", token).json()["metrics"]
    assert sorted(m["step"] for m in history) == list(range(steps))
