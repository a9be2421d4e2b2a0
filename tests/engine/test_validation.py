"""One mapping from a validation error to a field and a message written for people, used by the
API, the settings, the CLI and the dashboard forms; one error style for the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import payment_body

from api.app import create_app
from engine.config import get_settings
from engine.errors import SettingsError
from engine.service import Engine

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Library wording that must never reach a person.
JARGON = re.compile(
    r"Value error|Assertion failed|Input should|dictionary|instance of|pydantic|type=|"
    r"input_value|String should|validation error for",
    re.IGNORECASE,
)

BAD_PAYMENTS = [
    {"amount": -1},
    {"amount": "abc"},
    {"amount": 1.234},
    {"amount": 2_000_000},
    {"currency": "XYZ"},
    {"channel": "web"},
    {"merchant": ""},
    {"merchant": "   "},
    {"merchant": "x" * 101},
    {"card_number": "12ab34567890"},
    {"card_number": "1234"},
    {"device_id": "a b"},
    {"colour": "red"},
]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    engine = Engine.open(tmp_path_factory.mktemp("v") / "v.duckdb", card_key="")
    with TestClient(create_app(engine)) as test_client:
        yield test_client
    engine.close()


@pytest.mark.parametrize("change", BAD_PAYMENTS, ids=lambda c: ",".join(c))
def test_payment_messages_name_the_field_in_plain_words(client, change) -> None:
    response = client.post("/payment", json={**payment_body(), **change})
    assert response.status_code == 400
    error = response.json()["error"]
    field = next(iter(change))
    assert error["field"] == field
    assert error["message"].startswith(f"Field '{field}' ") and error["message"].endswith(".")
    assert not JARGON.search(error["message"]), error["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/backtest", {"candidate": {"score_threshold": 2}}, "candidate.score_threshold"),
        ("/backtest", {"candidate": {"weight_device": "x"}}, "candidate.weight_device"),
        ("/backtest", {"candidate": {"nope": 1}}, "candidate.nope"),
        ("/backtest", {"filters": {"run": "sometimes"}}, "filters.run"),
        ("/backtest", {"filters": {"since": "yesterday"}}, "filters.since"),
        ("/backtest", {"filters": {"latest": "-PT1H"}}, "filters.latest"),
        ("/simulations", {"rows": 0}, "rows"),
        ("/simulations", {"rows": "5"}, "rows"),
        ("/simulations", {"rows": 5, "scenario_mix": {"phishing": 1}}, "scenario_mix"),
    ],
)
def test_other_routes_use_the_same_wording(client, path, body, field) -> None:
    error = client.post(path, json=body).json()["error"]
    assert error["field"] == field and error["message"].startswith(f"Field '{field}' ")
    assert not JARGON.search(error["message"]), error["message"]


def test_a_whole_input_check_speaks_for_itself(client) -> None:
    zero = {f"weight_{n}": 0 for n in ("device", "ip", "amount", "velocity")}
    error = client.post("/backtest", json={"candidate": zero}).json()["error"]
    assert error == {**error, "field": "candidate"}
    assert error["message"] == "At least one score weight must be positive."


def test_the_body_itself(client) -> None:
    def error(**kwargs):
        return client.post("/payment", **kwargs).json()["error"]

    bad_json = error(content=b"{", headers={"content-type": "application/json"})
    assert bad_json["message"] == "The request body is not valid JSON."
    assert error(json=[1])["message"] == "The request body must be a JSON object."
    assert error(json={**payment_body(), "4111111111111111": 1})["message"] == (
        "The request body has an unknown field."  # a key that may be a card is never echoed
    )


@pytest.mark.parametrize(
    ("setting", "variable"),
    [({"api_port": 0}, "PTSIM_API_PORT"), ({"rate_limit": "fast"}, "PTSIM_RATE_LIMIT"),
     ({"memory_limit": "lots"}, "PTSIM_MEMORY_LIMIT")],
)  # fmt: skip
def test_settings_errors_are_one_sentence_naming_the_variable(setting, variable) -> None:
    with pytest.raises(SettingsError) as refused:
        get_settings(**setting)
    message = str(refused.value)
    assert message.startswith(f"{variable} ") and message.endswith("start again.")
    assert not JARGON.search(message), message


def test_only_the_one_mapping_reads_pydantic_messages() -> None:
    """Every other module goes through engine.validation (no second set of rules)."""
    readers = [
        path.relative_to(PROJECT_ROOT).as_posix()
        for folder in ("engine", "api", "workbench")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if re.search(r"""\[["']msg["']\]|\.get\(["']msg["']""", path.read_text())
    ]
    assert readers == ["engine/validation.py"]


def _ptsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PTSIM_CARD_KEY": "cli-key"},
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("generate", "--rows", "0", "--seed", "1"), "ptsim: --rows must be at least 1."),
        (
            ("generate", "--rows", "10", "--seed", "1", "--scenario-mix", "stolen_card=0"),
            "ptsim: --scenario-mix must give at least one scenario a positive weight.",
        ),
        (("backup", "--db", ":memory:"), "ptsim: An in-memory database has no backups"),
        (("restore", "--db", "{tmp}/none.duckdb"), "ptsim: There is no backup of"),
    ],
)
def test_cli_refusals_are_one_sentence_on_stderr_with_exit_code_2(tmp_path, args, expected) -> None:
    done = _ptsim(*(arg.replace("{tmp}", str(tmp_path)) for arg in args))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(expected) and len(done.stderr.strip().splitlines()) == 1
    assert not JARGON.search(done.stderr)
