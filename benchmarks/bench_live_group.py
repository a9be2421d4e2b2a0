"""The live writer's cost per group, in process: CPU time, robust to a busy machine.

One command: ``.venv/bin/python benchmarks/bench_live_group.py [--groups 1500] [--size 32]``.

Opens an engine on a fresh temporary DuckDB file, stops its writer thread and calls the writer's
group step (``LiveWriter._decide_and_commit``: history, decision, rows, the commit) directly on
groups of ``--size`` payments drawn like ``benchmarks/payment.lua`` (5 million card numbers, 3,000
devices or none, GBP/EUR/USD, 15% of amounts above 500). It reports the wall and CPU time of the
whole step, and, measured on a second history in the same loop (so with the same cold caches as
the step itself), the CPU time of its history parts: the GBP amounts, the history counts
(``FeatureState.observe_group``), the device trust's settled pair history
(``FeatureState.pair_history`` and ``approve``, in checkouts that have them) and the history
attribute columns. CPU time (``process_time``
for the step, which includes DuckDB's threads; ``thread_time`` for the parts) counts what the
group costs the two cores, which ``bench_payments.py``'s throughput depends on, and changes far
less than wall time when other jobs share the machine. To compare two checkouts, run each with
``PYTHONPATH=<checkout>`` (its script and its engine), alternating.

``--shadow default|rules20`` puts a policy in shadow (issue 14: a copy of the default policy, or
bench_policies.py's 20 rules with their two lists) on every other group, so the table also
gives the step's CPU time with and without the shadow from the same loop.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import numpy as np

from engine import live
from engine.features import FeatureState, HistoryCounts
from engine.history import attribute_columns
from engine.models import PaymentRequest
from engine.service import Engine

MERCHANTS = ["Amazon", "Tesco", "Uber", "Netflix", "Shell", "Apple", "Zara", "IKEA"]
CHANNELS = ["ecommerce", "mobile", "pos", "contactless", "moto"]
CURRENCIES = ["GBP", "GBP", "GBP", "GBP", "EUR", "USD"]


def request(rnd: random.Random) -> PaymentRequest:
    """One payment as ``benchmarks/payment.lua`` draws them."""
    cents = rnd.randint(50_001, 250_000) if rnd.random() < 0.15 else rnd.randint(100, 50_000)
    body = {
        "card_number": f"4{rnd.randint(0, 999):03d}{rnd.randint(1, 5000):012d}",
        "amount": Decimal(cents) / 100,
        "currency": rnd.choice(CURRENCIES),
        "merchant": rnd.choice(MERCHANTS),
        "channel": rnd.choice(CHANNELS),
    }
    if rnd.random() < 0.9:
        body["device_id"] = f"dev-{rnd.randint(1, 3000)}"
    return PaymentRequest.model_validate(body)


def history_counts(
    state: FeatureState, payments: list[tuple[str, str | None, str, int]], t_ms: int
) -> HistoryCounts:
    """The group's history counts; one payment at a time in checkouts before ``observe_group``
    (as their writer did), so this script compares with them."""
    if hasattr(state, "observe_group"):
        return state.observe_group(payments, t_ms)
    counts = np.empty((len(payments), 10), dtype=np.int64)
    for i, (card, device, currency, pence) in enumerate(payments):
        counts[i] = state.counts(card, device, currency, t_ms)
        state.observe(card, device, currency, t_ms, pence)
    return HistoryCounts.from_rows(counts)


def pair_history(state: FeatureState, batch: list, t_ms: int) -> None:
    """The group's settled pair history, then its approvals (all, as a bound on the cost)."""
    if not hasattr(state, "pair_history"):
        return
    keys = [(p.card.card_hash, p.request.device_id) for p in batch]
    state.pair_history(keys, t_ms)
    state.approve(keys, np.ones(len(keys), dtype=bool), t_ms)


def shadowing(engine: Engine, shadow: str) -> tuple[object, object] | None:
    """(the live experiments without, with ``shadow`` in shadow), or None for ``none``."""
    if shadow == "none":
        return None
    from engine.experiments import LiveExperiments
    from engine.policy import DEFAULT_POLICY

    if shadow == "default":
        rules = [rule.model_dump() for rule in DEFAULT_POLICY.rules]
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_policies import prepare_lists, rules_20

        prepare_lists(engine)
        rules = rules_20()
    engine.start_shadow(engine.create_policy(rules, note=f"bench shadow: {shadow}").version)
    return LiveExperiments(), engine.experiments.live


def main() -> int:
    """Run the groups and print one table (ms per group)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1500)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--shadow", choices=("none", "default", "rules20"), default="none")
    args = parser.parse_args()
    rnd = random.Random(20240601)
    with tempfile.TemporaryDirectory(prefix="ptsim-group-") as tmp:
        engine = Engine.open(Path(tmp) / "bench.duckdb", backup_interval_s=0)
        writer = engine._live
        writer.stop()  # this loop is the writer now
        experiments = shadowing(engine, args.shadow)
        groups = [
            [engine._pending(request(rnd)) for _ in range(args.size)] for _ in range(args.groups)
        ]
        shadow = FeatureState()
        times: dict[str, list[float]] = {
            k: [] for k in ("wall", "cpu", "gbp", "history", "trust", "columns", "off", "on")
        }

        def part(name: str, step: Callable[[], object]) -> object:
            start = time.thread_time()
            out = step()
            times[name].append(time.thread_time() - start)
            return out

        for i, batch in enumerate(groups):
            if experiments is not None:  # the shadow on every other group
                engine.experiments.live = experiments[i % 2]
            t_ms = time.time_ns() // 1_000_000
            pence = part("gbp", lambda b=batch: live._gbp_pence(b))
            payments = [
                (p.card.card_hash, p.request.device_id, p.request.currency, gbp)
                for p, gbp in zip(batch, pence.tolist(), strict=True)  # type: ignore[union-attr]
            ]
            counts = part("history", lambda p=payments, t=t_ms: history_counts(shadow, p, t))
            part("trust", lambda b=batch, t=t_ms: pair_history(shadow, b, t))
            part("columns", lambda c=counts, p=pence: attribute_columns(c, p))
            wall, cpu = time.perf_counter(), time.process_time()
            writer._decide_and_commit(batch)
            times["wall"].append(time.perf_counter() - wall)
            times["cpu"].append(time.process_time() - cpu)
            if experiments is not None:
                times["on" if i % 2 else "off"].append(times["cpu"][-1])
        engine.store.close()
    print(f"{args.groups} groups of {args.size} payments; ms per group")
    print("| what | median | mean |")
    print("|---|---:|---:|")
    labels = {
        "wall": "whole group step, wall",
        "cpu": "whole group step, CPU",
        "gbp": "  GBP amounts, CPU",
        "history": "  history counts, CPU",
        "trust": "  settled pair history (device trust), CPU",
        "columns": "  history attribute columns, CPU",
    }
    if experiments is not None:
        labels["off"] = "whole group step, CPU, groups without the shadow"
        labels["on"] = f"whole group step, CPU, groups with the shadow ({args.shadow})"
    for name, label in labels.items():
        values = [v * 1e3 for v in times[name]]
        print(f"| {label} | {statistics.median(values):.3f} | {statistics.fmean(values):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
