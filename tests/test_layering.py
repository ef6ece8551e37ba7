"""The domain layer (jupyter_mlops/core) imports no web framework, network client or adapter.

Core holds the domain and the Protocols it needs; what talks to a hub, MLflow's REST API, NVML, a
socket, S3 or Kubernetes lives in jupyter_mlops/backends and is handed to core by the service that
builds it. Every import counts, also one inside a function: a lazy import is still a dependency.
"""
import ast
import pathlib
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
