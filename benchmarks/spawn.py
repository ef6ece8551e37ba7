"""Spawn-to-ready: our local spawner vs JupyterHub's SimpleLocalProcessSpawner, side by side.

    .venv/bin/python benchmarks/spawn.py [--rounds 5] [--concurrent 10]

Two hubs with the same jupyter-mlops configuration, differing only in the spawner class, run
at the same time; single spawns alternate between them (A, B, A, B...) so background load hits
both alike. Time is from ``POST /hub/api/users/<u>/server`` until the hub reports the server
ready (it has answered over HTTP). Our spawner does the full job: profile check, GPU allocation
in the control plane database, per-user system account (when root), cgroup limits. Then ten
users spawn at once on our hub, each asking for one of ten simulated GPUs: all must become
ready with ten different devices. Prints p50/p95 and the ratio of medians (goal <= 1.2).

The concurrent spawns are CPU-bound on a small machine: their wall time is checked against the
floor ``users x CPU time of one spawn / cores`` (the CPU seconds the hub's process tree, the new
server included, spent per single spawn of ours, median over the rounds), goal <= 1.25 x floor.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# benchmarks/platform.py would shadow the standard library's ``platform`` module (uuid imports
# it): run with the repository root on the path instead of this script's directory.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

from tests.spawner.hubfixture import SpawnerHub, shared_tmpdir  # noqa: E402

PROFILES = [{"slug": "cpu", "display_name": "CPU only", "default": True, "cpu_limit": 2,
             "mem_limit": "4G"},
            {"slug": "gpu-1", "display_name": "One GPU", "gpus": 1, "mem_limit": "4G"}]
COMMON = "c.Spawner.http_timeout = 300\nc.Spawner.start_timeout = 600\n"
SIMPLE = COMMON + """
import os, sys
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = c.MlopsLocalSpawner.workspace_root + "/{username}"
c.SimpleLocalProcessSpawner.cmd = [os.path.join(os.path.dirname(sys.executable),
                                                "jupyterhub-singleuser")]
