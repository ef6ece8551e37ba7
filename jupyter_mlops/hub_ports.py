"""The platform's internal TCP addresses, chosen once per data directory and kept.

Jobs outlive restarts of the platform: a job started before a restart still reports to MLflow
through the gateway and reads the catalog through the control plane at the addresses it was
given. Those addresses therefore never change: the first start picks a port for each internal
listener below and writes them to ``<data_dir>/hub/ports.json`` (a directory only the platform
enters); every later start reuses them. A port found in use at start by anything else is an
error naming the process, never silently replaced: a job would otherwise send its requests,
hub token included, to whoever took the port.

Ports are picked below the kernel's ephemeral range, so no outgoing connection of this or any
other program is handed one of them as its source port meanwhile.
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


def _pick(taken: set[int]) -> int:
    high = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(LOWEST, high)
        if port not in taken and _bindable(port):
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {high} on {HOST}")


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
    for name in LISTENERS:
        port = ports.get(name)
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
