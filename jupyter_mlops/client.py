"""Typed async client of the control plane and of the MLflow gateway.

Used by the server extension (and later the magics) with the user's own hub token. Transport
failures become :class:`Unavailable`; error answers become the matching :mod:`core.errors`
class carrying the server's message, so a 403 from the control plane is a 403 in the lab.
"""
from __future__ import annotations

import httpx

from .core import errors

_BY_STATUS = {
    400: errors.InvalidInput,
    401: errors.NotAuthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
}


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
        message = body.get("message") or body.get("error") or resp.text
    except ValueError:
        message = resp.text[:500] or resp.reason_phrase
    cls = _BY_STATUS.get(resp.status_code)
    if cls is None:
        cls = errors.Unavailable if resp.status_code >= 500 else errors.InvalidInput
    raise cls(f"{what}: {message}")


class _HubTokenClient:
    name = "service"

    def __init__(self, base_url: str, token: str, timeout: float = 10.0):
        if not base_url:
            raise errors.Unavailable(f"{self.name} URL is not configured")
        self.base_url = base_url.rstrip("/") + "/"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"token {token}"} if token else {},
            timeout=timeout,
        )

    async def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            resp = await self._http.request(method, path.lstrip("/"), **kw)
        except httpx.TransportError as e:
            raise errors.Unavailable(
                f"{self.name} unreachable at {self.base_url} ({e.__class__.__name__}: {e})"
            ) from None
        _raise_for(resp, self.name)
        return resp

    async def aclose(self) -> None:
        await self._http.aclose()


class ControlPlaneClient(_HubTokenClient):
    name = "control plane"

    async def status(self) -> dict:
        return (await self.request("GET", "api/status")).json()


class MlflowGatewayClient(_HubTokenClient):
    name = "tracking server"

    async def version(self) -> str:
        return (await self.request("GET", "version")).text.strip()
