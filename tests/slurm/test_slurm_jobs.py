"""Jobs on a real Slurm cluster: submit, GPUs as GRES, logs, queue reasons, cancel, failure,
a sweep's parallel trials, and GPU-hours from Slurm's record."""
from __future__ import annotations

import pwd
import stat

import pytest

from jupyter_mlops.backends.jobs_slurm import batch_script, sbatch_args
from jupyter_mlops.backends.slurm_records import gpus_of_tres, parse_jobcomp, parse_sacct
from jupyter_mlops.core.usage import UsageLedger
from tests.fixtures import until_async
from tests.jobs.conftest import caller

GPU_SCRIPT = """
import os, pwd, time
print("visible", os.environ.get("CUDA_VISIBLE_DEVICES"), "as",
      pwd.getpwuid(os.getuid()).pw_name, "slurm job", os.environ.get("SLURM_JOB_ID"), flush=True)
time.sleep(float(os.environ.get("HOLD", "0")) or hold)
"""


def script(hold: float) -> str:
    return GPU_SCRIPT.replace("or hold", f"or {hold}")


def test_sbatch_options_and_script():
    assert sbatch_args(job_id=7, job_dir="/shared/jobs/7", cwd="/shared/users/ann", gpus=2,
                       gpu_type="a100", cpus=4, memory="16G", time_limit=3600,
                       partition="gpu", account="lab", qos="normal",
                       extra=("--constraint=ib",)) == [
        "--parsable", "--job-name=mlops-job-7", "--output=/shared/jobs/7/output.log",
        "--chdir=/shared/users/ann", "--export=NONE", "--no-requeue", "--open-mode=append",
        "--cpus-per-task=4", "--gres=gpu:a100:2", "--mem=16G", "--time=61",
        "--partition=gpu", "--account=lab", "--qos=normal", "--constraint=ib"]
    assert "--gres=gpu:1" in sbatch_args(job_id=1, job_dir="/j", cwd="/w", gpus=1)
    assert not [a for a in sbatch_args(job_id=1, job_dir="/j", cwd="/w") if "gres" in a]
    assert batch_script(python="/opt/env/bin/python", job_dir="/shared/jobs/7").endswith(
        "set -a\n. /shared/jobs/7/env.sh\nset +a\n"
        "exec /opt/env/bin/python -m jupyter_mlops.backends.job_wrapper /shared/jobs/7\n")


@pytest.mark.asyncio
async def test_gpu_job_runs_as_its_user_with_logs_and_gpu_hours(slurm_lab):
    lab = slurm_lab
    lab.write("alice", "train.py", script(1.5))
    job = lab.jobs.submit(caller("alice"), {"path": "train.py", "gpus": 1, "gpu_type": "A100"})
    done = await lab.wait(job.id, timeout=60)
    log = lab.jobs.logs(caller("alice"), job.id)["text"]
    assert done.state == "succeeded", (done.reason, log)
    sid = done.handle["slurm_job_id"]
    # Slurm gave it one of the GRES GPUs and ran it as alice's account, in Slurm job sid
    assert f"visible 0 as {lab.accounts.name_of('alice')} slurm job {sid}" in log, log
    # the GPU type became the GRES type; the hub machine's own device stayed free
    assert "TresPerNode=gres:gpu:a100:1" in lab.cluster.scontrol("show", "job", sid)
    assert lab.devices.holders() == [] and done.gpu_indices == []
    # Slurm's record: alice's account, one GPU, and the times the runner kept
    record = parse_jobcomp(lab.cluster.jobcomp.read_text(), sid)
    assert record.state == "COMPLETED" and done.handle["accounting"]["gpus"] == 1
    assert f"UserId={lab.accounts.name_of('alice')}(" in lab.cluster.jobcomp.read_text()
    assert done.handle["accounting"]["source"] == "jobcomp"  # no slurmdbd here
    assert (done.started_at, done.finished_at) == (record.started_at, record.ended_at)
    # GPU-hours in the platform's usage are Slurm's: 1 GPU x the time it ran
    ran = record.ended_at - record.started_at
    assert ran >= 1
    assert done.handle["accounting"]["gpu_hours"] == pytest.approx(ran / 3600, abs=1e-6)
    hours = UsageLedger(lab.db).gpu_hours(0, done.finished_at + 1)
    assert hours["alice"] == pytest.approx(ran / 3600, abs=1e-4)
    # the job's environment file (its token) is gone once it ended
    assert not (lab.jobs.job_dir(job.id) / "env.sh").exists()


