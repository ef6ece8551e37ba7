"""What a capability method returns from an answer (``parse`` of ``_send``)."""
from __future__ import annotations

import httpx


def body(resp: httpx.Response):
    """The JSON body."""
    return resp.json()


def json_object(resp: httpx.Response) -> dict:
    """The JSON body, or ``{}`` for an answer that is not JSON (a proxy's error page)."""
    if not resp.headers.get("content-type", "").startswith("application/json"):
        return {}
    return resp.json()


def key(name: str):
    """One member of the JSON body: ``key("jobs")`` of ``{"jobs": [...]}``."""
    def parse(resp: httpx.Response):
        return resp.json()[name]
    return parse


def text(resp: httpx.Response) -> str:
    return resp.text


def nothing(resp: httpx.Response) -> None:
    return None


def response(resp: httpx.Response) -> httpx.Response:
    """The answer itself (bytes, headers), for a caller that forwards it."""
    return resp
