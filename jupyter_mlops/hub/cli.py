"""``jupyter-mlops``: start the whole platform on one machine.

    jupyter-mlops up [--data-dir DIR] [--port 8000] [--ip 127.0.0.1]
                     [--ssl-cert FULLCHAIN.pem --ssl-key KEY.pem]
    jupyter-mlops reset-password USER [--data-dir DIR]
    jupyter-mlops backup DEST [--data-dir DIR] [--keep N]   (while the platform runs)
    jupyter-mlops verify SRC
    jupyter-mlops restore SRC --data-dir NEW_DIR
"""
from __future__ import annotations

import argparse
import dbm
import errno
import fcntl
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import process_tree
from ..core.errors import MlopsError
from .config import REPO_ROOT

ADMIN = "admin"


class UpError(Exception):
    """A reason `up` cannot start, shown to the user as one line."""


def check_port_free(ip: str, port: int, data_dir: Path | None = None) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                raise UpError(port_in_use(ip, port, data_dir)) from None
            raise


def port_in_use(ip: str, port: int, data_dir: Path | None) -> str:
    """Why the port is taken, naming who holds it when we may see it: a process of a
    jupyter-mlops platform (which data directory) or something else."""
    where = f"port {port} on {ip} is in use"
    holder = process_tree.listener(ip, port)
    if holder is None:
        return f"{where}; choose another with --port"
    who = process_tree.describe(holder)
    platform = process_tree.platform_of(holder.pid)
    if platform and data_dir is not None and Path(platform) == data_dir:
        return (f"{where} by {who}, left running by an earlier jupyter-mlops up on "
                f"{platform} that this start could not end; end it (kill {holder.pid}) "
                "and start again")
    if platform:
        return (f"{where} by {who} of the jupyter-mlops platform on {platform}; stop that "
                "one first or choose another with --port")
    return f"{where} by {who}, not a jupyter-mlops platform; choose another with --port"


def lock_data_dir(data_dir: Path):
    """Hold an exclusive lock for as long as this process lives."""
    data_dir.mkdir(parents=True, exist_ok=True)
    f = open(data_dir / "up.lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        raise UpError(
            f"data directory {data_dir} is already in use by jupyter-mlops up ({holder}); "
            "stop it first or choose another --data-dir"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()}")
    f.flush()
    return f


def set_password(data_dir: Path, user: str, password: str) -> None:
    import bcrypt

    path = data_dir / "hub" / "passwords.dbm"
    path.parent.mkdir(parents=True, exist_ok=True)
    with dbm.open(str(path), "c", 0o600) as db:
        db[user] = bcrypt.hashpw(password.encode(), bcrypt.gensalt())


def has_password(data_dir: Path, user: str) -> bool:
    path = data_dir / "hub" / "passwords.dbm"
    try:
        with dbm.open(str(path), "r") as db:
            return user.encode() in db
    except dbm.error:
        return False


def hub_command(data_dir: Path, public_url: str, gpu_devices: str | None,
                extra_config: str | None = None, ssl_cert: str | None = None,
                ssl_key: str | None = None) -> list[str]:
    """The project's hub config with this start's settings as command-line flags."""
    config = REPO_ROOT / "hub_config" / "jupyterhub_config.py"
    cmd = [sys.executable, "-m", "jupyterhub", "-f", str(config),
           f"--MlopsHub.data_dir={data_dir}", f"--MlopsHub.public_url={public_url}"]
    if gpu_devices:
        cmd.append(f"--MlopsHub.gpu_devices={gpu_devices}")
    if extra_config:
        cmd.append(f"--MlopsHub.config_file={Path(extra_config).resolve()}")
    if ssl_cert and ssl_key:
        cmd += [f"--MlopsHub.ssl_cert={Path(ssl_cert).resolve()}",
                f"--MlopsHub.ssl_key={Path(ssl_key).resolve()}"]
    return cmd


def _answers(base_url: str, path: str = "", uds: str | None = None) -> bool:
    """Whether ``GET base_url + path`` answers 200 (``uds``: through that unix socket). Only
    "does it answer": no credentials are sent, and the certificate may name the public host,
    not the address probed here."""
    from ..client import ClientConfig, SyncTransport
    from ..core.errors import MlopsError

    config = ClientConfig(base_url, timeout=2, verify=False, uds=uds, name="probe")
    try:
        with SyncTransport(config) as probe:
            return probe.request("GET", path).status_code == 200
    except MlopsError:
        return False


