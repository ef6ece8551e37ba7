"""The platform's internal TCP addresses, chosen once per data directory and kept.

Jobs outlive restarts of the control plane: a job started before one still reports to MLflow
through the gateway and reads the catalog through the control plane at the addresses it was
given. Those addresses never change, across starts of the platform either: the first start
picks a port for each internal listener below and writes them to ``<data_dir>/hub/ports.json``
(a directory only the platform enters); every later start reuses them. A port found in use at
start by anything else is an error naming the process, never silently replaced: whatever still
holds an old address would otherwise send its requests, hub token included, to whoever took it.

Where: as root (the embedded default), below ``net.ipv4.ip_unprivileged_port_start`` (1024):
no other local account can ever listen there, not even in the seconds a crashed service takes
to come back, so no account can pose as the control plane or the gateway to a running job.
Without root, between 20000 and the kernel's ephemeral range (no outgoing connection is handed
one of them as its source port meanwhile); another account could then take a port while its
service restarts. Kept ports an earlier start chose where any account may listen are chosen
again, as root, at the next start (nothing of the platform runs then: ``up`` ends jobs with it).
"""
from __future__ import annotations

import errno
import json
import os
import random
import socket
from pathlib import Path

# name in ports.json -> what listens there (for error messages)
LISTENERS = {
    "hub_api": "the hub's API",
    "proxy_api": "the proxy's API",
    "control_plane": "the control plane",
    "gateway": "the MLflow gateway",
}
HOST = "127.0.0.1"
LOWEST = 20000
# Privileged ports for root: below glibc's bindresvport range (600-1023, RPC clients), skipping
# the well-known services of that range one may run on a lab server.
PRIVILEGED = [p for p in range(200, 600) if p not in {
    389, 427, 443, 444, 445, 465, 497, 500, 512, 513, 514, 515, 520, 546, 547, 548, 554, 563,
    587, 593}]


class PortInUse(RuntimeError):
    """A kept internal port is taken by another process."""


def _ephemeral_low() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(low, LOWEST + 1000)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            s.bind((HOST, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _unprivileged_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def _privileged() -> bool:
    """Whether this process may take ports no other local account can take."""
    return os.geteuid() == 0 and _unprivileged_start() > max(PRIVILEGED)


def _pick(taken: set[int]) -> int:
    if _privileged():
        choices = [p for p in PRIVILEGED if p not in taken]
        random.shuffle(choices)
    else:
        high = _ephemeral_low()
        choices = (random.randrange(LOWEST, high) for _ in range(200))
    for port in choices:
        if port not in taken and _bindable(port):
            return port
    raise RuntimeError(f"no free port for the platform's internal listeners on {HOST}")


def _holder(port: int) -> str:
    """Who listens on ``port``, as far as this process may see."""
    import psutil

    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.pid:
                try:
                    p = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({' '.join(p.cmdline())[:120]}, user {p.username()})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except psutil.Error:
        pass
    return "another process"


def internal_ports(data_dir: Path) -> dict[str, int]:
    """``{listener: port}`` of this data directory, choosing (and keeping) missing ones.

    Raises :class:`PortInUse` when a kept port is taken, and ``RuntimeError`` when the file is
    damaged (fix or delete it; deleting it picks new ports, which jobs still running from an
    earlier start would no longer find).
    """
    path = Path(data_dir) / "hub" / "ports.json"
    try:
        ports = json.loads(path.read_text())
        if not isinstance(ports, dict):
            raise ValueError("not an object")
    except FileNotFoundError:
        ports = {}
    except ValueError as e:
        raise RuntimeError(f"{path} is damaged ({e}); delete it to choose new internal "
                           "ports (jobs still running would lose the platform)") from None
    changed = False
    privileged = _privileged()
    for name in LISTENERS:
        port = ports.get(name)
        if privileged and isinstance(port, int) and port >= _unprivileged_start():
            port = None  # chosen without root: move it where no other account can listen
        if not (isinstance(port, int) and 0 < port < 65536):
            ports[name] = _pick({p for p in ports.values() if isinstance(p, int)})
            changed = True
        elif not _bindable(port):
            raise PortInUse(
                f"port {port} on {HOST}, where {LISTENERS[name]} of this platform listens "
                f"(kept in {path} so that running jobs find the platform after a restart), is "
                f"in use by {_holder(port)}. Stop that process (a leftover of an earlier start "
                "of this platform?) and start again.")
    ports = {k: ports[k] for k in LISTENERS}
    if changed:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports, indent=1) + "\n")
        os.replace(tmp, path)  # never half a file
    return ports
