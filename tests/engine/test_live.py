"""The live path: decline rates, PTSIM_SEED reproducibility, concurrency, latency write-back."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from engine.models import PaymentRequest
from engine.service import Engine

CARDS = ["4111111111111111", "5555555555554444", "4000001234567890", "378282246310005"]


def _request(i: int, amount: str) -> PaymentRequest:
    return PaymentRequest(
        card_number=CARDS[i % len(CARDS)],
        amount=amount,
        currency="GBP",
        merchant=f"m{i % 3}",
        channel="ecommerce",
        device_id=f"dev-{i % 5}",
    )


def _submit_in_waves(eng: Engine, requests: list[PaymentRequest], wave: int = 200) -> list:
    results = []
    for start in range(0, len(requests), wave):
        futures = [eng.submit(r) for r in requests[start : start + wave]]
        results += [f.result(timeout=60) for f in futures]
    return results


@pytest.mark.parametrize(
    ("amount", "rate", "reason_code", "reason"),
    [
        ("120.00", 0.10, "RANDOM_DECLINE", "Randomized decline to simulate fraud checks."),
        ("500.00", 0.10, "RANDOM_DECLINE", "Randomized decline to simulate fraud checks."),
        ("750.00", 0.30, "HIGH_AMOUNT", "High amount flagged by risk heuristic."),
    ],
)
def test_decline_rate_matches_the_default_policy(engine, amount, rate, reason_code, reason) -> None:
    n = 4_000
    results = _submit_in_waves(engine, [_request(i, amount) for i in range(n)])
    declined = [r for r in results if r.status == "Declined"]
    bound = 4 * math.sqrt(rate * (1 - rate) / n)  # four binomial standard deviations
    assert abs(len(declined) / n - rate) < bound
    assert {r.reason_code for r in declined} == {reason_code}
    assert {r.decision_reason for r in declined} == {reason}
    approved = [r for r in results if r.status == "Approved"]
    assert {r.reason_code for r in approved} == {"APPROVED"}
    assert {r.decision_reason for r in approved} == {None}
    # risk_flag: the high-amount rule's text on every high amount, declined or not; else null
    flag = "High amount flagged by risk heuristic." if amount == "750.00" else None
    assert {r.risk_flag for r in results} == {flag}
    assert {r.flagged_by_risk_rule for r in results} == {flag is not None}
    stats = engine.stats()
    assert (stats.total, stats.declined) == (n, len(declined))


def _run_sequence(path, monkeypatch) -> list[tuple]:
    monkeypatch.setenv("PTSIM_SEED", "20240601")
    amounts = ["10.00", "499.99", "500.00", "500.01", "999.99", "42.42", "1000000.00", "0.01"]
    requests = [_request(i, amounts[i % len(amounts)]) for i in range(120)]
    with Engine.open(path, card_key="") as eng:
        assert eng.settings.seed == 20240601
        results = _submit_in_waves(eng, requests[:60], wave=13)
        results += [eng.authorize(r) for r in requests[60:80]]
        results += _submit_in_waves(eng, requests[80:], wave=40)
        draws = [eng.get_transaction(r.transaction_id).draw for r in results]
    return [
        (r.status, r.reason_code, r.score, r.features.model_dump(), d)
        for r, d in zip(results, draws, strict=True)
    ]


def test_same_seed_and_requests_give_identical_decisions(tmp_path, monkeypatch) -> None:
    first = _run_sequence(tmp_path / "a.duckdb", monkeypatch)
    second = _run_sequence(tmp_path / "b.duckdb", monkeypatch)
    assert first == second
    assert len({row[4] for row in first}) == len(first)  # every payment got its own draw
    assert {row[0] for row in first} == {"Approved", "Declined"}


def test_concurrent_submits_are_all_committed_and_audited(engine) -> None:
    threads, per_thread = 16, 40
    barrier = threading.Barrier(threads)

    def client(t: int) -> list:
        barrier.wait()
        return [engine.authorize(_request(t * per_thread + i, "25.00")) for i in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        results = [r for chunk in pool.map(client, range(threads)) for r in chunk]

    ids = [r.transaction_id for r in results]
    assert len(set(ids)) == len(results) == threads * per_thread
    assert engine.store.query("SELECT count(*) FROM transactions") == [(len(results),)]
    for result in results:  # every answered payment has its decision in the audit trail
        entry = engine.get_audit(result.transaction_id)
        assert len(entry) == 1 and entry[0].event == "payment.decided"
        assert entry[0].decision.status == result.status
        assert entry[0].decision.reason_code == result.reason_code
    stats = engine.stats()
    assert stats.total == len(results)
    assert stats.approved + stats.declined == stats.total
    assert stats.approved == sum(r.status == "Approved" for r in results)


def test_latency_is_positive_and_written_back_to_the_row(engine) -> None:
    result = engine.authorize(_request(0, "12.34"))
    assert result.latency_ms > 0
    # Until the write-back commits, the lookup answers the measured latency from memory.
    assert engine.get_transaction(result.transaction_id).latency_ms == result.latency_ms
    deadline = time.monotonic() + 10
    stored = None
    while stored is None and time.monotonic() < deadline:
        stored = engine.store.query(
            "SELECT latency_ms FROM transactions WHERE id = ?", [result.transaction_id]
        )[0][0]
        if stored is None:
            time.sleep(0.01)
    assert stored == result.latency_ms
    audit = engine.get_audit(result.transaction_id)
    assert audit[0].latency_ms == result.latency_ms
    assert engine.stats().p50_latency > 0


def test_lookups_never_lose_the_latency_while_it_is_written_back(engine) -> None:
    # Regression: the writer forgot the in-memory latency before its write-back committed, so a
    # lookup in that window answered latency_ms = null for a payment already answered 201.
    for i in range(40):
        result = engine.authorize(_request(i, "5.00"))
        assert engine.get_audit(result.transaction_id)[0].latency_ms == result.latency_ms
        assert engine.get_transaction(result.transaction_id).latency_ms == result.latency_ms


def test_reset_while_payments_stream_keeps_rows_rollups_and_audit_in_step(engine) -> None:
    stop = threading.Event()
    answered: list = []
    lock = threading.Lock()

    def client(t: int) -> None:
        i = 0
        while not stop.is_set():
            result = engine.authorize(_request(t * 10_000 + i, "33.00"))
            with lock:
                answered.append(result.transaction_id)
            i += 1

    workers = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for w in workers:
        w.start()
    for _ in range(3):
        while len(answered) < 30:
            time.sleep(0.005)
        stats = engine.reset()
        assert stats.approved + stats.declined == stats.total
        with lock:
            answered.clear()
    time.sleep(0.1)
    stop.set()
    for w in workers:
        w.join(timeout=30)

    rows = engine.store.query("SELECT count(*) FROM transactions")[0][0]
    stats = engine.stats()
    assert rows == stats.total
    assert stats.approved + stats.declined == stats.total
    recount = engine.store.query("SELECT count(*) FILTER (status = 'Approved') FROM transactions")
    assert recount == [(stats.approved,)]
    assert int(engine._live.totals.snapshot().latency_counts.sum()) == rows
    engine.close()  # writes back the last latencies; a reopened engine rebuilds the same totals
    with Engine.open(engine.store.path, seed=1, card_key="") as reopened:
        assert reopened.store.query("SELECT count(latency_ms) FROM transactions")[0][0] == rows
        assert int(reopened._live.totals.snapshot().latency_counts.sum()) == rows
        assert reopened.stats() == stats


@pytest.mark.parametrize(
    ("amount", "canonical"), [("1e2", "100.00"), ("12.340", "12.34"), ("7", "7.00")]
)
def test_audit_records_the_amount_as_stored(engine, amount, canonical) -> None:
    result = engine.authorize(_request(0, amount))
    stored = engine.get_transaction(result.transaction_id)
    assert f"{stored.amount:.2f}" == canonical
    audited = engine.get_audit(result.transaction_id)[0].request
    assert f"{audited.amount:.2f}" == canonical


def test_a_group_lingers_for_as_many_payments_as_the_last_one_held(engine, monkeypatch) -> None:
    """Clients answered by one commit send their next payments together: the writer waits for
    them (up to GROUP_LINGER_S) instead of committing the first alone, and stops waiting as soon
    as the group is as large as the last one."""
    import engine.live as live

    writer = engine._live
    writer.stop()  # drive _gather by hand on the stopped writer's queue
    monkeypatch.setattr(live, "GROUP_LINGER_S", 30.0)
    writer._last_batch_size = 4
    pending = [f"payment-{i}" for i in range(5)]

    def arrive_late() -> None:
        time.sleep(0.05)
        for item in pending[1:4]:
            writer._queue.put(item)
        gathered.wait(timeout=30)
        writer._queue.put(pending[4])  # after the group closed: belongs to the next one

    gathered = threading.Event()
    late = threading.Thread(target=arrive_late)
    late.start()
    batch, stop = writer._gather(pending[0])
    gathered.set()
    late.join()
    assert (batch, stop) == (pending[:4], None)
    assert writer._queue.get(timeout=5) == pending[4]


def test_a_single_client_never_waits_for_a_group(engine, monkeypatch) -> None:
    import engine.live as live

    writer = engine._live
    writer.stop()
    monkeypatch.setattr(live, "GROUP_LINGER_S", 30.0)
    writer._last_batch_size = 1
    later = threading.Timer(0.2, writer._queue.put, args=("next",))
    later.start()
    assert writer._gather("only") == (["only"], None)  # did not wait for "next"
    later.join()
    assert writer._queue.get(timeout=5) == "next"


def test_submit_async_settles_on_the_loop_and_survives_a_cancelled_waiter(engine) -> None:
    import asyncio

    async def scenario() -> list:
        abandoned = engine.submit_async(_request(0, "10.00"))
        abandoned.cancel()  # the client went away: the payment still commits
        results = await asyncio.gather(
            *(engine.submit_async(_request(i, "20.00")) for i in range(40))
        )
        return results

    results = asyncio.run(scenario())
    assert len({r.transaction_id for r in results}) == 40
    assert {r.status for r in results} <= {"Approved", "Declined"}
    assert engine.stats().total == 41  # committed no later than the group answered after it


def test_a_cancelled_thread_future_does_not_stop_the_writer(engine) -> None:
    """Reviewer's repro: a cancelled concurrent future in the same group as an asyncio one."""
    import asyncio

    async def scenario() -> tuple:
        with _writer_paused(engine):  # both land in one group
            cancelled = engine.submit(_request(0, "10.00"))
            assert cancelled.cancel()
            waiting = engine.submit_async(_request(1, "11.00"))
        return await asyncio.wait_for(waiting, timeout=30)

    result = asyncio.run(scenario())
    assert result.status in {"Approved", "Declined"}
    assert engine._live._thread.is_alive()
    assert engine.authorize(_request(2, "12.00")).transaction_id  # still taking payments
    assert engine.stats().total == 3  # the cancelled caller's payment was committed too


def test_payments_submitted_after_stop_fail_instead_of_waiting(engine) -> None:
    from engine.errors import StoreError

    engine._live.stop()
    with pytest.raises(StoreError):
        engine.submit(_request(0, "10.00")).result(timeout=5)


@contextlib.contextmanager
def _writer_paused(engine):
    """Keep the writer thread busy with an exclusive job until the block ends, so what the block
    submits is queued and decided as one group."""
    from engine.live import _Exclusive

    started, release = threading.Event(), threading.Event()
    job = _Exclusive(lambda: (started.set(), release.wait(30)), Future())
    engine._live._queue.put(job)
    assert started.wait(30)
    try:
        yield
    finally:
        release.set()
    job.done.result(timeout=30)
