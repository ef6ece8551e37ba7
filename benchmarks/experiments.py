"""Benchmark: the first page of 100 runs of a 10,000-run experiment, extension vs MLflow REST.

    .venv/bin/python benchmarks/experiments.py [--runs 10000] [--repeat 15] [--no-browser]

Starts a real MLflow server (SQLite) and a real JupyterLab with the jupyter_mlops extension
pointed at it, seeds N runs x 20 metrics x 10 params in bulk (one template run logged through
MLflow's REST API, then copied row by row inside MLflow's own SQLite store, which is how the
SQL store keeps them; logging 10,000 runs one by one would take ~6 minutes here), and prints:

* the first page of 100 runs (`runs/search`, newest first) through MLflow's REST API directly
  and through the extension's route (`mlops/api/experiments/<id>/runs`), median of --repeat
  alternating calls, and their ratio (goal <= 1.2);
* the time from opening the experiment in JupyterLab (Chromium) until its table shows the
  100 rows of that page (goal < 1 s).
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.experiments.mlflow_server import MLFLOW_ENV, MlflowServer, free_port  # noqa: E402

N_METRICS, N_PARAMS = 20, 10


def seed(server: MlflowServer, n: int) -> str:
    from mlflow.entities import Metric, Param

    client = server.client()
    exp = client.create_experiment("bench-10k", tags={"mlops.project": "default"})
    template = client.create_run(exp, run_name="template")
    client.log_batch(template.info.run_id,
                     metrics=[Metric(f"metric_{j:02d}", 0.5, 0, 0) for j in range(N_METRICS)],
                     params=[Param(f"param_{j:02d}", "x") for j in range(N_PARAMS)])
    client.set_terminated(template.info.run_id)
    db = sqlite3.connect(server.db_path, timeout=60)
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


class Lab:
    """A real `jupyter lab` with the extension, token auth, the app exposed for timing."""

    def __init__(self, root: Path, mlflow_url: str):
        self.port, self.token = free_port(), uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
               f"--port={self.port}", "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               f"--MlopsSettings.mlflow_url={mlflow_url}", "--ServerApp.terminals_enabled=False"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = open(root / "lab.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **MLFLOW_ENV,
                                          "JUPYTER_CONFIG_DIR": str(root / "config")},
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/api/status", params={"token": self.token},
                                timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("jupyter lab did not start")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(20)


def time_calls(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def browser_time(lab: Lab, exp: str, repeat: int = 3) -> list[float]:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    times = []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.locator("#jp-main-dock-panel").wait_for(timeout=60_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands"
                               ".hasCommand('mlops:open-experiment')", timeout=60_000)
        for _ in range(repeat):
            ms = page.evaluate("""async (id) => {
                const t0 = performance.now();
                void window.jupyterapp.commands.execute('mlops:open-experiment',
                                                        {experimentId: id});
                const rows = () => document.querySelectorAll(
                    '#jp-mlops-experiment-' + id + ' table[aria-label="Runs"] tbody tr').length;
                while (rows() < 100) { await new Promise(r => requestAnimationFrame(r)); }
                const ms = performance.now() - t0;
                window.jupyterapp.shell.currentWidget.close();
                return ms;
            }""", exp)
            times.append(ms)
            page.wait_for_timeout(300)
        b.close()
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--no-browser", action="store_true")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-exp-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        server = MlflowServer(root / "mlflow").start()
        lab = None
        try:
            print(f"mlflow server up in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            exp = seed(server, a.runs)
            print(f"seeded {a.runs} runs x {N_METRICS} metrics x {N_PARAMS} params in "
                  f"{time.perf_counter() - t:.1f} s")
            (root / "lab").mkdir()
            lab = Lab(root / "lab", server.url)
            body = {"experiment_ids": [exp], "max_results": 100,
                    "order_by": ["attributes.start_time DESC"], "run_view_type": "ACTIVE_ONLY"}
            http = requests.Session()

            def rest():
                r = http.post(f"{server.url}/api/2.0/mlflow/runs/search", json=body, timeout=60)
                assert r.ok and len(r.json()["runs"]) == 100

            def ext():
                r = http.get(f"{lab.url}/mlops/api/experiments/{exp}/runs",
                             params={"max_results": 100, "order_by": "attributes.start_time DESC"},
                             headers={"Authorization": f"token {lab.token}"}, timeout=60)
                assert r.ok and len(r.json()["runs"]) == 100, r.text[:300]

            rest(), ext()  # warm both paths (connections, caches)
            rest_ms, ext_ms = [], []
            for _ in range(a.repeat):  # alternate, so load on the machine hits both alike
                rest_ms += time_calls(rest, 1)
                ext_ms += time_calls(ext, 1)
            r_med, e_med = statistics.median(rest_ms), statistics.median(ext_ms)
            print(f"\nfirst page of 100 of {a.runs} runs (median of {a.repeat}):")
            print(f"  MLflow REST runs/search      {r_med:8.1f} ms")
            print(f"  extension mlops/api/.../runs {e_med:8.1f} ms")
            print(f"  ratio extension / MLflow     {e_med / r_med:8.2f}   (goal <= 1.2)")
            if not a.no_browser:
                times = browser_time(lab, exp)
                print(f"\nJupyterLab in Chromium, open experiment -> 100 rows shown: "
                      f"{', '.join(f'{t:.0f}' for t in times)} ms "
                      f"(median {statistics.median(times):.0f} ms; goal < 1000 ms)")
        finally:
            if lab:
                lab.stop()
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
