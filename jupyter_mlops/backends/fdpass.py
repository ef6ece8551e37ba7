"""Publishing on the same machine: open file descriptors passed over a unix socket.

When the publisher (a user's server or kernel) and the control plane share a machine, copying
every byte through HTTP costs four copies (read, send, receive, write). Instead the publisher
opens each file itself, so the kernel checks the user's own permissions and the control plane
never walks a path (no symlink or permission games), and passes the descriptors
(``SCM_RIGHTS``) in batches. The control plane reads each descriptor once, hashing the same
buffer it writes into the store, and keeps the object only if it hashes to the name claimed.

The socket is ``SOCK_SEQPACKET``: one message is one JSON object plus its descriptors, with
boundaries kept, so descriptors can never be attached to the wrong message.

Conversation (every reply is ``{"ok": true, ...}`` or ``{"ok": false, "status", "message"}``,
with ``"busy": true`` when the control plane holds as many of the user's conversations as it
allows: the publisher then sends over HTTP instead)::

    -> {"op": "hello", "token": HUB_TOKEN, "dataset": NAME, "project": PROJECT|null}
    <- {"ok": true, "user": NAME}           (the token and the publish-check, as over HTTP)
    -> {"op": "objects", "items": [{"hash", "size"}, ...]} + one descriptor per item
    <- {"ok": true, "stored": N, "bytes": B}
    -> {"op": "ingest", "items": [{"size"}, ...]} + one descriptor per item
    <- {"ok": true, "hashes": [H, ...], "new": [H stored now, ...], "stored": N, "bytes": B}
    ...

``ingest`` is the one-pass publish of files no stat cache remembers: the control plane hashes
each file while copying it into the store and answers the hashes, so the publisher never reads
those files itself.

The protocol carries no path at all: a user can only make the control plane read what the user
could open. Where the socket is unreachable (Kubernetes, another machine, an S3 store, whose
control plane does not listen) publishing falls back to HTTP.
"""
from __future__ import annotations

import json
import os
import socket
import threading
from typing import Callable

from ..core import errors

SOCKET_ENV = "JUPYTER_MLOPS_PUBLISH_SOCKET"
MAX_FDS = 128  # per message; the kernel's limit is 253 (SCM_MAX_FD)
MAX_MESSAGE = 64 * 1024  # 128 items of ~90 bytes fit with room to spare

_BY_STATUS = {400: errors.InvalidInput, 401: errors.NotAuthenticated, 403: errors.Forbidden,
              404: errors.NotFound, 409: errors.Conflict, 413: errors.PayloadTooLarge}


class Busy(errors.Unavailable):
    """The control plane holds as many of this user's conversations as it allows."""


def send(sock: socket.socket, obj: dict, fds=()) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise errors.InvalidInput("publish socket message too large")
    socket.send_fds(sock, [data], list(fds)) if fds else sock.sendall(data)


def recv(sock: socket.socket) -> tuple[dict | None, list[int]]:
    """One message and the descriptors that came with it; ``(None, [])`` at the end.

    Malformed input raises :class:`InvalidInput` after closing any descriptor received, so a
    bad client cannot leak descriptors into the control plane.
    """
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE + 1, MAX_FDS)
    try:
        if not data and not fds:
            return None, []
        if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC) or len(data) > MAX_MESSAGE:
            raise errors.InvalidInput(f"publish socket message too large (at most {MAX_FDS} "
                                      f"descriptors and {MAX_MESSAGE} bytes)")
        try:
            obj = json.loads(data)
        except ValueError:
            raise errors.InvalidInput("publish socket message is not JSON") from None
        if not isinstance(obj, dict):
            raise errors.InvalidInput("publish socket message must be a JSON object")
        return obj, fds
    except BaseException:
        close_all(fds)
        raise


def close_all(fds) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def error_reply(e: errors.MlopsError) -> dict:
    reply = {"ok": False, "status": e.status, "message": e.message}
    if isinstance(e, Busy):
        reply["busy"] = True
    return reply


def _check(reply: dict | None) -> dict:
    if reply is None:
        raise errors.Unavailable("the control plane closed the publish socket")
    if not reply.get("ok"):
        if reply.get("busy"):
            raise Busy(f"control plane: {reply.get('message')}")
        status = int(reply.get("status") or 500)
        cls = _BY_STATUS.get(status, errors.Unavailable)
        raise cls(f"control plane: {reply.get('message') or 'publish refused'}")
    return reply