@pytest.mark.asyncio
async def test_exhausted_gres_wait_with_slurms_reason_and_cancel(slurm_lab):
    lab = slurm_lab
    lab.write("bob", "hold.py", script(120))
    jobs = [lab.jobs.submit(caller("bob"), {"path": "hold.py", "gpus": 1}) for _ in range(3)]
    # All three are asked of Slurm (quotas allow it); two GPUs exist, so one waits in its queue
    # with Slurm's reason, which the job shows
    get = lab.jobs.store.get

    def started(i):
        return "visible" in lab.jobs.logs(caller("bob"), i)["text"]

    def one_waits():
        now = [get(j.id) for j in jobs]
        waiting = [j for j in now if "waiting in Slurm's queue" in j.reason]
        # until Slurm's scheduler has looked at it, its reason is "None"
        if len([j for j in now if started(j.id)]) == 2 and len(waiting) == 1 \
                and "(Resources: the GPUs, CPUs or memory it asks for are in use), 1st of 1 " \
                    "waiting in partition gpu" in waiting[0].reason:
            return waiting[0]
    third = await until_async(one_waits, 40, "two jobs running in Slurm and one waiting")
    assert third.state == "running" and third.handle.get("slurm_job_id")  # submitted
    assert not started(third.id)
    # while it waits its clock does not run (time limit, GPU-hours): its start moves on
    await until_async(lambda: get(third.id).started_at > third.started_at, 10, "the start moving")
    running = [j.id for j in jobs if j.id != third.id]
    # Cancel the waiting one: it leaves Slurm's queue and never counts GPU time
    lab.jobs.cancel(caller("bob"), third.id)
    gone = await lab.wait(third.id, timeout=30)
    assert gone.state == "cancelled", gone.reason
    assert gone.started_at == gone.finished_at  # 0 GPU-hours: it never ran
    # Cancel a running one: Slurm signals the wrapper, which records the cancel
    lab.jobs.cancel(caller("bob"), running[0])
    stopped = await lab.wait(running[0], timeout=30)
    assert stopped.state == "cancelled" and "cancel" in stopped.reason, stopped.reason
    assert stopped.finished_at - stopped.started_at < 60
    # the freed GPU lets nothing else wait; the last one runs on
    assert get(running[1]).state == "running" and get(running[1]).reason == ""
    lab.jobs.cancel(caller("bob"), running[1])
    await lab.wait(running[1], timeout=30)
    await until_async(lambda: not lab.squeue(), 30, "Slurm's queue empty")


BROKEN = """
import os
log = os.path.join(os.path.dirname(os.path.dirname(__file__)), "output.log")  # JOB_DIR/snapshot/
try:
    os.unlink(log)
    os.symlink("/etc/shadow", log)
except OSError as e:
    print("cannot replace the log:", type(e).__name__, flush=True)
print("loading cells", flush=True)
raise ValueError("no annotations for plate 7")
"""


@pytest.mark.asyncio
async def test_a_failing_job_fails_with_its_reason_and_log(slurm_lab):
    lab = slurm_lab
    lab.write("carol", "broken.py", BROKEN)
    job = lab.jobs.submit(caller("carol"), {"path": "broken.py", "gpus": 1})
    done = await lab.wait(job.id, timeout=60)
    assert done.state == "failed"
    assert "ValueError" in done.reason or "exit" in done.reason, done.reason
    log = lab.jobs.logs(caller("carol"), job.id)["text"]
    assert "loading cells" in log and "no annotations for plate 7" in log
    # the log stayed root's: the job could not swap it for a link to another file
    assert "cannot replace the log: PermissionError" in log
    st = (lab.jobs.job_dir(job.id) / "output.log").lstat()
    assert st.st_uid == 0 and stat.S_ISREG(st.st_mode)
    record = parse_jobcomp(lab.cluster.jobcomp.read_text(), done.handle["slurm_job_id"])
    assert record.state == "FAILED" and record.exit_code != 0


SWEEP_TRIAL = """
import os, time
from jupyter_mlops.job_runtime import params, report
x = 0.5
x = float(params()["x"])
time.sleep(2)
report("score", x, step=0)
print("trial on GPU", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
"""


@pytest.mark.asyncio
async def test_a_sweep_runs_its_trials_in_parallel_on_slurm(slurm_lab):
    lab = slurm_lab
    lab.write("alice", "trial.py", SWEEP_TRIAL)
    sweep = lab.sweeps.create(caller("alice"), {
        "path": "trial.py", "space": "x: {type: float, low: 0.0, high: 1.0}",
        "metric": "score", "direction": "maximize", "trials": 4, "parallel": 2,
        "sampler": "random", "seed": 5, "gpus": 1})
    done = await lab.wait_group(lambda: lab.sweeps.get(caller("alice"), sweep["id"]),
                                timeout=120)
    assert done["state"] == "succeeded", done
    trials = [lab.jobs.store.get(t["job_id"]) for t in done["trials"]]
    assert len(trials) == 4 and all(t.state == "succeeded" for t in trials)
    assert done["best"]["value"] == pytest.approx(max(t.metrics["score"] for t in trials))
    # two at once on the two GPUs, by Slurm's own start and end times
    spans = sorted((t.started_at, t.finished_at) for t in trials)
    overlaps = sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
    assert overlaps >= 1, spans
    at_once = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert at_once == 2, spans
    sids = {t.handle["slurm_job_id"] for t in trials}
    assert len(sids) == 4
    users = {line.split("UserId=")[1].split("(")[0]
             for line in lab.cluster.jobcomp.read_text().splitlines()
             if line.split()[0].split("=")[1] in sids}
    assert users == {pwd.getpwnam(lab.accounts.name_of("alice")).pw_name}


