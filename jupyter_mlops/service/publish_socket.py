"""The control plane's end of same-machine publishing (protocol in ``backends.fdpass``).

A ``SOCK_SEQPACKET`` unix socket, mode 0666 in a directory of mode 0711: any local account can
connect if it knows the path, none can list or replace it, and every conversation starts with
the caller's hub token, checked by the hub exactly as for an HTTP request, then the same
publish-check (project membership) as ``GET .../publish-check``. Each connection gets a
thread: copying is blocking file I/O that releases the GIL, so two publishing threads use two
cores, and the event loop only answers the token question.

Threads are bounded: a connection that never authenticates is dropped after 30 s, and each hub
user holds at most ``max_connections_per_user`` conversations at once (a publisher uses up to
8). Beyond that the caller is told the socket is busy and its publisher sends that batch over
HTTP instead, so a user whose descriptors never answer (a hung network mount) ties up only
their own share of threads.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import threading
from pathlib import Path

from jupyterhub.services.auth import HubOAuth, check_scopes
from traitlets import Integer, Unicode
from traitlets.config import Configurable

from ..backends import fdpass
from ..core import errors, roles
from ..core.datasets.manifest import check_hash
from ..core.datasets.uploads import known_to
from ..core.roles import Caller

log = logging.getLogger("jupyter_mlops.service")

READ_BUFFER = 1 << 20


class PublishSocket(Configurable):
    """Same-machine publishing: descriptors of files the publisher opened, over a unix socket."""

    path = Unicode(
        help="""Unix socket at which publishers on this machine pass open files to the control
        plane (``SCM_RIGHTS``) instead of sending their bytes over HTTP. Its directory is made
        mode 0711. Empty: ``<data_dir>/run/publish.sock``. Only served with a local-directory
        store; user servers learn the path from ``$JUPYTER_MLOPS_PUBLISH_SOCKET`` and fall back
        to HTTP when it is not reachable.""",
    ).tag(config=True)

    max_connections_per_user = Integer(
        16,
        help="""Publishing conversations one hub user may hold at once (each holds a thread of
        the control plane while it copies). Beyond it the publisher falls back to HTTP.""",
    ).tag(config=True)

    def start(self, context, loop: asyncio.AbstractEventLoop) -> str:
        """Listen (in a daemon thread); returns the socket path."""
        self.context, self.loop = context, loop
        self._held: dict[str, int] = {}  # hub user -> conversations open
        self._held_lock = threading.Lock()
        path = Path(self.path or context.data_dir / "run" / "publish.sock")
        path.parent.mkdir(parents=True, exist_ok=True)
        # traverse only: a user can reach the socket but neither list nor replace anything here
        os.chmod(path.parent, 0o711)
        path.unlink(missing_ok=True)  # left by a control plane that died
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)  # connecting is open; authorisation is the hub token inside
        self.sock.listen(16)
        self.path_bound = str(path)
        threading.Thread(target=self._accept, name="publish-socket", daemon=True).start()
        return self.path_bound

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), name="publish-conn",
                             daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        Path(self.path_bound).unlink(missing_ok=True)

    def _authenticate(self, hello: dict) -> Caller:
        token = hello.get("token")
        if hello.get("op") != "hello" or not isinstance(token, str) or not token:
            raise errors.NotAuthenticated("start with a hello carrying a hub API token")
        future = asyncio.run_coroutine_threadsafe(
            HubOAuth.instance().user_for_token(token, sync=False), self.loop)
        model = future.result(timeout=30)
        if not model:
            raise errors.NotAuthenticated("the hub did not accept this token")
        if not check_scopes({roles.USE}, set(model.get("scopes") or ())):
            raise errors.Forbidden(f"{model['name']} lacks the scope {roles.USE}")
        caller = Caller.from_hub_model(model)
        dataset, project = hello.get("dataset"), hello.get("project")
        if not isinstance(dataset, str) or (project is not None and not isinstance(project, str)):
            raise errors.InvalidInput("hello needs the dataset's name (and optionally project)")
        self.context.datasets.check_publish(caller, dataset, project)
        with self._held_lock:
            if self._held.get(caller.name, 0) >= self.max_connections_per_user:
                raise fdpass.Busy(f"{caller.name} already has {self.max_connections_per_user} "
                                  "publishing connections open")
            self._held[caller.name] = self._held.get(caller.name, 0) + 1
        return caller

    def _store_objects(self, caller: Caller, msg: dict, fds: list[int],
                       buf: bytearray) -> dict:
        """``objects`` (hashes claimed, each verified) or ``ingest`` (hashed here while
        copied: the one-pass publish of files the publisher has not read).

        Every object is verified whether or not the store held it, and the counts (and
        ``new``) say what is new to the caller (not known to them before: see
        ``core.datasets.uploads``), never what is new to the shared store."""
        items = msg.get("items")
        op = msg.get("op")
        if op not in ("objects", "ingest") or not isinstance(items, list):
            raise errors.InvalidInput("expected an objects or ingest message")
        if len(items) != len(fds):
            raise errors.InvalidInput(f"{len(items)} objects announced but {len(fds)} file "
                                      "descriptors passed: each object needs its descriptor")
        limit = self.context.settings.get("max_object_bytes", 512 * 2**20)
        store = self.context.store
        hashes, sizes = [], {}
        for it, fd in zip(items, fds):
            if not isinstance(it, dict) or not isinstance(it.get("size"), int) \
                    or isinstance(it["size"], bool) or it["size"] < 0:
                raise errors.InvalidInput("each object needs a size (and, to store it under a "
                                          "known name, a hash)")
            what = "a file" if op == "ingest" else f"object {check_hash(it.get('hash'))}"
            if it["size"] > limit:
                raise errors.PayloadTooLarge(f"{what} of {it['size']} bytes is over the "
                                             f"limit of {limit // 2**20} MB")
            if op == "ingest":
                h, _ = store.ingest_fd(fd, it["size"], buf)
            else:
                h = it["hash"]
                store.put_fd(h, fd, it["size"], buf)
            hashes.append(h)
            sizes[h] = it["size"]
        catalog = self.context.datasets
        new = sorted(set(hashes) - known_to(catalog, caller, hashes))
        catalog.uploads.record(caller.name, hashes)
        reply = {"ok": True, "stored": len(new), "bytes": sum(sizes[h] for h in new)}
        if op == "ingest":
            reply.update(hashes=hashes, new=new)
        return reply

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray(READ_BUFFER)
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  struct.calcsize("3i")))[1]
        conn.settimeout(30)  # a connection that never says who it is does not hold a thread
        with conn:
            self._converse(conn, uid, buf)

    def _converse(self, conn: socket.socket, uid: int, buf: bytearray) -> None:
        caller = None  # once authenticated, the connection holds one of the caller's slots
        try:
            while True:
                fds: list[int] = []
                try:
                    msg, fds = fdpass.recv(conn)
                    if msg is None:
                        return
                    if caller is None:
                        if fds:
                            raise errors.NotAuthenticated("authenticate before passing files")
                        caller = self._authenticate(msg)
                        conn.settimeout(3600)  # the publisher may hash for a while first
                        log.info("publish socket: %s (uid %d) publishing to %s", caller.name,
                                 uid, msg.get("dataset"))
                        reply = {"ok": True, "user": caller.name}
                    else:
                        reply = self._store_objects(caller, msg, fds, buf)
                except errors.MlopsError as e:
                    log.info("publish socket (uid %d, %s): %s", uid,
                             caller.name if caller else "unauthenticated", e.message)
                    reply = fdpass.error_reply(e)
                except OSError:
                    return  # the publisher went away; objects stored so far stay (unreferenced)
                except Exception:  # never let a bad request kill the thread silently
                    log.exception("publish socket failed")
                    reply = fdpass.error_reply(errors.Unavailable(
                        "internal error; see the control plane log"))
                finally:
                    fdpass.close_all(fds)
                try:
                    fdpass.send(conn, reply)
                except OSError:
                    return
                if not reply["ok"]:
                    return  # one refusal ends the conversation
        finally:
            if caller is not None:
                with self._held_lock:
                    self._held[caller.name] -= 1


def serve_publish_socket(parent, context, loop) -> str | None:
    """Start the socket when the store is a local directory (returns its path). With S3 the
    control plane would only re-upload what it reads, so publishers stay on HTTP: no socket,
    and a stale one from an earlier local-store run is removed so clients fall back at once."""
    from ..backends.store import LocalStore

    sock = PublishSocket(parent=parent)
    if isinstance(context.store, LocalStore):
        return sock.start(context, loop)
    Path(sock.path or context.data_dir / "run" / "publish.sock").unlink(missing_ok=True)
    return None
