"""ruff and mypy are part of the suite: a lint or type error fails CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
        return found
    return str(path)


def test_ruff_lint_is_clean() -> None:
    proc = subprocess.run([tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    proc = subprocess.run([tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    proc = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


PACKAGE = ROOT / "kbatch_dask"
# Who may not import whom: the layers of docs/architecture.md.
FACES = ("kbatch_dask.api", "kbatch_dask.job", "kbatch_dask.cli", "kbatch_dask.doctor")
PURE = ("kbatch_dask.config", "kbatch_dask.settings")  # pure builders do no I/O and read no config
# Nothing imports the service; it may import spec, backends, gateway, hub, settings
# (and what those stand on), never the faces or the driver.
SERVICE = "kbatch_dask.service"
FORBIDDEN = {
    "kbatch_dask.service": (*FACES, "kbatch_dask.driver"),
    "kbatch_dask.spec": (*FACES, "kbatch_dask.backends", "kbatch_dask.driver", "kbatch_dask.gateway"),
    "kbatch_dask.gateway": (*FACES, "kbatch_dask.backends", "kbatch_dask.driver"),
    "kbatch_dask.hub": (*FACES, "kbatch_dask.backends", "kbatch_dask.driver"),
    "kbatch_dask.backends": (*FACES, "kbatch_dask.driver"),
    "kbatch_dask.driver": FACES,
    # The web page serves two hosts (the service, kbatch ui): it knows neither, nor any backend.
    "kbatch_dask.web": (*FACES, "kbatch_dask.service", "kbatch_dask.backends", "kbatch_dask.driver"),
    # The MLflow plugin is a user of the public Python API, like a user's own script.
    "kbatch_dask.mlflow": ("kbatch_dask.cli", "kbatch_dask.backends", "kbatch_dask.driver", "kbatch_dask.gateway"),
    "kbatch_dask.backends.kubernetes.manifests": PURE,
    "kbatch_dask.backends.kubernetes.status": PURE,
    "kbatch_dask.queue": PURE,
    "kbatch_dask.reaper": PURE,
}


def imports_of(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_dependencies_flow_one_way() -> None:
    broken = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for layer, forbidden in FORBIDDEN.items():
            if module == layer or module.startswith(layer + "."):
                broken += [f"{module} imports {name}" for name in imports_of(path) if name.startswith(forbidden)]
        if not module.startswith(SERVICE):
            broken += [f"{module} imports {name}" for name in imports_of(path) if name.startswith(SERVICE)]
    assert broken == []


def test_no_module_holds_two_concepts() -> None:
    """A module past ~400 lines is holding two."""
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
