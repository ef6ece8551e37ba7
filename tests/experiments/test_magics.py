"""``%mlops`` through a real IPython shell, and the reproducibility helpers, on a real MLflow."""
from __future__ import annotations

import subprocess

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from jupyter_mlops import tracking


@pytest.fixture
def shell(mlflow_server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)  # over any process-wide URI an earlier test set
    monkeypatch.setenv("JUPYTERHUB_USER", "carol")
    monkeypatch.delenv("JUPYTER_MLOPS_PROJECT", raising=False)
    tracking.set_project(None)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_mlops")
    yield ip
    tracking.set_project(None)
    import mlflow

    mlflow.set_experiment("Default")


def test_runs_returns_a_dataframe_filtered_with_mlflow_syntax(shell, seeded):
    df = shell.run_line_magic("mlops", "runs small")
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert {"run_id", "metrics.m0", "params.p0"} <= set(df.columns)
    df = shell.run_line_magic("mlops", "runs cells --filter \"params.p0 = '3'\" --max 500")
    assert len(df) == sum(1 for i in range(120) if i % 7 == 3)
    assert set(df["params.p0"]) == {"3"}


def test_help_lists_the_subcommands_other_capabilities_register(shell, capsys):
    shell.run_line_magic("mlops", "help")
    out = capsys.readouterr().out
    for name in ("runs", "experiment", "datasets"):
        assert f"  {name} " in out, out


def test_bad_input_is_a_usage_error_with_the_reason(shell, seeded):
    with pytest.raises(UsageError, match="(?i)invalid|filter"):
        shell.run_line_magic("mlops", "runs cells --filter 'metrics.m0 >>> 2'")
    with pytest.raises(UsageError, match="no experiment 'nope'"):
        shell.run_line_magic("mlops", "runs nope")
    with pytest.raises(UsageError, match="unknown subcommand 'fly'"):
        shell.run_line_magic("mlops", "fly")
    with pytest.raises(UsageError, match="--max"):
        shell.run_line_magic("mlops", "runs cells --max many")
    # in a cell the user sees the message, and the kernel lives on
    result = shell.run_cell("%mlops runs nope")
    assert isinstance(result.error_in_exec, UsageError)


def test_experiment_is_created_in_the_project_and_runs_are_tagged(shell, mlflow_server):
    import mlflow

    shell.run_line_magic("mlops", "experiment magic-exp --project vision")
    exp = mlflow.get_experiment_by_name("magic-exp")
    assert exp.tags["mlops.project"] == "vision"
    assert mlflow.get_experiment(mlflow.tracking.fluent._active_experiment_id).name == "magic-exp"
    with mlflow.start_run() as run:  # plain MLflow: the context provider adds the tags
        pass
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mlops.user"] == "carol" and tags["mlops.project"] == "vision"
    # an experiment of another project is not silently reused
    with pytest.raises(UsageError, match="belongs to project 'vision'"):
        shell.run_line_magic("mlops", "experiment magic-exp --project other")


def test_start_run_captures_git_packages_seed_and_datasets(shell, mlflow_server, tmp_path):
    import mlflow

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / "train.py").write_text("print(2)\n")  # uncommitted
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    shell.run_line_magic("mlops", "experiment repro")
    tracking.note_dataset_read("cells", "v3", digest="abc123")
    with tracking.start_run(seed=42, repo=str(repo)) as run:
        import random

        first = random.random()
    random.seed(42)
    assert first == random.random()
    got = mlflow.get_run(run.info.run_id)
    assert got.data.params["seed"] == "42"
    assert got.data.tags["mlflow.source.git.commit"] == commit
    assert got.data.tags["mlops.git.dirty"] == "true"
    arts = mlflow.MlflowClient().list_artifacts(run.info.run_id, "reproducibility")
    assert {a.path for a in arts} == {"reproducibility/git.diff",
                                      "reproducibility/requirements.txt"}
    diff = mlflow.artifacts.load_text(f"{got.info.artifact_uri}/reproducibility/git.diff")
    assert "+print(2)" in diff
    reqs = mlflow.artifacts.load_text(
        f"{got.info.artifact_uri}/reproducibility/requirements.txt")
    assert f"mlflow=={mlflow.__version__}" in reqs.lower()
    assert [d.dataset.name for d in got.inputs.dataset_inputs] == ["cells@v3"]


def test_help_of_a_subcommand_is_printed_once_without_an_error(shell, capsys):
    # When a subcommand is asked for its options
    assert shell.run_line_magic("mlops", "experiment --help") is None
    # Then its usage is shown once, and no error follows it
    out = capsys.readouterr()
    assert out.out.count("usage: %mlops experiment") == 1 and out.err == ""
    # while a real mistake still says what is wrong
    with pytest.raises(UsageError, match="required: name"):
        shell.run_line_magic("mlops", "experiment")


def test_empty_results_say_what_to_do_instead_of_a_bare_dash(shell, capsys):
    from jupyter_mlops.magics import job_magics

    class NoJobs:
        def jobs(self):
            return {"jobs": [], "queue": []}

    assert job_magics.jobs([], client=NoJobs()) is None
    assert "No jobs yet: %mlops submit" in capsys.readouterr().out


def test_every_kernel_of_a_user_server_loads_the_magics():
    # Given a real kernel started with the environment the local spawner gives a user's server
    import os

    from jupyter_client.manager import start_new_kernel

    startup = os.path.join(os.path.dirname(tracking.__file__), "magics", "kernel_startup.py")
    km, kc = start_new_kernel(kernel_name="python3",
                              env={**os.environ, "PYTHONSTARTUP": startup})
    out = []
    try:
        # When a notebook cell uses %mlops without loading anything
        reply = kc.execute_interactive(
            "print('found' if get_ipython().find_line_magic('mlops') else 'missing')",
            timeout=60, output_hook=lambda m: out.append(m["content"].get("text", "")))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    # Then the magic is there
    assert reply["content"]["status"] == "ok" and "found" in "".join(out), out