@pytest.mark.asyncio
async def test_pipeline_steps_are_slurm_jobs_in_order(slurm_lab):
    lab = slurm_lab
    lab.write("carol", "prepare.py", "rows = 5\nopen('prepared.txt', 'w').write(str(rows))\n")
    lab.write("carol", "train.py", "import os\nprint('rows', open('prepared.txt').read(), "
                                   "'GPU', os.environ.get('CUDA_VISIBLE_DEVICES'))\n")
    p = lab.pipelines.create(caller("carol"), {"spec": """
name: retrain
steps:
  - {name: prepare, run: prepare.py, params: {rows: 12}}
  - {name: train, run: train.py, needs: [prepare], gpus: 1}
"""})
    done = await lab.wait_group(lambda: lab.pipelines.get(caller("carol"), p["id"]))
    assert done["state"] == "succeeded", done
    prep, train = (lab.jobs.store.get(s["job_id"]) for s in done["steps"])
    assert prep.handle["slurm_job_id"] != train.handle["slurm_job_id"]
    assert train.started_at >= prep.finished_at  # Slurm's times: the step after the other
    assert "rows 12 GPU 0" in lab.jobs.logs(caller("carol"), train.id)["text"]


@pytest.mark.asyncio
async def test_a_request_slurm_refuses_fails_with_slurms_words(slurm_lab):
    lab = slurm_lab
    lab.write("alice", "big.py", "print('never')\n")
    job = lab.jobs.submit(caller("alice"), {"path": "big.py", "gpus": 3})  # the cluster has 2
    done = await lab.wait(job.id, timeout=30)
    assert done.state == "failed"
    assert "could not start: sbatch failed" in done.reason, done.reason
    assert "Requested node configuration is not available" in done.reason, done.reason
    assert not (lab.jobs.job_dir(job.id) / "env.sh").exists()
    assert lab.allocator.holders() == []  # its GPU slots are free again


def test_sacct_and_jobcomp_records():
    # what sacct answers on a cluster with slurmdbd and AccountingStorageTRES=gres/gpu
    rec = parse_sacct("42|COMPLETED|0:0|2026-12-02T03:51:34|2026-12-02T04:51:34|"
                      "billing=8,cpu=8,gres/gpu:a100=2,gres/gpu=2,mem=64G,node=1\n"
                      "43|CANCELLED by 1001|0:15|2026-12-02T03:00:00|2026-12-02T03:10:00|"
                      "cpu=1,gres/gpu=1\n", "42")
    assert (rec.state, rec.exit_code, rec.gpus, rec.source) == ("COMPLETED", 0, 2, "sacct")
    assert rec.gpu_hours() == pytest.approx(2.0)
    cancelled = parse_sacct("43|CANCELLED by 1001|0:15|2026-12-02T03:00:00|"
                            "2026-12-02T03:10:00|cpu=1,gres/gpu=1\n", "43")
    assert (cancelled.state, cancelled.signal, cancelled.gpus) == ("CANCELLED", 15, 1)
    assert parse_sacct("", "44") is None
    never = parse_sacct("45|CANCELLED|0:0|Unknown|2026-12-02T03:10:00|\n", "45")
    assert never.started_at is None and never.gpu_hours() == 0
    assert gpus_of_tres("gres:gpu:a100:2") == 2 and gpus_of_tres("cpu=4") == 0
    line = ("JobId=7 UserId=jm-ann(1001) GroupId=jm-ann(1001) Name=mlops-job-3 "
            "JobState=TIMEOUT Partition=gpu TimeLimit=2 StartTime=2026-12-02T03:00:00 "
            "EndTime=2026-12-02T03:02:00 NodeList=n1 NodeCnt=1 ProcCnt=1 WorkDir=/w "
            "ReservationName= Tres=cpu=1,mem=1G,node=1 Account= QOS= WcKey= Cluster=c "
            "SubmitTime=2026-12-02T02:59:00 EligibleTime=2026-12-02T02:59:00 "
            "DerivedExitCode=0:0 ExitCode=0:1\n")
    rec = parse_jobcomp(line, "7")
    assert (rec.state, rec.signal, rec.gpus) == ("TIMEOUT", 1, 0)
    assert rec.ended_at - rec.started_at == 120
    assert parse_jobcomp(line, "70") is None
