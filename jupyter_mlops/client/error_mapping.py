"""One mapping from an HTTP answer of the platform to the core's errors.

The control plane and the server extension answer errors as ``{"error": reason, "message"}``
(``core.errors.MlopsError.to_dict``); MLflow answers ``{"error_code", "message"}``. The class
comes from the reason when it names one of the core's (a 403 "Quota Exceeded" stays a
:class:`~jupyter_mlops.core.errors.QuotaExceeded`), else from the status; the message is the
server's, prefixed with who answered, so a 403 of the control plane is a 403 in the lab with
the same words.
"""
from __future__ import annotations

import httpx

from ..core import errors

BY_STATUS: dict[int, type[errors.MlopsError]] = {
    400: errors.InvalidInput,
    401: errors.NotAuthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
}


def _by_reason() -> dict[tuple[int, str], type[errors.MlopsError]]:
    # Only the classes of core.errors (a subclass elsewhere, such as a 409 of the GPU allocator,
    # shares its parent's reason); the base class is left out: a 500 means the server is not
    # well (Unavailable below).
    return {(cls.status, cls.reason): cls for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.MlopsError)
            and cls is not errors.MlopsError and cls.__module__ == errors.__name__}


BY_REASON = _by_reason()

# MLflow's own codes that mean more than their status (it answers 400 for an existing name).
BY_MLFLOW_CODE = {"RESOURCE_ALREADY_EXISTS": errors.Conflict}


def error_for(resp: httpx.Response, what: str) -> errors.MlopsError | None:
    """The core error an answer stands for (``None`` below 400). ``what`` names the server
    in the message: ``"control plane: no dataset 'cells'"``."""
    if resp.status_code < 400:
        return None
    reason = code = None
    try:
        body = resp.json()
        message = body.get("message") or body.get("error") or resp.text
        reason, code = body.get("error"), body.get("error_code")
    except (ValueError, AttributeError):
        message = resp.text[:500] or resp.reason_phrase
    cls = (BY_MLFLOW_CODE.get(code) or BY_REASON.get((resp.status_code, reason))
           or BY_STATUS.get(resp.status_code))
    if cls is None:
        cls = errors.Unavailable if resp.status_code >= 500 else errors.InvalidInput
    return cls(f"{what}: {message}")


def raise_for_response(resp: httpx.Response, what: str) -> httpx.Response:
    """``resp`` itself when it is not an error, else its core error raised."""
    error = error_for(resp, what)
    if error is not None:
        raise error
    return resp


def transport_error(e: httpx.HTTPError, what: str, base_url: str) -> errors.MlopsError:
    """A request that got no answer: a URL no name can make is bad input, anything else means
    the server cannot be reached."""
    if isinstance(e, httpx.InvalidURL):
        return errors.InvalidInput(f"not a valid name or version: {e}")
    return errors.Unavailable(
        f"{what} unreachable at {base_url} ({e.__class__.__name__}: {e})")
