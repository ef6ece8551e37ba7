"""A run's resource samples for the job view: MLflow system metrics through the server
extension, against a real MLflow server."""
from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError


async def test_run_resources_are_its_system_metrics_over_time(jp_fetch, seeded):
    # Given a run with two CPU samples 5 s apart, a memory sample and a training metric
    client = seeded["client"]
    run = client.create_run(seeded["small"], run_name="with-resources")
    rid, t0 = run.info.run_id, run.info.start_time
    client.log_metric(rid, "system/cpu_utilization_percentage", 30.0, timestamp=t0 + 1000)
    client.log_metric(rid, "system/cpu_utilization_percentage", 90.0, timestamp=t0 + 6000)
    client.log_metric(rid, "system/system_memory_usage_megabytes", 512.0, timestamp=t0 + 1000)
    client.log_metric(rid, "loss", 0.1, timestamp=t0 + 1000)
    # When the job view asks for the run's resources
    resp = await jp_fetch("mlops", "api", "runs", rid, "resources")
    body = json.loads(resp.body)
    # Then it gets the system metrics only, as [seconds since the start, value] in time order
    assert body == {"run_id": rid, "metrics": {
        "cpu_utilization_percentage": [[1.0, 30.0], [6.0, 90.0]],
        "system_memory_usage_megabytes": [[1.0, 512.0]]}}
    # and a run MLflow does not know is a 404 with the reason
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("mlops", "api", "runs", "0" * 32, "resources")
    assert info.value.code == 404, info.value.response.body
