"""One set of simulation defaults: the dashboard, the API and the CLI all take SimulationParams'."""

from __future__ import annotations

from api.routes.simulations import SimulationRequest
from engine.simulation.params import SimulationParams
from workbench.cli import build_parser
from workbench.ui import DEMO_PARAMS

ENGINE = SimulationParams.model_fields


def test_api_and_cli_defaults_are_the_engines():
    api = SimulationRequest(rows=10)
    cli = build_parser().parse_args(["generate", "--rows", "10", "--seed", "1"])
    for name in ("days", "fraud_rate"):
        assert getattr(api, name) == getattr(cli, name) == ENGINE[name].default, name
    assert api.seed == ENGINE["seed"].default


def test_the_dashboards_demo_run_uses_the_engines_fraud_rate():
    assert DEMO_PARAMS.fraud_rate == ENGINE["fraud_rate"].default
    assert set(DEMO_PARAMS.model_fields_set) == {"rows", "seed", "days"}
