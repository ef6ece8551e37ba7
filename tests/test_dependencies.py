"""Every package the platform's code imports is declared in pyproject.toml.

A package that arrives only as another one's dependency works until that one drops it; then a
fresh install breaks at import time on a lab's machine, not here.
"""
import ast
import importlib.metadata
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
OURS = {"jupyter_mlops", "jupyter_mlops_spawner"}
# Imported only by the optional cell-detection demo, declared in the `cells` extra.
EXTRAS = {"torch": "cells"}


def _imported_modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in [*ROOT.joinpath("jupyter_mlops").rglob("*.py"),
                 *ROOT.joinpath("spawner").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in OURS:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_normalise(re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0]) for r in requirements}


def test_every_imported_package_is_declared():
    project = tomllib.loads(ROOT.joinpath("pyproject.toml").read_text())["project"]
    declared = _declared(project["dependencies"])
    extras = {name: _declared(reqs) for name, reqs in project["optional-dependencies"].items()}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in _imported_modules().items():
        owners = {_normalise(d) for d in distributions.get(module, [module])}
        wanted = extras.get(EXTRAS[module], set()) if module in EXTRAS else declared
        if not owners & wanted:
            missing[module] = sorted(files)[:3]
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"
