"""The one error hierarchy of jupyter-mlops.

Domain code raises these; exactly one place per web layer (``service.handlers.base`` and
``server.handlers``) maps them to HTTP status codes, and the UI shows ``message``.
"""
from __future__ import annotations


class MlopsError(Exception):
    """Base class. ``status`` is the HTTP status a web layer should answer with."""

    status = 500
    reason = "Internal error"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict:
        body = {"error": self.reason, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(MlopsError):
    """The caller sent something malformed or out of range."""

    status = 400
    reason = "Bad Request"


class NotAuthenticated(MlopsError):
    status = 401
    reason = "Unauthorized"


class Forbidden(MlopsError):
    """The caller is known but may not do this (missing role or scope)."""

    status = 403
    reason = "Forbidden"


class NotFound(MlopsError):
    """Absent, or not visible to the caller (we never reveal other projects' resources)."""

    status = 404
    reason = "Not Found"


class Conflict(MlopsError):
    """The resource exists already or is in a state that forbids the change."""

    status = 409
    reason = "Conflict"


class QuotaExceeded(MlopsError):
    """A GPU (or other) quota would be exceeded; the message names the quota and current use."""

    status = 403
    reason = "Quota Exceeded"


class PayloadTooLarge(MlopsError):
    status = 413
    reason = "Payload Too Large"


class Unavailable(MlopsError):
    """A component we depend on (MLflow, the store, the cluster) cannot be reached."""

    status = 503
    reason = "Service Unavailable"
