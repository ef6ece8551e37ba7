"""Benchmark: the first page of 100 runs of a 10,000-run experiment, the lab vs MLflow REST.

    .venv/bin/python benchmarks/experiments.py [--runs 10000] [--repeat 15] [--no-browser]

Starts the real platform (``jupyter-mlops up``: hub, proxy, control plane with the MLflow
gateway, MLflow on SQLite behind its unix socket) and a data scientist's server, seeds N runs x
20 metrics x 10 params in bulk (one template run logged through the gateway, then copied row by
row inside MLflow's own SQLite store, which is how the SQL store keeps them; logging 10,000 runs
one by one would take ~6 minutes here), and prints:

* the first page of 100 runs (``runs/search``, newest first), median of --repeat rounds that
  alternate the three paths (so load on the machine hits each alike): MLflow's REST API on its
  own socket (the peer), the same call through the hub-authenticated gateway
  (``/services/mlflow/``), and the lab's route (``/user/<name>/mlops/api/experiments/<id>/runs``:
  proxy -> the user's server -> gateway -> MLflow, the hop the product makes); the ratio of the
  lab's median to MLflow's (goal <= 1.2);
* the time from opening the experiment in JupyterLab (Chromium) until its table shows the
  100 rows of that page (goal < 1 s).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
import requests

REPO = Path(__file__).resolve().parents[1]
# Keep this directory off sys.path (a sibling module could shadow a standard one).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from tests.fixtures import Platform, shared_tmp_dir  # noqa: E402

N_METRICS, N_PARAMS = 20, 10
USER, PASSWORD = "bench-runs", "bench-runs-pass-1"
EXPERIMENT = "bench-10k"


def seed(client, db_path: Path, n: int) -> str:
    from mlflow.entities import Metric, Param

    exp = client.create_experiment(EXPERIMENT, tags={"mlops.project": "default"})
    template = client.create_run(exp, run_name="template")
    client.log_batch(template.info.run_id,
                     metrics=[Metric(f"metric_{j:02d}", 0.5, 0, 0) for j in range(N_METRICS)],
                     params=[Param(f"param_{j:02d}", "x") for j in range(N_PARAMS)])
    client.set_terminated(template.info.run_id)
    db = sqlite3.connect(db_path, timeout=60)
    db.row_factory = sqlite3.Row
    row = dict(db.execute("SELECT * FROM runs WHERE run_uuid = ?",
                          (template.info.run_id,)).fetchone())
    tags = db.execute("SELECT key, value FROM tags WHERE run_uuid = ?",
                      (template.info.run_id,)).fetchall()
    cols = list(row)
    t0 = int(time.time() * 1000) - n * 1000
    runs, metrics, params, run_tags = [], [], [], []
    for i in range(n - 1):
        rid = uuid.uuid4().hex
        r = dict(row, run_uuid=rid, name=f"run-{i:05d}", start_time=t0 + i * 1000,
                 end_time=t0 + i * 1000 + 500,
                 artifact_uri=row["artifact_uri"].replace(template.info.run_id, rid))
        runs.append(tuple(r[c] for c in cols))
        for j in range(N_METRICS):
            metrics.append((f"metric_{j:02d}", (i * 7 + j) % 1000 / 1000, t0 + i, rid, 0, 0))
        for j in range(N_PARAMS):
            params.append((f"param_{j:02d}", str((i + j) % 13), rid))
        for t in tags:
            run_tags.append((t["key"], f"run-{i:05d}" if t["key"] == "mlflow.runName"
                             else t["value"], rid))
    with db:
        db.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES "
                       f"({', '.join('?' * len(cols))})", runs)
        db.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                       " VALUES (?, ?, ?, ?, ?, ?)", metrics)
        db.executemany("INSERT INTO latest_metrics (key, value, timestamp, run_uuid, step,"
                       " is_nan) VALUES (?, ?, ?, ?, ?, ?)", metrics)
        db.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", params)
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", run_tags)
    count = db.execute("SELECT COUNT(*) FROM runs WHERE experiment_id = ?", (exp,)).fetchone()[0]
    db.close()
    assert count == n, count
    return exp


def time_calls(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def browser_time(platform: Platform, exp: str, repeat: int = 3) -> list[float]:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    times = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{platform.url}/hub/login")
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/hub/login" not in url)
        page.goto(f"{platform.url}/user/{USER}/lab")
        page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
        sidebar = page.locator("#jp-mlops-sidebar")
        if not sidebar.is_visible():
            page.locator('.jp-SideBar [data-id="jp-mlops-sidebar"]').click()
        link = sidebar.get_by_test_id("experiments-list").get_by_role("link", name=EXPERIMENT)
        link.wait_for(timeout=60_000)
        shown = ("(id) => document.querySelectorAll('#jp-mlops-experiment-' + id"
                 " + ' table[aria-label=\"Runs\"] tbody tr').length >= 100")
        for _ in range(repeat):  # as a person does it: a click in the sidebar
            t0 = time.perf_counter()
            link.click()
            page.wait_for_function(shown, arg=exp, polling="raf", timeout=60_000)
            times.append((time.perf_counter() - t0) * 1000)
            page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current"
                         " .lm-TabBar-tabCloseIcon").click()
            page.locator(f"#jp-mlops-experiment-{exp}").wait_for(state="detached")
        b.close()
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--no-browser", action="store_true")
    a = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    tmp = shared_tmp_dir("bench-exp-")
    data = tmp / "data"
    t = time.perf_counter()
    platform = Platform(data).start()
    try:
        print(f"platform up in {time.perf_counter() - t:.1f} s")
        platform.add_user(USER, PASSWORD)
        token = platform.token(USER)
        platform.start_server(USER, token=token)
        t = time.perf_counter()
        exp = seed(gateway_client(platform, token), data / "mlflow" / "mlflow.db", a.runs)
        print(f"seeded {a.runs} runs x {N_METRICS} metrics x {N_PARAMS} params in "
              f"{time.perf_counter() - t:.1f} s")
        body = {"experiment_ids": [exp], "max_results": 100,
                "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"}
        search = "/services/mlflow/api/2.0/mlflow/runs/search"
        direct = httpx.Client(transport=httpx.HTTPTransport(
            uds=str(data / "mlflow" / "run" / "mlflow.sock")), base_url="http://localhost",
            timeout=60)
        http = requests.Session()
        http.headers["Authorization"] = f"token {token}"

        def mlflow():
            r = direct.post(search, json=body)
            assert r.is_success and len(r.json()["runs"]) == 100, r.text[:300]

        def gateway():
            r = http.post(platform.url + search, json=body, timeout=60)
            assert r.ok and len(r.json()["runs"]) == 100, r.text[:300]

        def lab():
            r = http.get(f"{platform.url}/user/{USER}/mlops/api/experiments/{exp}/runs",
                         params={"max_results": 100, "order_by": "attributes.start_time DESC"},
                         timeout=60)
            assert r.ok and len(r.json()["runs"]) == 100, r.text[:300]

        paths = {"MLflow REST on its socket": mlflow, "through the gateway": gateway,
                 "the lab's route": lab}
        for fn in paths.values():  # warm every path (connections, caches)
            fn()
        ms: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(a.repeat):  # alternate, so load on the machine hits all alike
            for k, fn in paths.items():
                ms[k] += time_calls(fn, 1)
        med = {k: statistics.median(v) for k, v in ms.items()}
        print(f"\nfirst page of 100 of {a.runs} runs (median of {a.repeat} alternating rounds):")
        for k, v in med.items():
            print(f"  {k:28s} {v:8.1f} ms")
        ratio = med["the lab's route"] / med["MLflow REST on its socket"]
        print(f"  ratio lab / MLflow           {ratio:8.2f}   (goal <= 1.2)")
        print(f"  ratio gateway / MLflow       "
              f"{med['through the gateway'] / med['MLflow REST on its socket']:8.2f}")
        if not a.no_browser:
            times = browser_time(platform, exp)
            print(f"\nJupyterLab in Chromium, open experiment -> 100 rows shown: "
                  f"{', '.join(f'{t:.0f}' for t in times)} ms "
                  f"(median {statistics.median(times):.0f} ms; goal < 1000 ms)")
    finally:
        platform.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def gateway_client(platform: Platform, token: str):
    """An MLflow client of the platform's gateway, as the user (the experiment gets the user's
    project, ``default``)."""
    import mlflow

    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    return mlflow.MlflowClient(f"{platform.url}/services/mlflow")


if __name__ == "__main__":
    sys.exit(main())