def connect(path: str, timeout: float = 600.0) -> socket.socket | None:
    """A connection to the control plane's publish socket, or None when there is none here
    (no such file, nobody listening, not allowed to connect): the caller then uses HTTP."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    return s


class FdPublisher:
    """An object sink (``core.datasets.folder.ObjectSink``) passing descriptors to the control
    plane; ``missing`` goes through ``http`` (one request), content through the socket, one
    connection per uploading thread at a time (taken from a pool) so batches are copied in
    parallel."""

    def __init__(self, path: str, token: str, dataset: str, project: str | None, http):
        self.path, self.token, self.dataset, self.project = path, token, dataset, project
        self.http = http
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self.http_batches = 0  # sent over HTTP because the socket was busy

    def open(self) -> bool:
        """Connect and authenticate once; False if the socket is not reachable or busy (use
        HTTP). Refusals (a bad token, no membership) raise: HTTP would refuse the same way."""
        s = self._sock(required=False)
        if s is None:
            return False
        self._release(s)
        return True

    def _release(self, s: socket.socket) -> None:
        with self._lock:
            self._idle.append(s)

    def _sock(self, required: bool = True) -> socket.socket | None:
        """An authenticated connection; ``None`` when the control plane is busy for this user
        (or, unless ``required``, unreachable)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        s = connect(self.path)
        if s is None:
            if required:
                raise errors.Unavailable(f"publish socket {self.path} is not reachable")
            return None
        try:
            send(s, {"op": "hello", "token": self.token, "dataset": self.dataset,
                     "project": self.project})
            _check(recv(s)[0])
        except Busy:
            s.close()
            return None
        except OSError as e:
            s.close()
            if required:
                raise errors.Unavailable(f"publish socket {self.path}: {e}") from None
            return None
        except BaseException:
            s.close()
            raise
        return s

    def missing(self, hashes: list[str]) -> set[str]:
        return self.http.missing(hashes)

    def put_file(self, h: str, path: str) -> None:
        self.put_batch([(h, path, os.path.getsize(path))])

    def put_batch(self, items: list, sent: Callable[[int], None] | None = None) -> dict:
        """Open each file (``(hash, path, size)``) as this user and pass the descriptors;
        over HTTP when the control plane has no connection to spare for this user."""
        sock = self._sock()
        if sock is None:
            self.http_batches += 1
            return self.http.put_batch(items, sent)
        try:
            out = self._put(sock, items, sent)
        except OSError as e:  # the control plane went away mid-publish
            sock.close()
            raise errors.Unavailable(f"publish socket {self.path}: {e}; publish again") from None
        except BaseException:
            sock.close()  # the conversation ended with the refusal
            raise
        self._release(sock)
        return out

    def _put(self, sock: socket.socket, items: list, sent) -> dict:
        stored = nbytes = 0
        for i in range(0, len(items), MAX_FDS):
            chunk = items[i:i + MAX_FDS]
            reply = self._send_files(sock, {"op": "objects", "items": [
                {"hash": h, "size": size} for h, _, size in chunk]}, [p for _, p, _ in chunk])
            stored += reply["stored"]
            nbytes += reply["bytes"]
            if sent:
                for _, _, size in chunk:
                    sent(size)
        return {"stored": stored, "bytes": nbytes}

    def ingest_batch(self, items: list[tuple[str, int]]) -> list[tuple[str, bool]]:
        """One pass for files not hashed yet (``(path, size)``): the control plane hashes each
        while copying it into the store; ``(hash, stored)`` per file. When it has no
        connection to spare for this user, the files are hashed here and sent over HTTP."""
        sock = self._sock()
        if sock is None:
            from ..core.datasets.folder import hash_file

            hashed = [(hash_file(path), path, size) for path, size in items]
            missing = self.http.missing(sorted({h for h, _, _ in hashed}))
            todo = {h: (h, p, n) for h, p, n in hashed if h in missing}
            if todo:
                self.http_batches += 1
                self.http.put_batch(list(todo.values()))
            return [(h, h in todo) for h, _, _ in hashed]
        try:
            out = []
            for i in range(0, len(items), MAX_FDS):
                chunk = items[i:i + MAX_FDS]
                reply = self._send_files(sock, {"op": "ingest", "items": [
                    {"size": size} for _, size in chunk]}, [p for p, _ in chunk])
                hashes = reply.get("hashes")
                if not isinstance(hashes, list) or len(hashes) != len(chunk):
                    raise errors.Unavailable("the control plane answered an ingest without "
                                             "its hashes")
                stored = set(reply.get("new") or [])
                out += [(h, h in stored) for h in hashes]
        except OSError as e:
            sock.close()
            raise errors.Unavailable(f"publish socket {self.path}: {e}; publish again") from None
        except BaseException:
            sock.close()
            raise
        self._release(sock)
        return out

    def _send_files(self, sock: socket.socket, msg: dict, paths: list[str]) -> dict:
        fds: list[int] = []
        try:
            for path in paths:
                try:
                    fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                except OSError as e:
                    raise errors.InvalidInput(
                        f"cannot open {os.path.basename(path)}: {e.strerror}") from None
            send(sock, msg, fds)
        finally:
            close_all(fds)  # the control plane holds its own copies now
        return _check(recv(sock)[0])

    def close(self) -> None:
        with self._lock:
            socks, self._idle = self._idle, []
        for s in socks:
            s.close()
