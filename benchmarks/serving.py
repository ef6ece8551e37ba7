"""Benchmark: our model server vs ``mlflow models serve``, side by side, same models, one run.

    .venv/bin/python benchmarks/serving.py [--duration 10] [--rounds 3] [--connections 32]
    .venv/bin/python benchmarks/serving.py --against HEAD   # a change to our server: after/before

Each server gets one worker pinned to core 0 (``taskset``); the load generator ``wrk`` runs on
core 1 with 32 connections, each request one 20-feature row in MLflow's ``dataframe_split``
format. Two models: a LogisticRegression (cheap per call, so batching pays most) and a 50-tree
RandomForest. Both servers of a model run at once (an idle one costs nothing) and the load
alternates between them, ours, MLflow, ours, MLflow..., so a drift of the machine during the run
hits both sides alike; each side's figure is the median of its rounds. Before any load, both
servers must answer the same predictions for the same rows, and a round with any non-2xx answer
or socket error fails the benchmark: a fast wrong answer is not a result. Prints throughput, p50
and p99 of each server and the ratios, and writes ``benchmarks/results/serving.json``. Installs
wrk with apt-get when it is missing.

With ``--against REF`` the other side is our own server as of git ``REF`` (exported into a
scratch folder, its working directory) instead of MLflow's: the server importable from the
current directory (the work tree) is "ours", the exported one "before", same rounds, same checks, results in
``benchmarks/results/serving-before-after.json`` (no goal: the ratios are the answer).
"""
from __future__ import annotations

import sys
from pathlib import Path

# Python puts this script's directory first on sys.path; a sibling benchmark module named like
# a standard module (benchmarks/platform.py) would then shadow it. Drop it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

HERE = Path(__file__).resolve().parent
PY = sys.executable
FEATURES = [f"f{i}" for i in range(20)]
GOALS = {"logreg": (10.0, 0.2), "forest": (3.0, None)}  # throughput ratio >=, p99 ratio <=


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def make_models(root: Path) -> dict[str, Path]:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(2000, 20)), columns=FEATURES)
    y = (x["f0"] + 0.5 * x["f1"] - x["f2"] > 0).astype(int)
    out = {}
    for name, model in (("logreg", LogisticRegression(max_iter=500)),
                        ("forest", RandomForestClassifier(n_estimators=50, random_state=0))):
        model.fit(x, y)
        path = root / name
        mlflow.sklearn.save_model(model, str(path), signature=infer_signature(x, model.predict(x)),
                                  serialization_format="cloudpickle",
                                  pip_requirements=["mlflow", "scikit-learn"])
        t0 = time.perf_counter()
        for _ in range(200):
            model.predict(x.iloc[:1])
        print(f"  {name}: sklearn predict of one row {1000 * (time.perf_counter() - t0) / 200:.2f}"
              " ms", flush=True)
        out[name] = path
    return out


