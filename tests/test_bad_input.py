"""Bad input gets a JSON 4xx with a reason, in the control plane and in the server extension.

Each case is one a schema fuzzer once turned into a 5xx (or an HTML page, or a stored value
that broke the browser later). Sent as a data scientist with a started JupyterLab server;
every answer must be ``application/json`` with ``error`` and a ``message`` naming the reason.
"""
from __future__ import annotations

import json
import re

import pytest
import requests

from jupyter_mlops.core import json_body
from jupyter_mlops.core.errors import InvalidInput, PayloadTooLarge

USER, PASSWORD = "bertha", "bad-input-1"
CP = "/services/mlops/api"
SRV = f"/user/{USER}/mlops/api"


@pytest.fixture(scope="module")
def lab(platform):
    platform.add_user(USER, PASSWORD)
    platform.start_server(USER)
    token = platform.token(USER)

    def call(method, path, *, raw: bytes | None = None, body=None, params=None):
        headers = {"Authorization": f"token {token}"}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        return requests.request(method, platform.url + path, data=raw, json=body,
                                params=params, headers=headers, allow_redirects=False,
                                timeout=60)

    r = call("POST", f"{CP}/datasets", body={"name": "bad-input-data"})
    assert r.status_code in (201, 409), r.text
    return call


def refused(r, status: int, *reason: str) -> dict:
    """``r`` is a JSON error with ``status`` whose message holds every word of ``reason``."""
    assert r.status_code == status, f"{r.request.method} {r.url}: {r.status_code} {r.text[:300]}"
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    body = r.json()
    assert set(body) >= {"error", "message"}, body
    for word in reason:
        assert word in body["message"], f"{word!r} not in {body['message']!r}"
    return body


@pytest.mark.parametrize("base", [CP, SRV], ids=["control plane", "server extension"])
def test_body_that_is_not_utf8_is_a_400(lab, base):
    refused(lab("POST", f"{base}/jobs", raw=b'{"path": "caf\xe9.py"}'), 400, "UTF-8")


@pytest.mark.parametrize("base", [CP, SRV], ids=["control plane", "server extension"])
@pytest.mark.parametrize("doc", [b"[" * 100_000, b'{"params": ' * 200 + b"1" + b"}" * 200],
                         ids=["array", "object"])
def test_deeply_nested_json_is_a_400(lab, base, doc):
    refused(lab("POST", f"{base}/jobs", raw=doc), 400, "nested deeper")


@pytest.mark.parametrize("base", [CP, SRV], ids=["control plane", "server extension"])
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_job_params_refuse_nan_and_infinity(lab, base, number):
    raw = b'{"path": "train.py", "params": {"lr": %s}}' % number.encode()
    refused(lab("POST", f"{base}/jobs", raw=raw), 400, number[:3].lstrip("-"))
    # the jobs list stays strict JSON (a browser's JSON.parse rejects NaN)
    r = lab("GET", f"{base}/jobs")
    assert r.status_code == 200, r.text
    json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in the jobs list"))


@pytest.mark.parametrize("base", [CP, SRV], ids=["control plane", "server extension"])
def test_integer_beyond_64_bits_in_a_body_is_a_400(lab, base):
    raw = b'{"path": "train.py", "params": {"epochs": 99999999999999999999}}'
    refused(lab("POST", f"{base}/jobs", raw=raw), 400, "out of range")


@pytest.mark.parametrize("path", [
    f"{CP}/jobs/99999999999999999999", f"{CP}/jobs/99999999999999999999/logs",
    f"{CP}/sweeps/18446744073709551616", f"{CP}/pipelines/9223372036854775808",
    f"{SRV}/jobs/99999999999999999999", f"{SRV}/datasets/jobs/99999999999999999999",
])
def test_integer_beyond_64_bits_in_a_path_names_nothing(lab, path):
    refused(lab("GET", path), 404, "nothing is named")


