"""One transport for every client of the platform, synchronous and asynchronous.

:class:`ClientConfig` holds what both flavours share (base URL, token header, timeout, TLS
verification or a CA bundle, an optional unix socket) and builds the keyword arguments of
``httpx.Client`` and ``httpx.AsyncClient`` from the same place. :class:`SyncTransport` and
:class:`AsyncTransport` send requests and turn failures into the core's errors
(:mod:`.error_mapping`); the capability classes (:mod:`.catalog_calls` and siblings) describe
each call once and run over either.

A capability method calls ``self._send(method, path, parse, **httpx_kwargs)``: over the
synchronous transport that returns ``parse(response)``, over the asynchronous one a coroutine
of it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx

from ..core import errors
from .error_mapping import raise_for_response, transport_error

CONTROL_PLANE_URL_ENV = "JUPYTER_MLOPS_CONTROL_PLANE_URL"  # set by the spawner
MLFLOW_URL_ENV = "MLFLOW_TRACKING_URI"  # set by the spawner (the hub-authenticated gateway)
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # the user server's own token (only its user's scopes)


@dataclass(frozen=True)
class ClientConfig:
    """How to reach one server of the platform; the same for the sync and async clients.

    ``verify``: ``True`` (system trust, ``$SSL_CERT_FILE`` honoured by httpx), ``False``, or
    the path of a CA bundle (a lab's own certificate authority). ``uds``: a unix socket to
    connect through instead of TCP (the URL's host is then only a name).
    """

    base_url: str
    token: str = ""
    timeout: float = 30.0
    verify: bool | str = True
    uds: str | None = None
    name: str = "control plane"
    max_connections: int = 16
    headers: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.base_url:
            raise errors.Unavailable(
                f"{self.name} URL is not configured: run inside a jupyter-mlops server or "
                "pass base_url")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/") + "/")

    @classmethod
    def from_env(cls, base_url: str | None = None, token: str | None = None, *,
                 url_env: str = CONTROL_PLANE_URL_ENV, **kw) -> "ClientConfig":
        """``base_url`` and ``token``, or inside a user server what the spawner set
        (``$JUPYTER_MLOPS_CONTROL_PLANE_URL`` or ``$MLFLOW_TRACKING_URI``, and
        ``$JUPYTERHUB_API_TOKEN``)."""
        return cls(base_url or os.environ.get(url_env, ""),
                   token if token is not None else os.environ.get(TOKEN_ENV, ""), **kw)

    def httpx_options(self, asynchronous: bool) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client`` (or ``httpx.AsyncClient``)."""
        limits = httpx.Limits(max_connections=self.max_connections)
        kind = httpx.AsyncHTTPTransport if asynchronous else httpx.HTTPTransport
        headers = {**self.headers}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        return {"base_url": self.base_url, "headers": headers, "timeout": self.timeout,
                "transport": kind(verify=self.verify, uds=self.uds, limits=limits)}


def _json(resp: httpx.Response):
    return resp.json()


def _params(params: dict, page_token: str | None) -> dict:
    """Query parameters without the empty ones (MLflow reads ``""`` as a value)."""
    return {k: v for k, v in {**params, "page_token": page_token}.items()
            if v is not None and v != ""}


class SyncTransport:
    """Blocking requests (a kernel, a script, the CLI, a worker thread)."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self.name = config.name
        self.base_url = config.base_url
        self._http = httpx.Client(**config.httpx_options(asynchronous=False))

    def request(self, method: str, path: str, *, check: bool = True, **kw) -> httpx.Response:
        """The answer of ``method path`` (relative to the base URL); an error answer raises
        its core error (unless ``check`` is false: then the caller reads the status), no
        answer raises :class:`~jupyter_mlops.core.errors.Unavailable`."""
        try:
            resp = self._http.request(method, path.lstrip("/"), **kw)
        except httpx.HTTPError as e:
            raise transport_error(e, self.name, self.base_url) from None
        return raise_for_response(resp, self.name) if check else resp

    def _send(self, method: str, path: str, parse: Callable = _json, **kw):
        return parse(self.request(method, path, **kw))

    def _pages(self, method: str, path: str, key: str, params: dict) -> list:
        """Every item under ``key`` of a paged answer (``next_page_token``)."""
        out, token = [], None
        while True:
            page = self.request(method, path, params=_params(params, token)).json()
            out.extend(page.get(key, []))
            token = page.get("next_page_token")
            if not token:
                return out

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTransport:
    """Requests on the running event loop (the server extension, the spawner)."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self.name = config.name
        self.base_url = config.base_url
        self._http = httpx.AsyncClient(**config.httpx_options(asynchronous=True))

    async def request(self, method: str, path: str, *, check: bool = True,
                      **kw) -> httpx.Response:
        """As :meth:`SyncTransport.request`, awaited."""
        try:
            resp = await self._http.request(method, path.lstrip("/"), **kw)
        except httpx.HTTPError as e:
            raise transport_error(e, self.name, self.base_url) from None
        return raise_for_response(resp, self.name) if check else resp

    async def _send(self, method: str, path: str, parse: Callable = _json, **kw):
        return parse(await self.request(method, path, **kw))

    async def _pages(self, method: str, path: str, key: str, params: dict) -> list:
        out, token = [], None
        while True:
            page = (await self.request(method, path, params=_params(params, token))).json()
            out.extend(page.get(key, []))
            token = page.get("next_page_token")
            if not token:
                return out

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