def wait_ping(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer /ping")


def export_ref(ref: str, dest: Path) -> Path:
    """The ``jupyter_mlops`` package as of git ``ref``, unpacked under ``dest``."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", ref, "jupyter_mlops"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def start_server(kind: str, model: Path, port: int, log,
                 before: Path | None = None) -> subprocess.Popen:
    # mlflow models serve runs `uvicorn` from PATH: the venv's own.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cwd = None
    if kind == "before":
        # ``python -m`` puts its working directory first on sys.path, ahead of PYTHONPATH.
        cwd = str(before)
    if kind in ("ours", "before"):
        cmd = [PY, "-m", "jupyter_mlops.serving", f"--model-uri={model}", f"--port={port}"]
    else:
        cmd = [str(Path(PY).parent / "mlflow"), "models", "serve", "-m", str(model), "-p",
               str(port), "-h", "127.0.0.1", "--env-manager", "local", "-w", "1"]
    return subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(f"unexpected wrk latency {value!r}")
    n, unit = float(m.group(1)), m.group(2)
    return {"us": n / 1000, "ms": n, "s": n * 1000, "m": n * 60_000}[unit]


def parse_wrk(out: str) -> dict:
    """The figures of one ``wrk --latency`` report; every pattern is anchored to its own line, so
    a percentile is read from the latency distribution and never from another table."""
    def line(pattern: str) -> re.Match:
        m = re.search(pattern, out, re.MULTILINE)
        if not m:
            raise ValueError(f"wrk output lacks {pattern!r}:\n{out}")
        return m

    bad = re.search(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", out, re.MULTILINE)
    errors = re.search(r"^\s*Socket errors:.*$", out, re.MULTILINE)
    return {"requests_per_s": float(line(r"^Requests/sec:\s+([\d.]+)\s*$").group(1)),
            "p50_ms": to_ms(line(r"^\s+50(?:\.000)?%\s+(\S+)\s*$").group(1)),
            "p99_ms": to_ms(line(r"^\s+99(?:\.000)?%\s+(\S+)\s*$").group(1)),
            "requests": int(line(r"^\s+(\d+) requests in ").group(1)),
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(0).strip() if errors else ""}


def run_wrk(wrk: str, url: str, script: Path, duration: int, connections: int) -> dict:
    cmd = ["taskset", "-c", "1", wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
           "--timeout", "10s", "-s", str(script), url + "/invocations"]
    res = parse_wrk(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    if res["non_2xx"] or res["socket_errors"]:
        raise RuntimeError(f"{url}: {res['non_2xx']} non-2xx answers {res['socket_errors']}")
    return res


def predict(url: str, body: bytes) -> list:
    req = urllib.request.Request(url + "/invocations", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    return answer["predictions"] if isinstance(answer, dict) else answer


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a server and its children (MLflow's uvicorn workers)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def median_of(rounds: list[dict]) -> dict:
    keys = ("requests_per_s", "p50_ms", "p99_ms", "cpu_ms_per_request")
    return {**{k: statistics.median(r[k] for r in rounds) for k in keys},
            "rounds": [{k: r[k] for k in keys} for r in rounds]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per round")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--against", metavar="REF",
                    help="compare with our server as of git REF instead of mlflow models serve")
    args = ap.parse_args()
    if (os.cpu_count() or 1) < 2:
        print("needs two cores (server on one, load generator on the other)")
        return 2
    wrk = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    print(f"models in {tmp}:", flush=True)
    models = make_models(tmp)
    before = export_ref(args.against, tmp / "before") if args.against else None
    other = "before" if args.against else "mlflow"
    kinds = ("ours", other)
    script = tmp / "post.lua"
    row = [round(0.1 * i - 1, 2) for i in range(20)]
    body = json.dumps({"dataframe_split": {"columns": FEATURES, "data": [row]}})
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = '{body}'\n")
    check_rows = [[round(0.37 * ((i * 7 + j) % 11) - 2, 2) for i in range(20)] for j in range(16)]
    check = json.dumps({"dataframe_split": {"columns": FEATURES, "data": check_rows}}).encode()
    results: dict = {}
    for model_name, path in models.items():
        procs, urls = {}, {}
        logs = {kind: open(tmp / f"{kind}-{model_name}.log", "wb") for kind in kinds}
        try:
            for kind in kinds:
                urls[kind] = f"http://127.0.0.1:{free_port()}"
                procs[kind] = start_server(kind, path, int(urls[kind].rsplit(":", 1)[1]),
                                           logs[kind], before)
            for kind in kinds:
                wait_ping(urls[kind], procs[kind])
            answers = {kind: predict(urls[kind], check) for kind in kinds}
            if answers["ours"] != answers[other]:
                raise RuntimeError(f"{model_name}: the servers disagree on the same 16 rows: "
                                   f"ours {answers['ours']} vs {other} {answers[other]}")
            for kind in kinds:
                run_wrk(wrk, urls[kind], script, 3, args.connections)  # warm-up
            rounds: dict[str, list] = {kind: [] for kind in kinds}
            for i in range(args.rounds):
                for kind in kinds:
                    cpu = cpu_seconds(procs[kind].pid)
                    res = run_wrk(wrk, urls[kind], script, args.duration, args.connections)
                    # What a request costs the server, whatever else loads the machine: on a
                    # shared core, throughput and latency move with the neighbours, this less.
                    res["cpu_ms_per_request"] = round(
                        1000 * (cpu_seconds(procs[kind].pid) - cpu) / max(res["requests"], 1), 4)
                    rounds[kind].append(res)
                    print(f"  {model_name:7s} round {i + 1} {kind:7s} "
                          f"{res['requests_per_s']:9.1f} req/s  p50 {res['p50_ms']:8.2f} ms  "
                          f"p99 {res['p99_ms']:8.2f} ms  cpu/request "
                          f"{res['cpu_ms_per_request']:.3f} ms", flush=True)
        finally:
            for proc in procs.values():
                stop_server(proc)
            for log in logs.values():
                log.close()
        results[model_name] = {kind: median_of(r) for kind, r in rounds.items()}

    print(f"\nSide by side, medians of {args.rounds} alternating rounds (1 worker on core 0, wrk "
          f"on core 1, {args.connections} connections, {args.duration} s per round):")
    print(f"{'model':8s} {'server':8s} {'req/s':>9s} {'p50 ms':>9s} {'p99 ms':>9s} "
          f"{'cpu ms/req':>10s}")
    verdicts = []
    for model_name, pair in results.items():
        for kind in kinds:
            r = pair[kind]
            print(f"{model_name:8s} {kind:8s} {r['requests_per_s']:9.1f} {r['p50_ms']:9.2f} "
                  f"{r['p99_ms']:9.2f} {r['cpu_ms_per_request']:10.3f}")
        tput = pair["ours"]["requests_per_s"] / max(pair[other]["requests_per_s"], 1e-9)
        p99 = pair["ours"]["p99_ms"] / max(pair[other]["p99_ms"], 1e-9)
        p50 = pair["ours"]["p50_ms"] / max(pair[other]["p50_ms"], 1e-9)
        cpu = pair["ours"]["cpu_ms_per_request"] / max(pair[other]["cpu_ms_per_request"], 1e-9)
        if args.against:
            pair["ratio"] = {"throughput": round(tput, 3), "p50": round(p50, 3),
                             "p99": round(p99, 3), "cpu_per_request": round(cpu, 3),
                             "against": args.against}
            print(f"{model_name:8s} ours/before  throughput {tput:6.3f}x   p50 {p50:6.3f}x   "
                  f"p99 {p99:6.3f}x   cpu/request {cpu:6.3f}x")
            continue
        want_tput, want_p99 = GOALS[model_name]
        ok = tput >= want_tput and (want_p99 is None or p99 <= want_p99)
        goal = f">= {want_tput:g}x throughput" + (f", <= {want_p99:g}x p99" if want_p99 else "")
        verdicts.append(ok)
        pair["ratio"] = {"throughput": round(tput, 2), "p99": round(p99, 3), "goal": goal,
                         "met": ok}
        print(f"{model_name:8s} ratio    throughput {tput:6.1f}x   p99 {p99:6.3f}x   "
              f"goal {goal}: {'MET' if ok else 'NOT MET'}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    name = "serving-before-after.json" if args.against else "serving.json"
    (out / name).write_text(json.dumps(results, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
