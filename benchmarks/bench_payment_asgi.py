"""CPU per ``POST /payment`` request through the whole ASGI app, next to a bare FastAPI endpoint.

The event loop is what limits live throughput (benchmarks/README.md), so this measures the
loop's share of a payment alone: the real app (every middleware, the payment endpoint, its
validation and serialization) with the engine's ``submit_async`` answering at once, against
``benchmarks/bare_app.py`` (one pydantic-validated FastAPI route) in the same run. No sockets,
no DuckDB: what is left is our per-request Python. Prints best-of-N CPU µs per request.

Run: ``.venv/bin/python benchmarks/bench_payment_asgi.py [--requests 5000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_app import app as bare_app

from api.app import create_app
from engine.models import Features, PaymentRequest, PaymentResult
from engine.service import Engine

BODY = json.dumps(PaymentRequest.model_config["json_schema_extra"]["examples"][0]).encode()
RESULT = PaymentResult.model_construct(
    transaction_id=uuid.uuid4(),
    status="Approved",
    decision_reason=None,
    reason_code="APPROVED",
    score=0.4002,
    latency_ms=3.1,
    features=Features.model_construct(
        spending_velocity=0.0, device_trust_score=0.3, ip_risk_score=0.3
    ),
    policy_version=1,
    risk_flag=None,
    created_at=datetime(2026, 1, 1),
)


class _AnsweringEngine:
    """The engine's face the endpoint uses, answering every payment at once."""

    def __init__(self, settings: object) -> None:
        self.settings = settings

    def submit_async(self, payment: object) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        future.set_result(RESULT)
        return future


def _scope(app: object) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/payment",
        "raw_path": b"/payment",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "app": app,
    }


async def _cpu_per_request(app: object, requests: int, repeat: int) -> float:
    """Best-of-``repeat`` CPU seconds per request over ``requests`` requests."""
    statuses: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = _scope(app)
    for _ in range(requests // 5):  # warm-up
        await app(dict(scope), receive, send)
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(requests):
            await app(dict(scope), receive, send)
        best = min(best, (time.process_time() - start) / requests)
    assert set(statuses) == {201}, f"unexpected statuses {set(statuses)}"
    return best


def main() -> None:
    """Measure both apps and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with Engine.open(":memory:", backup_interval_s=0) as engine:
        app = create_app(engine)
        app.state.engine = _AnsweringEngine(engine.settings)
        ours = asyncio.run(_cpu_per_request(app, args.requests, args.repeat))
    bare = asyncio.run(_cpu_per_request(bare_app, args.requests, args.repeat))
    print("| app | CPU µs per request | ratio to bare |")
    print("|---|---:|---:|")
    print(
        f"| ptsim POST /payment (engine answering at once) | {ours * 1e6:.1f} | {ours / bare:.2f} |"
    )
    print(f"| bare FastAPI route (benchmarks/bare_app.py) | {bare * 1e6:.1f} | 1.00 |")


if __name__ == "__main__":
    main()
