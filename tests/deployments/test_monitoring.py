"""Monitoring on the real platform: traffic through a real endpoint shows up exactly in the
deployment's series (per version, across a switch and a rollback), recorded inputs that drift
from the training data notify the owner and the project's manager, the Prometheus export parses
and refuses anonymous and non-admin callers, and administrators read the platform's health.

Project "vigil": mo-pm manages it, mo-ds deploys in it, mo-peer is a member, mo-out is not.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ..fixtures import until
from .conftest import API, FEATURES, deploy_ready, project_with_people, tracking_as, \
    training_data
from .test_endpoints import invoke, split_body

PASSWORD = "vigil-pass-1"
PROJECT, NAME, MODEL = "vigil", "vigil-lr", "lr-ref"
METRICS = "services/mlops/api/metrics"
REPO = Path(__file__).resolve().parents[2]


def register_with_reference(tracking_uri: str, token: str) -> None:
    """``lr-ref`` versions 1 and 2, each run logging its training data as the reference."""
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from jupyter_mlops.tracking import log_monitoring_reference

    with tracking_as(tracking_uri, token) as client:
        if client.search_registered_models(f"name = '{MODEL}'"):
            return
        x, y = training_data()
        mlflow.set_experiment("monitoring-tests")
        for labels in (y, 1 - y):
            with mlflow.start_run():
                mlflow.sklearn.log_model(LogisticRegression().fit(x, labels), name="model",
                                         registered_model_name=MODEL,
                                         serialization_format="cloudpickle",
                                         pip_requirements=["mlflow", "scikit-learn"])
                log_monitoring_reference(x)


@pytest.fixture(scope="module")
def vigil(platform):
    tokens = project_with_people(platform, PROJECT, PASSWORD, "mo-pm", ("mo-ds", "mo-peer"),
                                 ("mo-out",))
    register_with_reference(f"{platform.url}/services/mlflow", platform.admin_token())
    deploy_ready(platform, tokens["mo-ds"], NAME, MODEL, 1, project=PROJECT)
    return tokens


def rows(n, seed, shift=0.0):
    x, _ = training_data(n, seed)
    x["f0"] += shift
    return x


def timed_calls(platform, token, bodies):
    took = []
    for body in bodies:
        t0 = time.perf_counter()
        r = invoke(platform, token, NAME, body)
        took.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return took


def switch_to(platform, token, version):
    r = platform.api("PATCH", f"{API}/{NAME}", token, json={"version": version})
    assert r.status_code == 200, r.text
    until(lambda: platform.api("GET", f"{API}/{NAME}", token).json()["serving_version"]
          == str(version), 120, f"{NAME} serving version {version}")


def test_traffic_counts_exactly_per_version_across_a_rollback(platform, vigil):
    ds = vigil["mo-ds"]
    took = timed_calls(platform, ds, [split_body(rows(i % 4 + 1, i)) for i in range(12)])
    for _ in range(3):  # malformed: answered 400 by the model server, no rows read
        r = invoke(platform, ds, NAME, data=b'{"dataframe_split": [1,',
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
    switch_to(platform, ds, 2)
    took2 = timed_calls(platform, ds, [split_body(rows(2, 100 + i)) for i in range(5)])
    switch_to(platform, ds, 1)  # the rollback
    took += timed_calls(platform, ds, [split_body(rows(1, 200 + i)) for i in range(2)])

    r = platform.api("GET", f"{API}/{NAME}/metrics?window=1h", vigil["mo-peer"])
    assert r.status_code == 200, r.text
    m = r.json()
    by_version = {v["version"]: v["total"] for v in m["versions"]}
    v1, v2 = by_version["1"], by_version["2"]
    assert (v1["requests"], v1["errors_4xx"], v1["errors_5xx"]) == (17, 3, 0)
    assert (v2["requests"], v2["errors_4xx"], v2["errors_5xx"]) == (5, 0, 0)
    assert m["total"]["requests"] == 22
    # rows per call: 12 calls of 1-4 rows, then 2 of 1 (the malformed ones had none)
    assert v1["batch_max"] == 4 and v1["batch_mean"] == round((3 * 10 + 2) / 14, 2)
    assert v2["batch_mean"] == 2.0
    # The control plane times the model server's part of each call: within what we measured.
    for total, client in ((v1, took), (v2, took2)):
        assert 0 < total["min_ms"] <= min(client)
        assert total["min_ms"] <= total["p50_ms"] <= total["p95_ms"] <= total["p99_ms"] \
            <= total["max_ms"] <= max(client)
    assert sum(p["requests"] for v in m["versions"] for p in v["points"]) == 22
    kinds = [(e["kind"], e["version"]) for e in m["events"]]
    assert kinds[-2:] == [("switch", "2"), ("rollback", "1")], kinds
    # Same access as the deployment: outside the project it does not exist.
    assert platform.api("GET", f"{API}/{NAME}/metrics", vigil["mo-out"]).status_code == 404
    r = platform.api("GET", f"{API}/{NAME}/metrics?window=1y", ds)
    assert r.status_code == 400 and "window" in r.json()["message"], r.text


def test_drifted_inputs_notify_the_owner_and_the_manager(platform, vigil):
    ds, peer, pm = vigil["mo-ds"], vigil["mo-peer"], vigil["mo-pm"]
    url = f"{API}/{NAME}/monitoring"
    assert platform.api("GET", url, ds).json()["record_inputs"] is False  # opt-in
    on = {"record_inputs": True, "sample_rate": 1.0, "drift_threshold": 0.25}
    r = platform.api("PUT", url, peer, json=on)  # a member, not the owner: valid but refused
    assert r.status_code == 403, r.text
    assert platform.api("PUT", url, vigil["mo-out"], json=on).status_code == 404
    r = platform.api("PUT", url, ds, json={"sample_rate": 2})
    assert r.status_code == 400, r.text
    r = platform.api("PUT", url, ds, json=on)
    assert r.status_code == 200 and r.json()["record_inputs"] is True, r.text

    timed_calls(platform, ds, [split_body(rows(50, 300 + i)) for i in range(4)])
    drift = until(lambda: (d := platform.api("GET", f"{API}/{NAME}/drift", pm).json())
                  ["samples"] >= 200 and d, 30, "200 recorded rows")
    assert drift["state"] == "stable", drift
    assert drift["reference"]["rows"] == 400 and "monitoring/reference.csv" in \
        drift["reference"]["source"]
    assert {f["feature"] for f in drift["features"]} == set(FEATURES)

    timed_calls(platform, ds, [split_body(rows(50, 400 + i, shift=3.0)) for i in range(6)])
    drift = until(lambda: (d := platform.api("GET", f"{API}/{NAME}/drift", ds).json())
                  ["state"] == "drifted" and d, 30, "the drift state")
    shifted = [f["feature"] for f in drift["features"] if f["drifted"]]
    assert shifted == ["f0"], drift["features"]
    assert drift["last_alert"]["drifted"] and drift["last_alert"]["features"] == ["f0"]
    for token in (ds, pm):
        feed = platform.api("GET", "services/mlops/api/notifications", token).json()
        told = [n for n in feed["notifications"] if n["kind"] == "deployment.drift-warning"]
        assert len(told) == 1 and "f0" in told[0]["message"] and NAME in told[0]["message"]
    feed = platform.api("GET", "services/mlops/api/notifications", peer).json()
    assert not [n for n in feed["notifications"] if n["kind"] == "deployment.drift-warning"]
    # Turning recording off deletes what was kept.
    platform.api("PUT", url, ds, json={"record_inputs": False}).raise_for_status()
    assert platform.api("GET", f"{API}/{NAME}/drift", ds).json()["samples"] == 0


def test_prometheus_export_parses_and_refuses_others(platform, vigil):
    admin = platform.admin_token()
    r = platform.api("GET", METRICS, admin)
    assert r.status_code == 200, r.text
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    requests_ = {tuple(sorted(s.labels.items())): s.value
                 for s in families["mlops_deployment_requests"].samples
                 if s.name.endswith("_total")}
    assert requests_[(("deployment", NAME), ("version", "2"))] == 5
    assert requests_[(("deployment", NAME), ("version", "1"))] >= 17
    latency = [s for s in families["mlops_deployment_latency_seconds"].samples
               if s.labels.get("deployment") == NAME and s.labels.get("version") == "2"]
    assert [s.value for s in latency if s.name.endswith("_count")] == [5]
    assert {"mlops_process_up", "mlops_disk_free_bytes", "mlops_jobs_queued",
            "mlops_data_dir_bytes", "mlops_deployment_drifted"} <= set(families)
    # Every metric the shipped Grafana dashboard queries is in the export.
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in re.findall(r"\bmlops_[a-z0-9_]+", e)}
    exported = {s.name for f in families.values() for s in f.samples}
    assert queried and queried <= exported, queried - exported
    up = {s.labels["name"]: s.value for s in families["mlops_process_up"].samples}
    assert up["control plane"] == 1 and up["mlflow"] == 1, up
    assert requests.get(f"{platform.url}/{METRICS}", timeout=30).status_code == 401
    r = platform.api("GET", METRICS, vigil["mo-pm"])  # a valid token, not an administrator's
    assert r.status_code == 403, r.text
    scraper = platform.token("admin", scopes=["custom:mlops:metrics"])
    assert platform.api("GET", METRICS, scraper).status_code == 200
    # ... and that token reads nothing else
    assert platform.api("GET", "services/mlops/api/admin/health", scraper).status_code == 403


def test_platform_health_for_administrators(platform, vigil):
    r = platform.api("GET", "services/mlops/api/admin/health", platform.admin_token())
    assert r.status_code == 200, r.text
    h = r.json()
    services = {(s["kind"], s["name"]): s for s in h["services"]}
    for name in ("control plane", "mlflow", "hub", "proxy"):
        s = services[("service", name)]
        assert s["state"] == "running" and s["rss_bytes"] > 0, s
    assert services[("model_server", NAME)]["processes"] >= 1
    parts = {p["name"]: p["bytes"] for p in h["disk"]["parts"]}
    assert parts["mlflow"] > 0 and parts["control"] > 0
    assert 0 < h["disk"]["free_bytes"] <= h["disk"]["total_bytes"]
    assert isinstance(h["queue"]["queued"], int)
    r = platform.api("GET", "services/mlops/api/admin/health", vigil["mo-pm"])
    assert r.status_code == 403, r.text
    # The admin page shows the same.
    page = platform.api("GET", "services/mlops/admin", platform.admin_token())
    assert page.status_code == 200 and "Platform health" in page.text
    assert 'data-service="service:control plane"' in page.text and 'data-part="mlflow"' in page.text
