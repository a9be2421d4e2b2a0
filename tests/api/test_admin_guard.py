"""Who may do what, API side: wrong admin tokens are throttled per client, and a server is never
started beyond loopback without an admin token unless that is explicitly allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support import payment_body

from api.app import create_app
from engine.config import get_settings
from engine.errors import SettingsError
from engine.service import Engine
from workbench.server import refuse_public_without_token


@pytest.fixture
def open_engine(tmp_path: Path) -> Iterator[Any]:
    """A factory of engines with settings overrides; all closed afterwards."""
    opened: list[Engine] = []

    def make(**settings: Any) -> Engine:
        engine = Engine.open(tmp_path / "g.duckdb", admin_token="secret", card_key="", **settings)
        opened.append(engine)
        return engine

    try:
        yield make
    finally:
        for engine in opened:
            engine.close()


PTSIM = str(Path(sys.executable).with_name("ptsim"))
WRONG = {"Authorization": "Bearer not-the-token"}
ADMIN_FAILURE_BURST = 10  # the default PTSIM_ADMIN_FAILURE_LIMIT, 10/min: a minute's worth at once


def test_repeated_wrong_admin_tokens_are_throttled_even_the_right_one_then(
    engine: Engine, client: TestClient, admin_headers: dict[str, str]
) -> None:
    assert client.post("/payment", json=payment_body()).status_code == 201
    for _ in range(ADMIN_FAILURE_BURST):
        assert client.delete("/admin/reset", headers=WRONG).status_code == 401
    for headers in (WRONG, admin_headers):  # once throttled, a right guess is not revealed
        answer = client.delete("/admin/reset", headers=headers)
        assert answer.status_code == 429, answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        error = answer.json()["error"]
        assert error["type"] == "rate_limited" and "admin token" in error["message"]
        assert error["request_id"] == answer.headers["Request-Id"]
    assert client.get("/stats").json()["total"] == 1  # nothing was reset


def test_the_throttle_is_configurable(open_engine: Any) -> None:
    engine = open_engine(admin_failure_limit="2/min")
    with TestClient(create_app(engine)) as client:
        statuses = [client.delete("/admin/reset", headers=WRONG).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_throttling_is_per_client(engine: Engine, admin_headers: dict[str, str]) -> None:
    app = create_app(engine)
    with (
        TestClient(app, client=("10.0.0.1", 40000)) as guesser,
        TestClient(app, client=("10.0.0.2", 40000)) as admin,
    ):
        for _ in range(ADMIN_FAILURE_BURST + 1):
            guesser.delete("/admin/reset", headers=WRONG)
        assert guesser.delete("/admin/reset", headers=admin_headers).status_code == 429
        assert admin.delete("/admin/reset", headers=admin_headers).status_code == 200


def test_right_tokens_are_never_throttled(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    for _ in range(ADMIN_FAILURE_BURST * 3):
        assert client.delete("/admin/reset", headers=admin_headers).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    refuse_public_without_token(get_settings(db=":memory:", host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org"])
def test_public_address_without_token_is_refused_unless_allowed(host: str) -> None:
    with pytest.raises(SettingsError, match="PTSIM_ADMIN_TOKEN") as refused:
        refuse_public_without_token(get_settings(db=":memory:", host=host))
    assert "PTSIM_ALLOW_PUBLIC_WITHOUT_TOKEN=true" in str(refused.value)
    refuse_public_without_token(get_settings(db=":memory:", host=host, admin_token="secret"))
    refuse_public_without_token(
        get_settings(db=":memory:", host=host, allow_public_without_token=True)
    )


def test_ptsim_api_refuses_to_start_on_all_interfaces_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PTSIM_")}
    env |= {"PTSIM_HOST": "0.0.0.0", "PTSIM_BACKUP_INTERVAL_S": "0"}
    done = subprocess.run(
        [PTSIM, "api", "--db", str(tmp_path / "p.duckdb"), "--api-port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip()
    assert message.startswith("ptsim: PTSIM_HOST=0.0.0.0") and "\n" not in message
    assert not (tmp_path / "p.duckdb").exists()  # refused before anything was opened


def test_the_docker_image_bakes_in_no_token_and_the_readme_says_how_to_pass_one() -> None:
    root = Path(__file__).resolve().parents[2]
    dockerfile = (root / "Dockerfile").read_text()
    assert "PTSIM_HOST=0.0.0.0" in dockerfile
    assert not [
        line
        for line in dockerfile.splitlines()
        if "PTSIM_ADMIN_TOKEN=" in line and not line.lstrip().startswith("#")
    ]
    docker = (root / "README.md").read_text().split("## Docker", 1)[1].split("\n## ", 1)[0]
    assert '-e PTSIM_ADMIN_TOKEN="$(openssl rand -hex 32)"' in docker
    assert "PTSIM_ALLOW_PUBLIC_WITHOUT_TOKEN=true" in docker
