"""The MLflow gateway killed while a notebook-like client logs metrics: MLflow calls answer a
JSON 503 with the reason meanwhile, the hub starts the gateway again, the client's logging
resumes by itself and no metric is lost or doubled."""
from __future__ import annotations

import threading

from .conftest import HEAL_SECONDS, is_json_error, kill, restarted, until

STEPS = 40


def test_gateway_killed_while_a_client_logs(faulty, monkeypatch):
    from mlflow.tracking import MlflowClient

    p = faulty
    p.add_user("gus", "gus-password-1")
    token = p.token("gus")
    # a notebook's MLflow client: the user's token, the tracking URI the server gives it
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    client = MlflowClient(tracking_uri=f"{p.url}/services/mlflow")
    exp = client.create_experiment("gateway-fault", tags={"mlops.project": "default"})
    run_id = client.create_run(exp).info.run_id
    logged: list[int] = []
    failure: list[BaseException] = []

    def log_steps():
        try:
            for step in range(STEPS):
                client.log_metric(run_id, "acc", step / STEPS, step=step)
                logged.append(step)
                if step >= 5:
                    kill_done.wait(60)  # keep logging across the outage
        except BaseException as e:  # noqa: BLE001 (reported by the test below)
            failure.append(e)

    kill_done = threading.Event()
    logger = threading.Thread(target=log_steps, daemon=True)
    logger.start()
    until(lambda: len(logged) >= 5, 60, "the client logs")

    # When the gateway dies
    old = kill(p, "gateway")
    # Then an MLflow call answers a JSON 503 that says what is wrong (not an HTML page)
    r = p.api("GET", "services/mlflow/api/2.0/mlflow/experiments/search?max_results=5", token)
    kill_done.set()
    assert is_json_error(r, (503,)), (r.status_code, r.headers.get("Content-Type"),
                                      r.text[:300])
    assert "MLflow" in r.json()["message"]

    # And the hub starts it again; the client's logging resumes and completes
    until(lambda: restarted(p, "gateway", old), HEAL_SECONDS, "the gateway restarts")
    logger.join(HEAL_SECONDS)
    assert not logger.is_alive() and not failure, failure
    assert logged == list(range(STEPS))
    history = client.get_metric_history(run_id, "acc")
    assert sorted(m.step for m in history) == list(range(STEPS))
    client.set_terminated(run_id)
    assert client.get_run(run_id).info.status == "FINISHED"
