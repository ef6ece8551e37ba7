"""Resource telemetry of a job: MLflow's system metrics sampled into the job's own run."""
from __future__ import annotations

import pytest

from .conftest import caller

BUSY = """
import time
t = time.monotonic()
while time.monotonic() - t < 4:  # a few samples' worth of work
    sum(i * i for i in range(10000))
print("worked", flush=True)
"""


@pytest.mark.asyncio
async def test_job_run_holds_cpu_and_memory_samples(lab, mlflow_client):
    # Given samples every second
    lab.runner.system_metrics_seconds = 1
    lab.write("bob", "busy.py", BUSY)
    # When bob's job runs for a few seconds
    job = lab.jobs.submit(caller("bob"), {"path": "busy.py", "experiment": "telemetry-test"})
    done = await lab.wait(job.id)
    assert done.state == "succeeded", done.reason
    # Then its run holds CPU and memory samples over time, under MLflow's system metrics
    run = mlflow_client.get_run(done.run_id)
    system = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage",
            "system/system_memory_usage_megabytes"} <= system, sorted(run.data.metrics)
    cpu = mlflow_client.get_metric_history(done.run_id, "system/cpu_utilization_percentage")
    assert len(cpu) >= 2 and all(0 <= m.value <= 100 for m in cpu)
