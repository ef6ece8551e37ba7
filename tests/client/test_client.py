"""The one client against a real HTTP server: each error answer becomes the core's error with
the server's message, and the sync and async clients send what one configuration says."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jupyter_mlops.client import (AsyncControlPlane, AsyncHub, AsyncMlflowGateway,
                                  ClientConfig, ControlPlane, MlflowGateway)
from jupyter_mlops.core import errors


class _Answers(BaseHTTPRequestHandler):
    """``/svc/status/<code>/<reason>``: that status with ``{"error", "message"}``;
    ``/svc/mlflow/<code>/<error_code>``: MLflow's error shape; ``/svc/text/<code>``: plain text;
    anything else: what the request carried, as JSON."""

    seen: list[dict] = []

    def log_message(self, *args):
        pass

    def _answer(self, code: int, body: bytes, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[1:2] == ["status"]:
            reason = parts[3].replace("+", " ") if len(parts) > 3 else "Whatever"
            self._answer(int(parts[2]), json.dumps(
                {"error": reason, "message": f"the server says {parts[2]}"}).encode())
        elif parts[1:2] == ["mlflow"]:
            self._answer(int(parts[2]), json.dumps(
                {"error_code": parts[3], "message": "mlflow says no"}).encode())
        elif parts[1:2] == ["text"]:
            self._answer(int(parts[2]), b"plain trouble", "text/plain")
        else:
            seen = {"path": self.path, "authorization": self.headers.get("Authorization")}
            self._answer(200, json.dumps(seen).encode())

    do_POST = do_DELETE = do_GET


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/svc"
    httpd.shutdown()
    httpd.server_close()


STATUSES = [
    (400, "Bad Request", errors.InvalidInput),
    (401, "Unauthorized", errors.NotAuthenticated),
    (403, "Forbidden", errors.Forbidden),
    (403, "Quota Exceeded", errors.QuotaExceeded),
    (404, "Not Found", errors.NotFound),
    (409, "Conflict", errors.Conflict),
    (413, "Payload Too Large", errors.PayloadTooLarge),
    (422, "Unprocessable", errors.InvalidInput),
    (500, "Internal error", errors.Unavailable),
    (502, "Bad Gateway", errors.Unavailable),
    (503, "Service Unavailable", errors.Unavailable),
]


@pytest.mark.parametrize("code,reason,cls", STATUSES)
def test_each_error_answer_is_the_core_error_with_the_servers_message(server, code, reason,
                                                                     cls):
    with ControlPlane(server, "t0k") as cp:
        with pytest.raises(cls) as raised:
            cp.request("GET", f"status/{code}/{reason.replace(' ', '+')}")
    assert type(raised.value) is cls
    assert raised.value.message == f"control plane: the server says {code}"


def test_an_unknown_500_is_unavailable_and_plain_text_keeps_its_words(server):
    with ControlPlane(server, "t0k") as cp:
        with pytest.raises(errors.Unavailable, match="control plane: plain trouble"):
            cp.request("GET", "text/500")
        with pytest.raises(errors.InvalidInput, match="plain trouble"):
            cp.request("GET", "text/418")


async def test_mlflow_codes_and_the_async_client_map_the_same_way(server):
    async with AsyncMlflowGateway(server, "t0k") as mlflow:
        with pytest.raises(errors.Conflict, match="tracking server: mlflow says no"):
            await mlflow.request("GET", "mlflow/400/RESOURCE_ALREADY_EXISTS")
        with pytest.raises(errors.InvalidInput):
            await mlflow.request("GET", "mlflow/400/INVALID_PARAMETER_VALUE")
    with MlflowGateway(server, "t0k") as mlflow:
        with pytest.raises(errors.Conflict):
            mlflow.request("GET", "mlflow/400/RESOURCE_ALREADY_EXISTS")


async def test_an_unchecked_answer_comes_back_whatever_its_status(server):
    async with AsyncMlflowGateway(server, "t0k") as mlflow:
        r = await mlflow.request("GET", "text/500", check=False)
    assert (r.status_code, r.text) == (500, "plain trouble")


async def test_hub_calls_send_the_service_token_and_keep_the_callers_errors_apart(server):
    async with AsyncHub(server, "hubt0k") as hub:
        assert await hub.user("a b/c") == {"path": "/svc/users/a%20b%2Fc",
                                           "authorization": "token hubt0k"}
        await hub.stop_server("ann", "gpu/1")  # a DELETE that answers
    # an unknown user is the caller's NotFound; the hub refusing the platform's own token is
    # the platform being unavailable, not the caller being forbidden
    async with AsyncHub(f"{server}/status/404", "t") as hub:
        with pytest.raises(errors.NotFound, match="the hub knows no users/nobody"):
            await hub.user("nobody")
    async with AsyncHub(f"{server}/status/403", "t") as hub:
        with pytest.raises(errors.Unavailable, match="the hub refused GET users/Forbidden"):
            await hub.user("Forbidden")


async def test_sync_and_async_share_one_configuration(server):
    config = ClientConfig(server, token="s3cret", timeout=7.5)
    sync, aio = ControlPlane(config=config), AsyncControlPlane(config=config)
    try:
        # the same call of a capability, once blocking, once awaited, sends the same request
        assert sync.project("a b/c") == await aio.project("a b/c") == {
            "path": "/svc/api/projects/a%20b%2Fc", "authorization": "token s3cret"}
        # a name no URL can carry is bad input, before anything is sent
        with pytest.raises(errors.InvalidInput, match="not a valid name or version"):
            sync.dataset("cells\x1e")
        for client in (sync, aio):
            assert client.config is config
            assert client._http.timeout.read == 7.5
            assert str(client._http.base_url) == server + "/"
    finally:
        sync.close()
        await aio.aclose()


async def test_no_answer_is_unavailable_and_no_url_fails_at_once(monkeypatch):
    monkeypatch.delenv("JUPYTER_MLOPS_CONTROL_PLANE_URL", raising=False)
    with pytest.raises(errors.Unavailable, match="URL is not configured"):
        ControlPlane()
    # a port nothing listens on (the test server's own, once closed)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.server_close()
    async with AsyncControlPlane(url, "t", timeout=2) as cp:
        with pytest.raises(errors.Unavailable, match="control plane unreachable"):
            await cp.status()
