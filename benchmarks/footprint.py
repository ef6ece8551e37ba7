"""Walking-skeleton figures: `up` to a logged-in lab, and the idle memory of the platform.

    .venv/bin/python benchmarks/footprint.py

Starts `jupyter-mlops up` in a temporary data directory, logs a user in through Chromium,
waits for JupyterLab with the MLOps sidebar, then sums the proportional set size (PSS) of each
component after 15 s idle. PSS, not RSS: the many Python processes share library pages, and RSS
would count each shared page once per process. The peer for memory is MLflow's default server (4 workers + job runner),
measured here too when --with-peer is given.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui-tests"))

from tests.fixtures import Platform, free_port  # noqa: E402


def component(cmdline: str) -> str:
    if "configurable-http-proxy" in cmdline:
        return "proxy"
    if "jupyterhub-singleuser" in cmdline or "ipykernel" in cmdline:
        return "user server"
    if "mlflow_gateway" in cmdline:
        return "mlflow gateway"
    if "-m jupyter_mlops.service" in cmdline:
        return "control plane"
    if "mlflow" in cmdline or "uvicorn" in cmdline:
        return "mlflow server"
    if "jupyterhub" in cmdline:
        return "hub"
    return "other"


def pss_by_component(root_pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in psutil.Process(root_pid).children(recursive=True):
        try:
            name = component(" ".join(p.cmdline()))
            out[name] = out.get(name, 0) + p.memory_full_info().pss / 2**20
        except psutil.NoSuchProcess:
            pass
    return out


def mlflow_default_pss(tmp: Path) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp}/peer.db"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**__import__("os").environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    import urllib.request

    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    time.sleep(10)
    family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    total = sum(c.memory_full_info().pss for c in family) / 2**20
    for c in family:
        c.kill()
    psutil.wait_procs(family, timeout=30)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--with-peer", action="store_true", help="also measure MLflow's default server")
    args = ap.parse_args()
    from conftest import CHROMIUM_ARGS, hub_login, open_lab, open_mlops_sidebar
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        p = Platform(Path(tmp) / "data").start()
        t_url = time.monotonic() - t0
        try:
            p.hub("POST", "users/bench")
            with sync_playwright() as pw:
                b = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = b.new_page()
                t1 = time.monotonic()
                hub_login(page, p, "bench", "bench-password-1")
                open_lab(page, p, "bench")
                sidebar = open_mlops_sidebar(page)
                expect(sidebar.get_by_test_id("status-mlflow")).to_contain_text("reachable")
                t_lab = time.monotonic() - t1
                b.close()
            time.sleep(15)
            pss = pss_by_component(p.proc.pid)
        finally:
            p.stop()
        print(f"up -> URL printed:                {t_url:6.1f} s")
        print(f"login -> lab with live sidebar:   {t_lab:6.1f} s")
        print(f"up -> logged-in lab (sum):        {t_url + t_lab:6.1f} s")
        print("idle PSS by component (MiB):")
        for name, mib in sorted(pss.items(), key=lambda kv: -kv[1]):
            print(f"  {name:16s} {mib:8.0f}")
        print(f"  {'TOTAL':16s} {sum(pss.values()):8.0f}")
        if args.with_peer:
            peer = mlflow_default_pss(Path(tmp))
            ours = pss.get("mlflow server", 0) + pss.get("mlflow gateway", 0)
            print(f"MLflow: ours (lean server + gateway) {ours:.0f} MiB vs default "
                  f"`mlflow server` {peer:.0f} MiB: ratio {ours / peer:.2f}")


if __name__ == "__main__":
    main()