def test_dataset_description_of_the_wrong_type_is_a_400(lab):
    r = lab("POST", f"{CP}/datasets", body={"name": "bad-input-data", "description": [None]})
    assert refused(r, 400, "'description'", "string")["details"] == {"field": "description"}


def test_version_split_of_the_wrong_type_is_a_400(lab):
    body = {"manifest": {"files": [], "split": [None]}}
    r = lab("POST", f"{CP}/datasets/bad-input-data/versions", body=body)
    assert refused(r, 400, "'manifest.split'")["details"] == {"field": "manifest.split"}


def test_version_no_url_can_carry_is_a_400(lab):
    r = lab("POST", f"{SRV}/datasets/bad-input-data/status",
            body={"folder": "", "version": "v\x1e1"})
    refused(r, 400, "not a valid name or version")


def test_model_registration_with_a_path_that_is_not_text_is_a_400(lab):
    r = lab("POST", f"{SRV}/models/register", body={"run_id": "abc", "name": "m", "path": 7})
    assert refused(r, 400, "'path'", "string")["details"] == {"field": "path"}


@pytest.mark.parametrize("route", ["experiments", "models", "experiments/0/runs"])
def test_page_token_that_mlflow_never_issued_is_a_400_not_an_outage(lab, route):
    refused(lab("GET", f"{SRV}/{route}", params={"page_token": "ünïcode"}), 400, "page_token")


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", [f"{CP}/no-such-route", f"{CP}/jobs/abc",
                                  f"{SRV}/no-such-route", f"{SRV}/runs/not.a.run",
                                  f"{SRV}/jobs/abc/cancel",
                                  "/services/mlops/endpoints/Not_A_Name/invocations"])
def test_unknown_routes_and_refused_parameters_answer_json_404(lab, method, path):
    refused(lab(method, path), 404)


@pytest.mark.parametrize("base", [CP, SRV], ids=["control plane", "server extension"])
@pytest.mark.parametrize("value", ["0\x00", "99999999999999999999", "ten"])
def test_query_value_that_is_not_a_number_in_range_is_a_400(lab, base, value):
    refused(lab("GET", f"{base}/jobs/1/logs", params={"offset": value}), 400, "offset")


def test_page_form_number_beyond_64_bits_is_refused(platform, lab):
    admin = platform.login("admin", platform.admin_password)
    page = admin.get(platform.url + "/services/mlops/admin").text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    r = admin.post(platform.url + "/services/mlops/admin/quotas",
                   data={"kind": "user", "name": USER, "gpus": str(2**70), "_xsrf": xsrf})
    assert r.status_code < 500 and "must be at most" in r.text, (r.status_code, r.text[-500:])
    quotas = platform.api("GET", f"{CP}/gpus/quotas", platform.admin_token()).json()["quotas"]
    assert USER not in [q["name"] for q in quotas]


# --- the decoder and encoder themselves ---------------------------------------------------

def test_oversized_body_is_refused_before_parsing():
    with pytest.raises(PayloadTooLarge):
        json_body.decode(b'{"a": "' + b"x" * 100 + b'"}', max_bytes=64)


@pytest.mark.parametrize("raw,reason", [
    (b'{"a": "\\u0000"}', "NUL"), (b'{"a": "\\ud800"}', "surrogate"),
    (b'{"a": ' + b"9" * 5000 + b"}", "out of range"), (b"[1, 2]", "JSON object"),
    (b'\xef\xbb\xbf{"a": 1}', "not JSON"),
])
def test_decoder_refuses_with_a_reason(raw, reason):
    with pytest.raises(InvalidInput, match=reason):
        json_body.decode(raw)


def test_encoder_never_writes_nan():
    text = json_body.encode({"a": [float("nan"), {"b": float("-inf")}], "c": 1.5, "d": [1]})
    assert json.loads(text) == {"a": [None, {"b": None}], "c": 1.5, "d": [1]}
