"""The engine never imports a web or UI framework (DESIGN.md: api and workbench import engine,
engine imports neither). Checked in a fresh interpreter so other tests' imports do not count."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("streamlit", "fastapi", "plotly", "starlette", "uvicorn", "api", "workbench")

PROBE = """
import importlib, json, pkgutil, sys
import engine
names = sorted(m.name for m in pkgutil.walk_packages(engine.__path__, "engine."))
for name in names:
    importlib.import_module(name)
forbidden = {forbidden!r}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({{"modules": names, "loaded": loaded, "engine": engine.__file__}}))
"""


def test_engine_imports_no_web_or_ui_framework() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(forbidden=FORBIDDEN)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(report["engine"]).parent == ROOT / "engine"
    # The walk must have found the engine's modules, or the check proves nothing.
    for module in ("engine.service", "engine.store", "engine.live", "engine.decision"):
        assert module in report["modules"]
    assert report["loaded"] == [], f"engine pulled in {report['loaded']}"


STORE_LAYER = {"engine/store.py", "engine/backup.py"}  # the one boundary that talks to DuckDB
PRODUCT_PACKAGES = ("engine", "api", "workbench")


def _product_modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(ROOT).as_posix(), ast.parse(path.read_text()))
        for package in PRODUCT_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def test_only_the_store_layer_imports_duckdb() -> None:
    importers = set()
    for name, tree in _product_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name == "duckdb" for a in node.names):
                importers.add(name)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("duckdb"):
                importers.add(name)
    assert importers == STORE_LAYER


def test_no_caller_reaches_into_the_store_connection_or_lock() -> None:
    """Callers get read/write transaction objects; the cursor and the writer lock are private."""
    private = {"_cursor", "_con", "_write_lock"}
    offenders = []
    for name, tree in _product_modules():
        if name in STORE_LAYER:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private | {"cursor", "write_lock"}:
                offenders.append(f"{name}:{node.lineno} .{node.attr}")
    assert offenders == []
