"""Schema fuzzing: requests generated from docs/openapi.yaml against the running platform.

Every operation of the control plane and of the server extension gets requests that fit the
document (positive) and requests that break it (negative: wrong types, missing fields, values
out of range), sent as a real data scientist with a started JupyterLab server; the control
plane's reads are also sent as the administrator (the data scientist meets 403 on the
administrator's routes). Each answer must

* never be a 5xx (bad input is a JSON 4xx with a reason);
* have a status code, a content type and a body the document states for that operation.

Hypothesis samples: each operation gets a share of the budget, so a run stays within a few
minutes on a loaded two-core machine; the number of cases sent is printed.
"""
from __future__ import annotations

import copy
import math
from http.cookiejar import DefaultCookiePolicy
import time
from pathlib import Path

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml").read_text())
USER, PASSWORD = "fuzzy", "fuzz-pass-1"  # a data scientist: no manager or admin role
MIN_CASES = 1000
BUDGET_S = 150  # generation stops taking new operations' full share past this
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzer(platform):
    """The user's server, a dataset and a finished job of theirs, so that half of the cases
    name things that exist and reach the code behind the lookups."""
    platform.add_user(USER, PASSWORD)
    platform.start_server(USER)
    token = platform.token(USER)
    r = platform.api("POST", "/services/mlops/api/datasets", token, json={"name": "fuzz-data"})
    assert r.status_code in (201, 409), r.text
    (platform.data_dir / "users" / USER / "fuzz_job.py").write_text("print('fuzz')\n")
    r = platform.api("POST", "/services/mlops/api/jobs", token, json={"path": "fuzz_job.py"})
    assert r.status_code == 201, r.text
    known = {"/datasets/{name}": ("name", "fuzz-data"), "/projects/{name}": ("name", "default"),
             "/jobs/{id}": ("id", r.json()["id"]), "{ref}": ("ref", "latest"),
             "/deployment-policies/{project}": ("project", "default")}
    session = requests.Session()
    # Token authentication only: a cookie a response sets must not change who calls next.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return platform, session, {"Authorization": f"token {token}"}, known


def _operations():
    # Without the security requirement: every case carries the user's token (negative cases
    # would otherwise drop it and only meet the 401 that tests/test_openapi.py checks already).
    spec = copy.deepcopy(SPEC)
    spec.pop("security", None)
    schema = schemathesis.openapi.from_dict(spec)
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        ops.append(op)
    return ops


def _strategy(op, known: dict):
    fixed = {"user": USER} if op.path.startswith("/user/{user}/") else {}
    seeded = dict(fixed)
    for where, (name, value) in known.items():
        if where in op.path:
            seeded[name] = value
    choices = [fixed] + ([seeded] if seeded != fixed else [])
    return st.one_of(*[op.as_strategy(mode, path_parameters=params or None)
                       for params in choices
                       for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])


def test_generated_requests_get_documented_answers(fuzzer, capsys):
    platform, session, auth, known = fuzzer
    ops = _operations()
    per_op = math.ceil(MIN_CASES * 1.25 / len(ops))
    sent: list[int] = []
    failures: dict[str, str] = {}
    started = time.monotonic()

    def run(op, examples, who=auth):
        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=_strategy(op, known))
        def one(case):
            response = case.call(base_url=platform.url, session=session, headers=who,
                                 timeout=60, allow_redirects=False)
            sent.append(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS,
                                       transport_kwargs={"base_url": platform.url})
            except FailureGroup as e:
                key = f"{op.method.upper()} {op.path}: {type(e.exceptions[0]).__name__}"
                failures.setdefault(key, str(e)[:1500])

        one()

    for op in ops:
        run(op, per_op)
    # Operations without parameters have few distinct requests: top up where there is room.
    for op in sorted(ops, key=lambda o: -len(o.path)):
        if len(sent) >= MIN_CASES or time.monotonic() - started > BUDGET_S:
            break
        run(op, per_op)
    # The administrator's reads (the user meets 403 there): no side effects, a few cases each.
    admin = {"Authorization": f"token {platform.admin_token()}"}
    for op in ops:
        if op.method == "get" and op.path.startswith("/services/"):
            run(op, 4, admin)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        codes = {c: sent.count(c) for c in sorted(set(sent))}
        print(f"\nschema fuzzing: {len(sent)} cases over {len(ops)} operations in "
              f"{elapsed:.0f} s; statuses {codes}")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in sorted(failures.items()))
    assert len(sent) >= MIN_CASES, f"only {len(sent)} cases were sent"
    assert not any(c >= 500 for c in sent)
