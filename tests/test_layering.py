"""The domain layer (jupyter_mlops/core) imports no web framework, network client or adapter,
and each of its modules runs SQL only over the tables it creates.

Core holds the domain and the Protocols it needs; what talks to a hub, MLflow's REST API, NVML, a
socket, S3 or Kubernetes lives in jupyter_mlops/backends and is handed to core by the service that
builds it. Every import counts, also one inside a function: a lazy import is still a dependency.

A core module (a package such as ``core/jobs`` or a file such as ``core/usage.py``) owns the
tables its ``CREATE TABLE`` statements or ``sa.Table`` definitions make; every other module reads
and changes them through the owner's public methods (``JobStore.gpu_spans``,
``Projects.gpu_quota_in``, ``Deployments.all``...), so a table's layout can change in one place.
"""
import ast
import functools
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORE = ROOT / "jupyter_mlops" / "core"

# Top-level packages core must not import (a module of theirs counts too).
FORBIDDEN_PACKAGES = {
    "httpx", "requests", "aiohttp", "tornado", "jupyter_server", "jupyterhub", "pynvml",
    "kubernetes", "kubernetes_asyncio", "boto3", "botocore", "mlflow",
}
# Standard-library modules that are transports, not domain.
FORBIDDEN_MODULES = {"socket", "socketserver", "http.client", "urllib.request", "ssl"}
# Layers above core, and the adapters below it that core reaches only through Protocols.
FORBIDDEN_OURS = {"backends", "service", "server", "hub", "client", "magics", "serving"}


def _absolute(path: pathlib.Path, node: ast.ImportFrom) -> str:
    """``from ..x import y`` in jupyter_mlops/core/a/b.py as the dotted module it names."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(path: pathlib.Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node) if node.level else node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from jupyter_mlops import backends`
                yield node.lineno, f"{module}.{alias.name}"


def forbidden(module: str) -> bool:
    parts = module.split(".")
    if parts[0] in FORBIDDEN_PACKAGES:
        return True
    if any(module == m or module.startswith(m + ".") for m in FORBIDDEN_MODULES):
        return True
    return parts[0] == "jupyter_mlops" and len(parts) > 1 and parts[1] in FORBIDDEN_OURS


def violations() -> list[str]:
    return sorted({f"{path.relative_to(ROOT)}:{line} imports {module}"
                   for path in CORE.rglob("*.py")
                   for line, module in imports(path) if forbidden(module)})


def test_core_imports_no_adapter_web_framework_or_upper_layer():
    assert violations() == []


def test_the_check_sees_relative_and_lazy_imports(tmp_path, monkeypatch):
    # Given a core module with a relative import of backends inside a function
    fake = tmp_path / "jupyter_mlops" / "core" / "jobs"
    fake.mkdir(parents=True)
    (fake / "m.py").write_text("def f():\n    from ...backends import x\n    import pynvml\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "CORE", tmp_path / "jupyter_mlops" / "core")
    # Then both are reported
    assert [v.split(" imports ")[1] for v in violations()] == [
        "jupyter_mlops.backends", "jupyter_mlops.backends.x", "pynvml"]


# --- each core module owns its tables --------------------------------------------------------

CREATES = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_]\w*)", re.I)
# Upper-case keywords only: SQL here is written in capitals, prose ("from the job store") is not.
NAMES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|REFERENCES)\s+"
                   r"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?([A-Za-z_]\w*)"
                   r"|\bINDEX\s+\w+\s+ON\s+([A-Za-z_]\w*)")


def module_of(path: pathlib.Path) -> str:
    """``jobs`` for core/jobs/store.py, ``usage`` for core/usage.py."""
    return path.relative_to(CORE).parts[0].removesuffix(".py")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            ids.add(id(node.body[0].value))
    return ids


def _text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with ``?`` where its values go."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "?" for v in node.values)
    return None


def _first_string(call: ast.Call) -> str | None:
    return _text(call.args[0]) if call.args else None


def tables(path: pathlib.Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """``(created, named)``: ``(line, table)`` of the tables a module creates, and of every
    table its SQL strings (not its docstrings) and ``has_table`` checks name."""
    return _tables_in(path.read_text())


@functools.lru_cache(maxsize=None)  # both checks read every module: parse each text once
def _tables_in(source: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    tree = ast.parse(source)
    docs = _docstrings(tree)
    created, named = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", "")
            name = _first_string(node)
            if fn == "Table" and name:
                created.append((node.lineno, name))
            elif fn == "has_table" and name:
                named.append((node.lineno, name))
            continue
        text = None if id(node) in docs else _text(node)
        if text is None:
            continue
        created += [(node.lineno, m.group(1)) for m in CREATES.finditer(text)]
        named += [(node.lineno, m.group(1) or m.group(2)) for m in NAMES.finditer(text)]
    return created, named


def table_owners() -> tuple[dict[str, str], list[str]]:
    """Table -> the core module creating it, and the tables more than one module creates."""
    owners: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        for _, table in tables(path)[0]:
            owners.setdefault(table, set()).add(module_of(path))
    twice = sorted(f"table {t} is created by {', '.join(sorted(m))}"
                   for t, m in owners.items() if len(m) > 1)
    return {t: min(m) for t, m in owners.items()}, twice


def foreign_tables() -> list[str]:
    owners, twice = table_owners()
    return twice + sorted({
        f"{path.relative_to(ROOT)}:{line} names table {table} of core.{owners[table]}"
        for path in CORE.rglob("*.py")
        for line, table in tables(path)[1]
        if table in owners and owners[table] != module_of(path)})


def test_core_modules_use_only_their_own_tables():
    owners, _ = table_owners()
    # the check reads the real schema (it would pass vacuously if it found no table)
    assert {"jobs": "jobs", "projects": "projects", "deployments": "deployments",
            "usage_sessions": "usage", "gpu_allocations": "gpu_allocation"}.items() \
        <= owners.items()
    assert foreign_tables() == []


def test_the_check_sees_reads_writes_and_table_checks_of_other_modules(tmp_path, monkeypatch):
    # Given core modules: jobs creates "jobs", things defines "things" with sa.Table
    core = tmp_path / "jupyter_mlops" / "core"
    (core / "jobs").mkdir(parents=True)
    (core / "jobs" / "store.py").write_text(
        'SCHEMA = ["CREATE TABLE jobs (id INTEGER)"]\nQ = "UPDATE jobs SET id = 1"\n')
    (core / "things.py").write_text('T = sa.Table("things", meta)\n')
    # and usage reads jobs, checks for its table and deletes things (f-string), while its
    # docstring's SQL-looking words and its own table do not count
    (core / "usage.py").write_text(
        '"""SELECT id FROM jobs, in prose."""\n'
        'SCHEMA = ["CREATE TABLE IF NOT EXISTS usage (id INTEGER)"]\n'
        'def f(db, e, k):\n'
        '    db.query("SELECT u.id FROM usage u JOIN jobs j ON j.id = u.id")\n'
        '    sa.inspect(e).has_table("jobs")\n'
        '    db.query(f"DELETE FROM things WHERE k = {k}")\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "CORE", core)
    # Then each foreign name is reported with its owner
    assert foreign_tables() == [
        "jupyter_mlops/core/usage.py:4 names table jobs of core.jobs",
        "jupyter_mlops/core/usage.py:5 names table jobs of core.jobs",
        "jupyter_mlops/core/usage.py:6 names table things of core.things",
    ]
    # And a table two modules create is reported too
    (core / "other.py").write_text('S = "CREATE TABLE things (id INTEGER)"\n')
    assert foreign_tables()[0] == "table things is created by other, things"
