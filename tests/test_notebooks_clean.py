"""Notebooks are committed without outputs: CI executes them (``pytest --nbmake``), git keeps
only their source, so diffs stay readable and no stale result can pass for a current one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert len(NOTEBOOKS) >= 4, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stripped_and_runs_on_python3(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs; run `nbstripout {path}`"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_nbstripout_verify_agrees() -> None:
    """The same check as ``nbstripout --verify`` (what a pre-commit hook would run)."""
    exe = Path(sys.executable).with_name("nbstripout")
    if not exe.exists():
        pytest.skip("nbstripout is not installed in this environment")
    done = subprocess.run(
        [str(exe), "--verify", *map(str, NOTEBOOKS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"run `nbstripout notebooks/*.ipynb`:\n{done.stdout}"