c.SimpleLocalProcessSpawner.args = ["--allow-root"] if os.geteuid() == 0 else []
"""


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def spawn_ready(hub: SpawnerHub, user: str, profile: str | None = None) -> float:
    t0 = time.monotonic()
    r = hub.spawn(user, profile)
    if r.status_code not in (201, 202):
        raise RuntimeError(f"spawn of {user} answered {r.status_code}: {r.text}")
    hub.wait_ready(user, timeout=600)
    return time.monotonic() - t0


def cpu_seconds(hub: SpawnerHub) -> float:
    """CPU time of the hub's process tree so far: live processes and the ended ones it reaped."""
    import psutil

    try:
        root = psutil.Process(hub.proc.pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for p in root.children(recursive=True):
            try:
                c = p.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return float("nan")


def spawn_cpu(hub: SpawnerHub, user: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one spawn until ready."""
    before = cpu_seconds(hub)
    wall = spawn_ready(hub, user)
    return wall, cpu_seconds(hub) - before


def stop(hub: SpawnerHub, user: str) -> None:
    hub.hub("DELETE", f"users/{user}/server")
    hub.wait_stopped(user, timeout=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=8, help="measured spawns per spawner")
    ap.add_argument("--concurrent", type=int, default=10, help="users spawning at once")
    ap.add_argument("--keep", action="store_true",
                    help="keep the two data directories (hub logs) for a look afterwards")
    ap.add_argument("--no-limits", action="store_true",
                    help="profiles without CPU/memory limits (no cgroups), to see their cost")
    args = ap.parse_args(argv)
    profiles = PROFILES
    if args.no_limits:
        profiles = [{k: v for k, v in p.items() if k not in ("cpu_limit", "mem_limit")}
                    for p in PROFILES]

    ours = SpawnerHub(shared_tmpdir("bench-ours"), settings=COMMON, gpus=args.concurrent,
                      profiles=profiles)
    peer = SpawnerHub(shared_tmpdir("bench-peer"), settings=SIMPLE, profiles=PROFILES)
    hubs = {"MlopsLocalSpawner": ours, "SimpleLocalProcessSpawner": peer}
    times: dict[str, list[float]] = {k: [] for k in hubs}
    our_cpu: list[float] = []
    try:
        for h in hubs.values():
            h.start()
            h.add_user("bench", "bench-password-1")
        # warm-up: the first spawn creates the system account and fills the page cache
        for h in hubs.values():
            spawn_ready(h, "bench")
            stop(h, "bench")
        for i in range(args.rounds):
            for name, h in hubs.items():
                wall, cpu = spawn_cpu(h, "bench")
                times[name].append(wall)
                if h is ours:
                    our_cpu.append(cpu)
                stop(h, "bench")
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  flush=True)

        users = [f"lab{i}" for i in range(args.concurrent)]
        for u in users:
            ours.add_user(u, f"{u}-password-1")
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(users)) as pool:
            conc = list(pool.map(lambda u: spawn_ready(ours, u, "gpu-1"), users))
        wall = time.monotonic() - t0
        states = {u: ours.server_state(u) for u in users}
        ready = [u for u, s in states.items() if s.get("ready")]
        devices = {s.get("state", {}).get("gpu_uuids", [None])[0] for s in states.values()}
        for u in users:
            ours.hub("DELETE", f"users/{u}/server")
        for u in users:
            ours.wait_stopped(u, timeout=180)
        prepared = [float(m) for m in re.findall(r"Prepared \S+ server: .* in ([0-9.]+) ms",
                                                 (ours.data_dir / "logs" / "hub.log").read_text())]
    finally:
        for h in hubs.values():
            h.stop()
            if args.keep:
                print(f"kept {h.data_dir}")
            else:
                shutil.rmtree(h.data_dir, ignore_errors=True)

    a, b = times["MlopsLocalSpawner"], times["SimpleLocalProcessSpawner"]
    cores = os.cpu_count() or 1
    single_cpu = statistics.median(our_cpu)
    floor = len(users) * single_cpu / cores
    result = {
        "cgroup_limits": not args.no_limits,
        "spawn_to_ready_s": {k: {"p50": statistics.median(v), "p95": pct(v, 0.95),
                                 "min": min(v), "runs": [round(x, 2) for x in v]}
                             for k, v in times.items()},
        "ratio_p50": statistics.median(a) / statistics.median(b),
        # Rounds run back to back share the machine's load: their ratios are less noisy.
        "ratio_paired_median": statistics.median(x / y for x, y in zip(a, b)),
        "ratio_min": min(a) / min(b),
        "our_preparation_ms": {"p50": statistics.median(prepared), "max": max(prepared),
                               "spawns": len(prepared)},
        "concurrent": {"users": len(users), "ready": len(ready),
                       "all_ready": len(ready) == len(users),
                       "distinct_gpus": len(devices - {None}), "wall_s": wall,
                       "p50": statistics.median(conc), "p95": pct(conc, 0.95),
                       "single_spawn_cpu_s": single_cpu, "cores": cores,
                       "cpu_bound_floor_s": floor, "wall_over_floor": wall / floor,
                       "goal_wall_over_floor": 1.25},
    }
    print("\nspawn to ready (s)          p50     p95     min")
    for k, v in result["spawn_to_ready_s"].items():
        print(f"  {k:26s} {v['p50']:6.2f}  {v['p95']:6.2f}  {v['min']:6.2f}")
    print(f"  ratio ours/simple: p50 {result['ratio_p50']:.2f}, median of paired rounds "
          f"{result['ratio_paired_median']:.2f}, min {result['ratio_min']:.2f}  (goal <= 1.2)")
    prep = result["our_preparation_ms"]
    print(f"  our work before the process starts (profile, GPUs, account, cgroup): "
          f"p50 {prep['p50']:.1f} ms, max {prep['max']:.1f} ms over {prep['spawns']} spawns")
    c = result["concurrent"]
    print(f"\n{c['users']} concurrent spawns (1 GPU each): {c['ready']} ready, "
          f"{c['distinct_gpus']} distinct GPUs, wall {c['wall_s']:.1f} s, p50 {c['p50']:.1f} s, "
          f"p95 {c['p95']:.1f} s")
    met = c["all_ready"] and c["distinct_gpus"] == c["users"] and \
        c["wall_over_floor"] <= c["goal_wall_over_floor"]
    print(f"  CPU-bound floor: {c['users']} x {single_cpu:.2f} s CPU per spawn / {cores} cores "
          f"= {floor:.1f} s; wall / floor {c['wall_over_floor']:.2f} "
          f"(goal <= {c['goal_wall_over_floor']}): {'MET' if met else 'NOT MET'}")
    out = ROOT / "benchmarks" / "results" / (
        "spawn-no-limits.json" if args.no_limits else "spawn.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
