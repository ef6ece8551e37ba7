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

Like for like: one HTTP client (httpx, one kept-alive connection per path), and a call is timed
until its whole body has arrived; reading the JSON and checking it happen outside the timing
(the lab's answer is smaller, so parsing inside the timing would favour it). Before the rounds,
the three paths must answer the same page: the same runs in the same order, and in the lab's
answer each run's metrics and params equal MLflow's. Every answer of the rounds is checked
against that page; a non-2xx or a different page is a failure, not a sample (a fast error is
not a result). Exits 1 when any call failed or a goal was missed.
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

REPO = Path(__file__).resolve().parents[1]
# Keep this directory off sys.path (a sibling module could shadow a standard one).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from tests.fixtures import Platform, shared_tmp_dir  # noqa: E402

N_METRICS, N_PARAMS = 20, 10
USER, PASSWORD = "bench-runs", "bench-runs-pass-1"
EXPERIMENT = "bench-10k"
GOAL_RATIO, GOAL_BROWSER_MS = 1.2, 1000


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


def timed(call) -> tuple[float, httpx.Response]:
    """Milliseconds until the whole answer has arrived (httpx reads the body), and the answer."""
    t = time.perf_counter()
    resp = call()
    return (time.perf_counter() - t) * 1000, resp


def page_of(path: str, resp: httpx.Response) -> list[dict]:
    """The runs of an answer as ``{run_id, metrics, params}``, whichever path answered;
    raises ``ValueError`` for a non-2xx answer or one without runs."""
    if not resp.is_success:
        raise ValueError(f"{path}: HTTP {resp.status_code} {resp.text[:200]}")
    runs = resp.json().get("runs")
    if not runs:
        raise ValueError(f"{path}: no runs in {resp.text[:200]}")
    if path == "lab":
        return [{"run_id": r["run_id"], "metrics": r["metrics"], "params": r["params"]}
                for r in runs]
    return [{"run_id": r["info"]["run_id"],
             "metrics": {m["key"]: m["value"] for m in r["data"].get("metrics", [])},
             "params": {p["key"]: p["value"] for p in r["data"].get("params", [])}}
            for r in runs]


def alternate(paths: dict, repeat: int) -> tuple[dict, dict]:
    """Milliseconds of each path's calls over ``repeat`` alternating rounds, and its failures
    (an answer that is not the page MLflow answered)."""
    # The same page on every path, checked once in full (this also warms every path).
    expected = page_of("mlflow", paths["mlflow"]())
    assert len(expected) == 100, len(expected)
    for k in paths:
        assert page_of(k, paths[k]()) == expected, f"{k} answers another page than MLflow's"
    ids = [r["run_id"] for r in expected]
    ms: dict[str, list[float]] = {k: [] for k in paths}
    failures: dict[str, list[str]] = {k: [] for k in paths}
    for _ in range(repeat):  # alternate, so load on the machine hits all alike
        for k, call in paths.items():
            took, resp = timed(call)
            try:
                if [r["run_id"] for r in page_of(k, resp)] != ids:
                    raise ValueError(f"{k}: another page than MLflow's")
            except ValueError as e:
                failures[k].append(str(e))
                continue
            ms[k].append(took)
    return ms, failures


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
        http = httpx.Client(base_url=platform.url, timeout=60,
                            headers={"Authorization": f"token {token}"})
        lab_url = f"/user/{USER}/mlops/api/experiments/{exp}/runs"
        lab_query = {"max_results": 100, "order_by": "attributes.start_time DESC"}
        paths = {"mlflow": lambda: direct.post(search, json=body),
                 "gateway": lambda: http.post(search, json=body),
                 "lab": lambda: http.get(lab_url, params=lab_query)}
        names = {"mlflow": "MLflow REST on its socket", "gateway": "through the gateway",
                 "lab": "the lab's route"}
        ms, failures = alternate(paths, a.repeat)
        print(f"\nfirst page of 100 of {a.runs} runs (median of {a.repeat} alternating rounds):")
        for k, v in ms.items():
            median = f"{statistics.median(v):8.1f} ms" if v else "       - ms"
            print(f"  {names[k]:28s} {median}   ({len(failures[k])} failed)")
        for k, errors in failures.items():
            for e in errors[:3]:
                print(f"  failure: {e}")
        if any(failures.values()):
            print("  failed calls: no ratio")
            return 1
        med = {k: statistics.median(v) for k, v in ms.items()}
        ratio = med["lab"] / med["mlflow"]
        print(f"  ratio lab / MLflow           {ratio:8.2f}   (goal <= {GOAL_RATIO})")
        print(f"  ratio gateway / MLflow       {med['gateway'] / med['mlflow']:8.2f}")
        missed = ratio > GOAL_RATIO
        if not a.no_browser:
            times = browser_time(platform, exp)
            print(f"\nJupyterLab in Chromium, open experiment -> 100 rows shown: "
                  f"{', '.join(f'{t:.0f}' for t in times)} ms "
                  f"(median {statistics.median(times):.0f} ms; goal < {GOAL_BROWSER_MS} ms)")
            missed = missed or statistics.median(times) >= GOAL_BROWSER_MS
    finally:
        platform.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if missed:
        print("goal missed")
    return 1 if missed else 0


def gateway_client(platform: Platform, token: str):
    """An MLflow client of the platform's gateway, as the user (the experiment gets the user's
    project, ``default``)."""
    import mlflow

    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    return mlflow.MlflowClient(f"{platform.url}/services/mlflow")


if __name__ == "__main__":
    sys.exit(main())
