"""A small HTTP/1.1 server on asyncio's protocol API, built for one job: many short requests.

Why not a web framework: the request path of a model server is parse, predict, answer. A
framework's per-request machinery (ASGI scopes, middleware, a task per request) costs more than a
small model's prediction; here a request is a few callbacks on the event loop and no task.

Why not uvicorn: measured behind the same app (``benchmarks/serving.py --against``, see
docs/deployments.md), uvicorn with httptools served 0.66-0.72x the requests per second of this
server at 1.2-1.5x its p99, and its httptools protocol has no limit on a request's headers.

Supported: keep-alive, ``Content-Length`` bodies, ``Expect: 100-continue``, ``Connection:
close``; pipelined requests are answered in order, one at a time. Not supported (answered with
an error, never misread): chunked request bodies (411).

Limits, each answered with a JSON error and a closed connection: a body over ``max_body``
(413, refused from its ``Content-Length`` before it is read), a request head over
``MAX_HEADER_BYTES`` or ``MAX_HEADERS`` lines (431), a request not complete within
``request_timeout`` seconds of its first byte (408: a client trickling a request, the
"slowloris" attack, cannot hold a connection). A connection with no request for
``idle_timeout`` seconds is closed. Timeouts are checked by :func:`close_expired`, once a
second for all connections, so the request path sets a number and arms no timer.
"""
from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import Callable

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100

_REASONS = {s.value: s.phrase for s in HTTPStatus}


class Request:
    __slots__ = ("method", "path", "query", "headers", "body")

    def __init__(self, method: str, target: str, headers: dict, body: bytes):
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.body = body


def response_bytes(status: int, body: bytes, content_type: str = "application/json",
                   close: bool = False, headers: dict | None = None) -> bytes:
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n")
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode("latin-1") + b"\r\n" + body


# A handler gets the request and a ``respond(status, body, content_type, headers)`` callback
# (the last two optional), and may
# call it later (after a batch ran) as long as it calls it exactly once.
Handler = Callable[[Request, Callable[[int, bytes, str], None]], None]


class HttpProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler, max_body: int, on_open=None, on_close=None,
                 request_timeout: float = 30.0, idle_timeout: float = 60.0):
        self.handler = handler
        self.max_body = max_body
        self.on_open, self.on_close = on_open, on_close
        self.request_timeout, self.idle_timeout = request_timeout, idle_timeout
        # When this connection is closed unless something happens first; ``receiving``: a
        # request is being received (408 then), else the connection is idle. None while a
        # request is being answered (a model may take its time).
        self.deadline: float | None = None
        self.receiving = False
        self.buf = bytearray()
        self.transport = None
        self.head = None  # (method, target, headers, length) of the request being received
        self.busy = False  # a request is being answered; later ones wait in ``buf``
        self.keep_alive = True
        self.discard = 0  # body bytes still to swallow after an early 413

    # --- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        self._idle()
        if self.on_open:
            self.on_open(self)

    def connection_lost(self, exc):
        self.transport = None
        if self.on_close:
            self.on_close(self)

    def data_received(self, data: bytes):
        if self.discard:
            # The client is still sending a body we refused: swallow it so that it reads our
            # answer instead of a connection reset, then hang up.
            self.discard -= min(self.discard, len(data))
            if not self.discard and self.transport is not None:
                self.transport.close()
            return
        if not self.receiving and not self.busy:
            self._receiving()
        self.buf += data
        if not self.busy:
            self._advance()

    # --- timeouts ----------------------------------------------------------------------------

    def _idle(self):
        self.receiving = False
        self.deadline = time.monotonic() + self.idle_timeout

    def _receiving(self):
        self.receiving = True
        self.deadline = time.monotonic() + self.request_timeout

    def expire(self):
        """Called once the deadline passed: a request still arriving is answered 408, an
        idle connection closed."""
        if self.transport is None:
            return
        if self.receiving and not self.busy:  # (busy here: still swallowing a refused body)
            self._fail(408, f"request not received within {self.request_timeout:g} s")
        else:
            self.transport.close()

    # --- parsing -----------------------------------------------------------------------------

    def _fail(self, status: int, message: str, discard: int = 0):
        body = ('{"error_code": "BAD_REQUEST", "message": "%s"}' % message).encode()
        self.transport.write(response_bytes(status, body, close=True))
        self.buf.clear()
        self.busy = True  # nothing more is parsed from this connection
        self.discard = max(0, discard)
        if not self.discard:
            self.deadline = None
            self.transport.close()

    def _advance(self):
        while self.transport is not None and not self.busy:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                # (also when the whole head came in one read)
                if (end if end >= 0 else len(self.buf)) > MAX_HEADER_BYTES:
                    self._fail(431, "request headers too large")
                    return
                if end < 0:
                    return
                if not self._parse_head(bytes(self.buf[:end])):
                    return
                del self.buf[:end + 4]
            method, target, headers, length = self.head
            if len(self.buf) < length:
                return
            body = bytes(self.buf[:length])
            del self.buf[:length]
            self.head = None
            self.busy = True
            self.receiving = False
            self.deadline = None
            self.handler(Request(method, target, headers, body), self._respond)

    def _parse_head(self, head: bytes) -> bool:
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            self._fail(400, "malformed request line")
            return False
        if len(lines) > MAX_HEADERS + 1:
            self._fail(431, f"more than {MAX_HEADERS} request headers")
            return False
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._fail(400, "malformed header line")
                return False
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._fail(411, "chunked request bodies are not supported; send Content-Length")
            return False
        try:
            length = int(headers.get("content-length", "0"))
            if length < 0:
                raise ValueError
        except ValueError:
            self._fail(400, "invalid Content-Length")
            return False
        if length > self.max_body:
            self._fail(413,
                       f"payload of {length} bytes exceeds the limit of {self.max_body} bytes",
                       discard=length - (len(self.buf) - len(head) - 4))
            return False
        conn = headers.get("connection", "").lower()
        self.keep_alive = conn != "close" and (version == "HTTP/1.1" or conn == "keep-alive")
        if headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.head = (method, target, headers, length)
        return True

    def _respond(self, status: int, body: bytes, content_type: str = "application/json",
                 headers: dict | None = None):
        if self.transport is None:  # the client went away while its request ran
            return
        self.transport.write(response_bytes(status, body, content_type,
                                            close=not self.keep_alive, headers=headers))
        if not self.keep_alive:
            self.transport.close()
            return
        self.busy = False
        if self.buf:  # a pipelined request, already arriving
            self._receiving()
            self._advance()
        else:
            self._idle()


def close_expired(connections, now: float | None = None) -> None:
    """Expire the :class:`HttpProtocol` connections whose deadline passed at ``now``."""
    now = time.monotonic() if now is None else now
    for proto in list(connections):
        if proto.deadline is not None and proto.deadline <= now:
            proto.deadline = None
            proto.expire()
