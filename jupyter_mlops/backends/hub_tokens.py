"""Tokens of a job's user from the hub's REST API (``core.jobs.tracking.TokenIssuer``).

The control plane asks with its own service token, through the platform's one HTTP client
(``jupyter_mlops.client``); the scopes and why they are what they are are in
``core.jobs.tracking``.
"""
from __future__ import annotations

from ..client import AsyncTransport, ClientConfig
from ..core.errors import Forbidden, MlopsError, NotFound, Unavailable
from ..core.jobs.tracking import JOB_SCOPES


class HubTokenIssuer:
    """Tokens from the hub's REST API, requested with the control plane's service token."""

    def __init__(self, hub_api_url: str, service_token: str):
        self.config = ClientConfig(hub_api_url, service_token, timeout=10, name="hub")

    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        # expires_in null, not 0: 0 would slip past the hub's token_expires_in_max_seconds.
        body = {"note": note, "expires_in": int(lifetime) or None,
                "scopes": list(scopes or JOB_SCOPES)}
        try:
            async with AsyncTransport(self.config) as hub:
                r = await hub.request("POST", f"users/{user}/tokens", json=body)
        except Forbidden:
            # The control plane's role mints tokens only for users who are not hub
            # administrators (jupyter_mlops.hub.members); a job must never act as one.
            raise Forbidden(f"the platform does not act for {user}: hub administrators' work "
                            "cannot get a token; run it from an account that is not a hub "
                            "administrator") from None
        except Unavailable:
            raise
        except MlopsError as e:
            raise Unavailable(f"the hub refused a token for {user}: {e}") from None
        got = r.json()
        return got["token"], got["id"]

    async def revoke(self, user: str, token_id: str) -> None:
        if not token_id:
            return
        try:
            async with AsyncTransport(self.config) as hub:
                await hub.request("DELETE", f"users/{user}/tokens/{token_id}")
        except NotFound:  # expired or revoked already: nothing left to revoke
            return
