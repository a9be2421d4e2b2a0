"""A bare FastAPI app: the reference the payment benchmark divides by.

One ``POST /payment`` endpoint that validates a pydantic body shaped like the real one and answers
201, served with the same uvicorn settings as ``ptsim api`` (uvloop, httptools, no access log).
Run: ``.venv/bin/python benchmarks/bare_app.py --port 8100``.
"""

from __future__ import annotations

import argparse
from decimal import Decimal

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class Payment(BaseModel):
    """The body, with the real request's field types."""

    card_number: str = Field(min_length=12, max_length=19, pattern=r"^[0-9]+$")
    amount: Decimal = Field(gt=0, decimal_places=2)
    currency: str = "GBP"
    merchant: str
    channel: str = "ecommerce"
    device_id: str | None = None


class Answer(BaseModel):
    """A small response."""

    status: str
    amount: float


@app.post("/payment", status_code=201)
async def payment(body: Payment) -> Answer:
    """Validate and answer 201."""
    return Answer(status="Approved", amount=float(body.amount))


@app.get("/health")
async def health() -> dict[str, str]:
    """Readiness probe for the benchmark."""
    return {"status": "ok"}


def main() -> None:
    """Serve on 127.0.0.1 with the same settings as the real API."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--limit-concurrency", type=int, help="uvicorn's limit (bench_connections' reference)"
    )
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        limit_concurrency=args.limit_concurrency,
        backlog=args.limit_concurrency or 2048,
    )


if __name__ == "__main__":
    main()