def wait_until_up(url: str, mlflow_sock: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until the hub answers through the proxy and MLflow answers on its socket."""
    deadline = time.monotonic() + timeout
    waiting_for = "the hub"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UpError(f"the hub exited with status {proc.returncode} during start")
        if _answers(url):
            waiting_for = "MLflow"
            if _answers("http://localhost/services/mlflow/", "health", uds=str(mlflow_sock)):
                return
        time.sleep(0.25)
    raise UpError(f"{waiting_for} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """Stop the platform of the hub ``proc`` in order, then make sure nothing of it is left.

    The work its services started in sessions of their own (jobs, model servers) first, while
    MLflow still runs (a job ends its run as KILLED); then the hub, which stops its proxy,
    services and user servers; then whatever of the tree noted at the start is still running
    (a signal to the hub's process group would miss it all: see ``process_tree``).
    """
    family = process_tree.descendants(proc.pid)
    process_tree.end(process_tree.detached_work(proc.pid, family), process_tree.WORK_GRACE)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    process_tree.end(family)


class Interrupted(BaseException):
    """A stop signal reached ``up``: stop everything and exit 0."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)


def handle_stop_signals() -> None:
    """``up``'s own handlers for SIGINT, SIGTERM and SIGHUP, whatever it inherited.

    A background job of a non-interactive shell (``nohup ... &``, CI runners, service scripts)
    starts with SIGINT ignored, and Python then installs no KeyboardInterrupt: ``up`` would
    never react to it. Handled signals are reset to the default in the children, so the hub and
    its servers do react to theirs. SIGHUP inherited as ignored (``nohup``) stays ignored:
    whoever started ``up`` asked it to outlive the terminal.
    """
    def on_signal(signum, frame):
        raise Interrupted(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue
        signal.signal(sig, on_signal)


def ignore_stop_signals() -> None:
    """While stopping: a second Ctrl-C or SIGTERM must not cut the stop short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, lambda signum, frame: None)


def end_leftovers(data_dir: Path) -> None:
    """End what an earlier ``up`` on ``data_dir`` left running (it was killed, and its
    watcher too), saying so in one line. Call it holding the data directory's lock."""
    left = process_tree.leftovers(data_dir)
    if not left:
        return
    print(f"jupyter-mlops: an earlier `up` on {data_dir} did not stop cleanly; ending the "
          f"{len(left)} processes it left running: "
          f"{', '.join(process_tree.describe(p) for p in left)}", flush=True)
    process_tree.end(left, process_tree.HUB_GRACE)


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def tls_notice(ip: str, ssl_cert: str | None, ssl_key: str | None) -> str:
    """Why TLS settings are refused (raises ``UpError``), or a warning when plain HTTP is
    served beyond this machine ("" when there is nothing to say)."""
    if bool(ssl_cert) != bool(ssl_key):
        raise UpError("--ssl-cert and --ssl-key go together: give both")
    for flag, path in (("--ssl-cert", ssl_cert), ("--ssl-key", ssl_key)):
        if path and not Path(path).is_file():
            raise UpError(f"{flag} {path} does not exist")
    if ssl_cert:
        return ""
    try:
        loopback = ipaddress.ip_address(ip).is_loopback
    except ValueError:  # a host name
        loopback = ip == "localhost"
    if loopback:
        return ""
    return (f"WARNING: serving plain HTTP on {ip}: passwords, cookies and API tokens cross "
            "the network unencrypted. Give --ssl-cert and --ssl-key, or put a "
            "TLS-terminating proxy in front and listen on 127.0.0.1.")


def cmd_up(args) -> int:
    notice = tls_notice(args.ip, args.ssl_cert, args.ssl_key)
    if notice:
        print(f"jupyter-mlops: {notice}", file=sys.stderr, flush=True)
    handle_stop_signals()
    data_dir = Path(args.data_dir).resolve()
    lock = lock_data_dir(data_dir)  # noqa: F841 (held until exit)
    end_leftovers(data_dir)
    check_port_free(args.ip, args.port, data_dir)
    public_url = f"{'https' if args.ssl_cert else 'http'}://{args.ip}:{args.port}"
    if args.config and not Path(args.config).is_file():
        raise UpError(f"--config {args.config} does not exist")
    if args.gpu_devices:
        try:
            json.loads(args.gpu_devices)
        except ValueError as e:
            raise UpError(f"--gpu-devices is not JSON: {e}") from None

    from .upgrade import UpgradeFailed, upgrade_at_start

    try:
        upgrade_at_start(data_dir)
    except UpgradeFailed as e:
        raise UpError(str(e)) from None

    first_password = None
    if not has_password(data_dir, ADMIN):
        first_password = secrets.token_urlsafe(12)
        set_password(data_dir, ADMIN, first_password)

    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / "hub.log"
    log = open(log_path, "ab")
    print(f"jupyter-mlops: starting in {data_dir} (log: {log_path})", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        hub_command(data_dir, public_url, args.gpu_devices, args.config, args.ssl_cert,
                    args.ssl_key),
        cwd=data_dir / "hub",
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches us; we stop the hub in order
        preexec_fn=process_tree.parent_death_signal(),  # `up` killed: the hub stops too
    )
    # Ends what is left of the tree once `up` is gone, however it went.
    watcher = process_tree.start_watcher(proc.pid, data_dir, log)
    try:
        try:
            wait_until_up(f"{public_url}/hub/api/", data_dir / "mlflow" / "run" / "mlflow.sock",
                          proc, args.timeout)
        except UpError as e:
            print(tail(log_path), file=sys.stderr)
            raise e
        print(f"\njupyter-mlops is up at {public_url}/  ({time.monotonic() - t0:.1f} s)")
        if first_password:
            print(f"  administrator: {ADMIN}\n  password:      {first_password}\n"
                  "  (shown once; stored only as a bcrypt hash. Forgot it? "
                  "`jupyter-mlops reset-password admin`)")
        else:
            print(f"  administrator: {ADMIN} (password set at first start)")
        print("Press Ctrl-C to stop.", flush=True)
        proc.wait()
        print(f"jupyter-mlops: the hub exited with status {proc.returncode}; see {log_path}",
              file=sys.stderr)
        return proc.returncode or 1
    except Interrupted as e:
        ignore_stop_signals()
        print(f"\njupyter-mlops: {e}: stopping...", flush=True)
        stop(proc)
        print("jupyter-mlops: stopped.", flush=True)
        return 0
    finally:
        ignore_stop_signals()
        if proc.poll() is None:
            stop(proc)
        watcher.stdin.close()  # it ends anything the hub left (e.g. jobs) and exits
        watcher.wait()


def cmd_reset_password(args) -> int:
    data_dir = Path(args.data_dir).resolve()
    password = args.password or secrets.token_urlsafe(12)
    set_password(data_dir, args.user, password)
    print(f"new password of {args.user}: {password}")
    return 0


def cmd_gc(args) -> int:
    from ..datasets import gc_main  # the catalog client: not needed to start the platform

    return gc_main(args.url, args.token, args.delete, args.grace_hours)


class ProgressLine:
    """One line per stage on stderr, redrawn in place on a terminal (``backup``, ``verify``,
    ``restore`` of thousands of objects take a while)."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = (None, 0.0)

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not finished and stage == self.last[0] and now - self.last[1] < (0.2 if self.tty
                                                                             else 5):
            return
        self.last = (stage, now)
        filled = 20 * done // total if total else 20
        line = f"  {stage}: [{'#' * filled}{'.' * (20 - filled)}] {done}/{total}"
        if self.tty:
            print(f"\r\033[K{line}", end="\n" if finished else "", file=sys.stderr,
                  flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def dataset_store(config: str | None):
    """The S3 dataset store ``c.MlopsHub.dataset_store`` of ``up``'s ``--config`` file names,
    or None (the store is ``<data_dir>/store``)."""
    if not config:
        return None
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(config).resolve()
    if not path.is_file():
        raise UpError(f"--config {config} does not exist")
    c = PyFileConfigLoader(path.name, str(path.parent)).load_config()
    settings = dict(c.get("MlopsHub", {}).get("dataset_store", None) or {})
    if settings.get("backend", "local") != "s3":
        return None
    from ..backends.store import StoreSettings, store_from_settings

    return store_from_settings(StoreSettings(**settings), "")


def cmd_backup(args) -> int:
    from ..backends.backup import Backup

    t0 = time.monotonic()
    try:
        m = Backup(Path(args.data_dir), Path(args.dest), ProgressLine(),
                   store=dataset_store(args.config)).run(keep=args.keep)
    except KeyboardInterrupt:
        print(f"\njupyter-mlops: backup interrupted; {args.dest} still holds the snapshots it "
              "held, and the next backup starts again", file=sys.stderr)
        return 130
    c = m["counts"]
    print(f"jupyter-mlops: backup {m['snapshot']} complete in {time.monotonic() - t0:.1f} s: "
          f"{c['databases']} databases, {c['files']} files ({c['files_copied']} copied, "
          f"{c['files_linked']} unchanged), {c['objects']} dataset objects "
          f"({c['objects_copied']} new)")
    return 0


def cmd_verify(args) -> int:
    from ..backends.backup import verify

    manifest, problems = verify(Path(args.src), ProgressLine())
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    if problems:
        print(f"jupyter-mlops: the backup of {manifest['created']} is NOT whole: "
              f"{len(problems)} problems", file=sys.stderr)
        return 1
    c = manifest["counts"]
    print(f"jupyter-mlops: the backup of {manifest['created']} matches its manifest: "
          f"{c['files']} files, {c['objects']} dataset objects, "
          f"{len(manifest['databases'])} databases sound")
    return 0


def cmd_restore(args) -> int:
    from ..backends.backup import restore

    m = restore(Path(args.src), Path(args.data_dir), ProgressLine(),
                store=dataset_store(args.config))
    print(f"jupyter-mlops: restored the backup of {m['created']} into "
          f"{Path(args.data_dir).resolve()}; start it with "
          f"`jupyter-mlops up --data-dir {args.data_dir}`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jupyter-mlops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start hub, control plane and MLflow on this machine")
    up.add_argument("--data-dir", default="mlops-data",
                    help="where all state lives (default: ./mlops-data)")
    up.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    up.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    up.add_argument("--gpu-devices", default=None,
                    help='simulated GPU inventory as JSON, e.g. \'[{"name": "A100"}]\'')
    up.add_argument("--config", default=None,
                    help="extra Python config file (c.MlopsHub.*, e.g. OIDC login; "
                         "c.JupyterHub.* overrides; the control plane's c.JobSettings.*, "
                         "c.LocalDeployBackend.*...)")
    up.add_argument("--ssl-cert", default=None,
                    help="TLS certificate (PEM, full chain): serve HTTPS (with --ssl-key)")
    up.add_argument("--ssl-key", default=None, help="private key (PEM) of --ssl-cert")
    up.add_argument("--timeout", type=float, default=90, help="seconds to wait for the hub")
    up.set_defaults(func=cmd_up)
    rp = sub.add_parser("reset-password", help="set a new password for a local account")
    rp.add_argument("user")
    rp.add_argument("--password", default=None, help="default: a generated one")
    rp.add_argument("--data-dir", default="mlops-data")
    rp.set_defaults(func=cmd_reset_password)
    gc = sub.add_parser("gc", help="dataset store objects no version references "
                                   "(administrators; a dry run unless --delete)")
    gc.add_argument("--url", default="http://127.0.0.1:8000/services/mlops/",
                    help="the control plane through the hub (default: a local `up`)")
    gc.add_argument("--token", default=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
                    help="an administrator's hub API token (default: $JUPYTERHUB_API_TOKEN)")
    gc.add_argument("--delete", action="store_true", help="delete them (default: only count)")
    gc.add_argument("--grace-hours", type=float, default=24,
                    help="keep unreferenced objects younger than this (a publish may be "
                         "running); default 24")
    gc.set_defaults(func=cmd_gc)
    bk = sub.add_parser("backup", help="a consistent backup of a data directory, also while "
                                       "the platform runs (incremental; docs/operations.md)")
    bk.add_argument("dest", help="backup destination (a directory; created if missing)")
    bk.add_argument("--data-dir", default="mlops-data")
    bk.add_argument("--keep", type=int, default=0,
                    help="keep only the newest N snapshots in DEST (default 0: keep all)")
    store_help = ("the platform's --config file: with an S3 dataset store "
                  "(c.MlopsHub.dataset_store), its objects are read from / put into the bucket")
    bk.add_argument("--config", default=None, help=store_help)
    bk.set_defaults(func=cmd_backup)
    vf = sub.add_parser("verify", help="check a backup against its manifest")
    vf.add_argument("src", help="a backup destination (its newest snapshot) or one snapshot")
    vf.set_defaults(func=cmd_verify)
    rs = sub.add_parser("restore", help="restore a backup into a new, empty data directory")
    rs.add_argument("src", help="a backup destination (its newest snapshot) or one snapshot")
    rs.add_argument("--data-dir", required=True, help="new data directory (empty or absent)")
    rs.add_argument("--config", default=None, help=store_help)
    rs.set_defaults(func=cmd_restore)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UpError as e:
        print(f"jupyter-mlops: error: {e}", file=sys.stderr)
        return 2
    except MlopsError as e:  # backup, verify, restore
        print(f"jupyter-mlops: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # before anything was started
        print(f"jupyter-mlops: {e}: stopped.", file=sys.stderr)
        return 0


if __name__ == "__main__":
    sys.exit(main())
