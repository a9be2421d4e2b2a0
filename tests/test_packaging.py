"""The Dockerfile lints clean and its steps are the make targets developers run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_make_targets_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "RUN make setup EXTRAS=" in text
    assert 'CMD ["make", "run"]' in text
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text and "/health" in text
    assert 'VOLUME ["/data"]' in text and "PTSIM_DB=/data/" in text


def test_runtime_setup_installs_no_dev_extras() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "-B", "setup", "EXTRAS="], cwd=ROOT, capture_output=True, text=True
    )
    sync = [line for line in dry_run.stdout.splitlines() if "uv sync" in line]
    assert sync and "--extra" not in sync[0] and "--locked" in sync[0]
