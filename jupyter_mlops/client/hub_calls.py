"""The JupyterHub REST API calls of the control plane (https://jupyterhub.readthedocs.io/en/
stable/reference/rest-api.html), made with the control plane's own service token over the
platform's one transport and error mapping.

The hub is the platform's own service here, not the caller: an unknown user, server or group
is :class:`~jupyter_mlops.core.errors.NotFound`, no answer is
:class:`~jupyter_mlops.core.errors.Unavailable`, and any other refusal (the service token
lacking a scope, a server still starting) is ``Unavailable`` with the hub's words, since the
person who asked did nothing wrong.
"""
from __future__ import annotations

from ..core import errors
from . import parse
from .catalog_calls import seg
from .transport import AsyncTransport, ClientConfig


class AsyncHub(AsyncTransport):
    """The hub's REST API on the event loop; ``async with AsyncHub(url, token) as hub``."""

    def __init__(self, api_url: str, token: str, timeout: float = 15.0):
        super().__init__(ClientConfig(api_url, token, timeout=timeout, name="hub"))

    async def _call(self, method: str, path: str, parse_=parse.nothing, **kw):
        try:
            return parse_(await self.request(method, path, **kw))
        except errors.NotFound:
            raise errors.NotFound(f"the hub knows no {path}") from None
        except errors.Unavailable:
            raise
        except errors.MlopsError as e:
            raise errors.Unavailable(f"the hub refused {method} {path}: {e}") from None

    async def users(self, limit: int = 1000) -> list[dict]:
        """The hub's users with their running servers."""
        data = await self._call("GET", "users", parse.body, params={
            "include_stopped_servers": "0", "limit": str(limit)})
        return data["items"] if isinstance(data, dict) else data

    async def user(self, name: str) -> dict:
        return await self._call("GET", f"users/{seg(name)}", parse.body)

    async def stop_server(self, user: str, server_name: str = "") -> None:
        """Stop ``user``'s default server, or its named server ``server_name``."""
        path = f"users/{seg(user)}/server"
        if server_name:
            path = f"users/{seg(user)}/servers/{seg(server_name)}"
        await self._call("DELETE", path)

    async def add_group_users(self, group: str, users: list[str]) -> None:
        await self._call("POST", f"groups/{seg(group)}/users", json={"users": list(users)})

    async def remove_group_users(self, group: str, users: list[str]) -> None:
        await self._call("DELETE", f"groups/{seg(group)}/users", json={"users": list(users)})
