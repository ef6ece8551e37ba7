"""Deployments of the control plane: serving, versions, approval, tokens, monitoring."""
from __future__ import annotations

from . import parse
from .catalog_calls import seg


class DeploymentCalls:
    def deployments(self):
        return self._send("GET", "api/deployments", parse.key("deployments"))

    def create_deployment(self, body: dict):
        return self._send("POST", "api/deployments", json=body)

    def deployment(self, name: str):
        return self._send("GET", f"api/deployments/{seg(name)}")

    def switch_deployment(self, name: str, version: str):
        return self._send("PATCH", f"api/deployments/{seg(name)}", json={"version": version})

    def delete_deployment(self, name: str):
        return self._send("DELETE", f"api/deployments/{seg(name)}", parse.nothing)

    def deployment_events(self, name: str):
        return self._send("GET", f"api/deployments/{seg(name)}/events", parse.key("events"))

    def deployment_monitoring(self, name: str, what: str, window: str | None = None,
                              body: dict | None = None):
        """``what`` is ``metrics`` (``window`` 1h, 1d or 7d), ``drift`` or ``monitoring`` (the
        input recording settings; ``body`` changes them)."""
        return self._send("PUT" if body is not None else "GET",
                          f"api/deployments/{seg(name)}/{seg(what)}",
                          params={"window": window} if window else None, json=body)

    def deployment_tokens(self, name: str):
        return self._send("GET", f"api/deployments/{seg(name)}/tokens", parse.key("tokens"))

    def create_deployment_token(self, name: str, note: str):
        return self._send("POST", f"api/deployments/{seg(name)}/tokens", json={"note": note})

    def revoke_deployment_token(self, name: str, token_id: str):
        return self._send("DELETE", f"api/deployments/{seg(name)}/tokens/{seg(token_id)}",
                          parse.nothing)

    def decide_deployment(self, name: str, decision: str, reason: str = ""):
        """``decision``: ``approve`` or ``reject`` a deploy waiting for approval."""
        return self._send("POST", f"api/deployments/{seg(name)}/{seg(decision)}",
                          json={"reason": reason} if reason else {})

    def invoke_endpoint(self, name: str, body: bytes, content_type: str):
        """POST to the deployment's stable endpoint, as an outside client would."""
        return self._send("POST", f"endpoints/{seg(name)}/invocations", content=body,
                          headers={"Content-Type": content_type})
