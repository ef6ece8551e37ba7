"""Tokens of a job's user from the hub's REST API (``core.jobs.tracking.TokenIssuer``).

The control plane asks with its own service token, through the client package's hub client
(:class:`~jupyter_mlops.client.AsyncHub`: the same configuration, transport and error mapping
as every other hub call of the control plane); the scopes and why they are what they are are in
``core.jobs.tracking``.
"""
from __future__ import annotations

from ..client import AsyncHub
from ..client.catalog_calls import seg
from ..core.errors import Forbidden, MlopsError, NotFound, Unavailable
from ..core.jobs.tracking import JOB_SCOPES


class HubTokenIssuer:
    """Tokens from the hub's REST API, requested with the control plane's service token.

    Sent with :meth:`AsyncHub.request`, not one of :class:`AsyncHub`'s calls: it has no token
    calls, and its calls read any refusal as the hub being unavailable, while here the hub's
    403 has a meaning of its own (the user is a hub administrator) that the job must report.
    """

    def __init__(self, hub_api_url: str, service_token: str):
        self.hub_api_url = hub_api_url
        self.service_token = service_token

    def _hub(self) -> AsyncHub:
        # A client per call: tokens are minted a few times per job, and no connection is
        # left open between jobs.
        return AsyncHub(self.hub_api_url, self.service_token, timeout=10)

    async def mint(self, user: str, lifetime: int, note: str,
                   scopes: list[str] | None = None) -> tuple[str, str]:
        # expires_in null, not 0: 0 would slip past the hub's token_expires_in_max_seconds.
        body = {"note": note, "expires_in": int(lifetime) or None,
                "scopes": list(scopes or JOB_SCOPES)}
        try:
            async with self._hub() as hub:
                r = await hub.request("POST", f"users/{seg(user)}/tokens", json=body)
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
            async with self._hub() as hub:
                await hub.request("DELETE", f"users/{seg(user)}/tokens/{seg(token_id)}")
        except NotFound:  # expired or revoked already: nothing left to revoke
            return
