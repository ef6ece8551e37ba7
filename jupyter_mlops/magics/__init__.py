"""The ``%mlops`` line magic: ``%mlops help`` (loaded in every kernel of a user's server, see
:mod:`jupyter_mlops.magics.kernel_startup`; elsewhere ``%load_ext jupyter_mlops``).

Subcommands live in one small registry so each capability adds its own::

    from jupyter_mlops.magics import subcommand

    @subcommand("datasets", "list the shared datasets")
    def _datasets(args: list[str], shell):
        ...  # parse ``args`` (see :func:`parser`), return what the cell should show

A subcommand gets the words after its name (shell-quoted like a command line) and the IPython
shell; what it returns is the cell's value. Raise :class:`UsageError` (or ``ValueError``) for bad
input: the user sees the message, not a traceback.
"""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from .. import tracking


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    run: Callable[[list[str], Any], Any]


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(name: str, help: str):
    """Register ``%mlops <name> ...`` (a decorator). Registering a name again replaces it."""
    def register(func):
        SUBCOMMANDS[name] = Subcommand(name, help, func)
        return func
    return register


class _Shown(Exception):
    """``--help`` printed the help: the magic ends there, without an error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would exit the kernel's process
        raise UsageError(f"{self.prog}: {message}\n{self.format_usage()}")

    def exit(self, status=0, message=None):
        if status == 0:  # after --help (printed once already): done
            raise _Shown()
        raise UsageError(message or self.format_usage())


def parser(name: str, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser whose errors become :class:`UsageError` (shown, not fatal)."""
    return _Parser(prog=f"%mlops {name}", description=description, add_help=True)


def table(rows: list[dict], empty: str):
    """``rows`` as a pandas DataFrame for the cell to show, or ``empty`` printed when there
    are none (an empty DataFrame shows as a bare dash)."""
    if not rows:
        print(empty)
        return None
    import pandas as pd

    return pd.DataFrame(rows)


@subcommand("help", "list the subcommands")
def _help(args, shell):
    width = max(len(n) for n in SUBCOMMANDS)
    lines = [f"  {s.name.ljust(width)}  {s.help}" for s in sorted(SUBCOMMANDS.values(),
                                                                   key=lambda s: s.name)]
    print("%mlops SUBCOMMAND ... (add --help to a subcommand for its options)\n"
          + "\n".join(lines))


@subcommand("runs", "runs of an experiment as a pandas DataFrame (MLflow search syntax)")
def _runs(args, shell):
    import mlflow

    p = parser("runs", "Runs of EXPERIMENT, newest first, as a pandas DataFrame.")
    p.add_argument("experiment", help="experiment name")
    p.add_argument("--filter", default="", help="MLflow search syntax, e.g. \"metrics.loss < 0.2\"")
    p.add_argument("--order-by", action="append", default=None,
                   help="e.g. \"metrics.loss ASC\" (repeatable)")
    p.add_argument("--max", type=int, default=1000, help="at most this many runs (1000)")
    a = p.parse_args(args)
    if mlflow.get_experiment_by_name(a.experiment) is None:
        raise UsageError(f"no experiment {a.experiment!r} in your projects")
    try:
        return mlflow.search_runs(experiment_names=[a.experiment], filter_string=a.filter,
                                  order_by=a.order_by, max_results=a.max)
    except mlflow.exceptions.MlflowException as e:
        raise UsageError(f"%mlops runs: {e.message}") from None


@subcommand("experiment", "set the active experiment (created inside the current project)")
def _experiment(args, shell):
    p = parser("experiment", "Make NAME the active MLflow experiment.")
    p.add_argument("name")
    p.add_argument("--project", default=None,
                   help=f"project it belongs to (default: {tracking.current_project()!r})")
    a = p.parse_args(args)
    try:
        exp = tracking.set_experiment(a.name, a.project)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"active experiment: {exp.name} (id {exp.experiment_id}, project "
          f"{tracking.current_project()})")
    return None


@magics_class
class MlopsMagics(Magics):
    @line_magic
    def mlops(self, line: str):
        """``%mlops SUBCOMMAND ...``: ``%mlops help`` lists them."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"%mlops: {e}") from None
        if not words:
            words = ["help"]
        sub = SUBCOMMANDS.get(words[0])
        if sub is None:
            raise UsageError(f"%mlops: unknown subcommand {words[0]!r}; "
                             f"one of {', '.join(sorted(SUBCOMMANDS))}")
        try:
            return sub.run(words[1:], self.shell)
        except _Shown:
            return None


# Modules whose import registers more subcommands (each capability appends its own).
SUBCOMMAND_MODULES: list[str] = ["jupyter_mlops.magics.dataset_magics"]  # %mlops datasets
SUBCOMMAND_MODULES.append("jupyter_mlops.magics.job_magics")  # submit, sweep, jobs
SUBCOMMAND_MODULES.append("jupyter_mlops.serving.predict_magic")  # predict
SUBCOMMAND_MODULES.append("jupyter_mlops.demo.template")  # %mlops template


def load_ipython_extension(ipython) -> None:
    import importlib

    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module)
    ipython.register_magics(MlopsMagics)
