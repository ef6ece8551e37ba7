"""A real, lean ``mlflow server`` for the experiments tests, the UI test and the benchmark.

One worker, no job runner, no telemetry: ~6 s to start, ~0.5 GB. Seeding goes through
MLflow's own client (``log_batch``), in threads, so a few hundred runs take seconds.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.fixtures import until

MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def db_path(self) -> Path:
        return self.root / "mlflow.db"

    def start(self, timeout: float = 90) -> "MlflowServer":
        self.root.mkdir(parents=True, exist_ok=True)
        mlflow = str(Path(sys.executable).parent / "mlflow")
        cmd = [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", "1",
               "--backend-store-uri", f"sqlite:///{self.db_path}",
               "--artifacts-destination", str(self.root / "artifacts"), "--serve-artifacts"]
        self.log = open(self.root / "mlflow.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.root,
                                     env={**os.environ, **MLFLOW_ENV}, start_new_session=True)
        def answers() -> bool:
            if self.proc.poll() is not None:
                self.stop()  # what it started may still run
                raise RuntimeError("mlflow server exited:\n" + self.tail())
            try:
                return requests.get(f"{self.url}/health", timeout=1).ok
            except requests.RequestException:
                return False

        try:
            until(answers, timeout, "mlflow server's health answer", every=0.2)
        except AssertionError:
            self.stop()
            raise RuntimeError("mlflow server did not start:\n" + self.tail()) from None
        return self

    def tail(self) -> str:
        return (self.root / "mlflow.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM to the whole group: ``mlflow server`` runs its uvicorn as a child, which
        outlives the parent if only the parent is signalled (or has exited)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        except ProcessLookupError:  # the group is gone already
            pass
        self.log.close()

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


def seed_runs(client, experiment_id: str, n: int, *, metrics: int = 3, params: int = 3,
              steps: int = 5, threads: int = 8, project_tags: dict | None = None) -> list[str]:
    """``n`` finished runs, each with ``metrics`` metric histories of ``steps`` points."""
    from mlflow.entities import Metric, Param, RunTag

    def one(i: int) -> str:
        run = client.create_run(experiment_id, run_name=f"run-{i:05d}",
                                tags={"mlops.user": "alice", **(project_tags or {})})
        t = int(time.time() * 1000)
        ms = [Metric(f"m{j}", (i % 97) / 10 + j + s * (0.5 - j / 10), t + s, s)
              for j in range(metrics) for s in range(steps)]
        ps = [Param(f"p{j}", str((i + j) % 7)) for j in range(params)]
        client.log_batch(run.info.run_id, metrics=ms, params=ps,
                         tags=[RunTag("mlflow.source.git.commit", f"{i:040x}")])
        client.set_terminated(run.info.run_id)
        return run.info.run_id

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))


def tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def log_model_dir(client, run_id: str, tmp: Path) -> None:
    """A minimal MLflow model directory (an MLmodel file) under the run's ``model/``."""
    d = tmp / f"model-{run_id}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: dummy\n")
    client.log_artifacts(run_id, str(d), "model")
    (tmp / "notes.txt").write_text("cells detected: 42\n")
    client.log_artifact(run_id, str(tmp / "notes.txt"))
    (tmp / "sample.png").write_bytes(tiny_png())
    client.log_artifact(run_id, str(tmp / "sample.png"), "images")
