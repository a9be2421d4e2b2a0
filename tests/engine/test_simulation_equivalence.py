"""One decision function, two speeds: the bulk path's stored features, decisions, reasons and
scores equal what the live path (FeatureState + decide, one payment at a time) gives for the
same payments and draws. The run spans weeks, so device trust counts settled approvals and the
chargebacks that land within the run (the live replay records each as a dispute once its time
has come); the policy's score threshold reads the trust, so decisions depend on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from knob_reference import decide_as_engine
from support import read_numpy

from engine.decision import REASON_NAMES
from engine.features import CHANNELS, FeatureState, HistoryCounts, normalize
from engine.policy import Policy
from engine.service import Engine


def test_bulk_and_live_paths_decide_identically(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "eq.duckdb", card_key="eq-key") as eng:
        # every rule in play: score threshold, velocity limit, high amount, random declines
        policy = eng.activate_policy(
            Policy.from_knobs(score_threshold=0.55, velocity_limit=3, base_decline_prob=0.2)
        )
        run = eng.simulate(  # chunks of about two days, cut into parts of less than one; 60 days
            # so that disputes (median delay 40 days) land inside the run
            {"rows": 6_000, "seed": 21, "days": 60, "fraud_rate": 0.15, "chunk_rows": 211}
        )
        stored = read_numpy(
            eng.store,
            "SELECT card_hash, device_id, currency, epoch_ms(created_at) AS t, channel, "
            "CAST(amount * 100 AS BIGINT) AS cents, draw, spending_velocity, "
            "device_trust_score, ip_risk_score, velocity_count, device_seen_count, "
            "device_other_cards, score, status, reason_code, risk_flag, policy_version, "
            "coalesce(epoch_ms(label_available_at), -1) AS label_at "
            "FROM transactions WHERE run_id = ? ORDER BY id",
            [run.id],
        )
    n = len(stored["draw"])
    assert n == 6_000
    state = FeatureState()
    reasons = set()
    disputes: list[tuple[int, str, str, int]] = []  # (time, card, device, payment time)
    counting: dict[tuple[str, str], list[int]] = {}  # each pair's approved, undisputed times
    landed = 0
    for i in range(n):
        device = stored["device_id"][i]
        device = None if device is None or device is np.ma.masked else str(device)
        t = int(stored["t"][i])
        args = (str(stored["card_hash"][i]), device, str(stored["currency"][i]), t)
        disputes.sort()
        while disputes and disputes[0][0] <= t:  # chargebacks in by now, as the API records
            _, card, device_id, paid = disputes.pop(0)
            left = counting[(card, device_id)]
            left.remove(paid)
            state.dispute(card, device_id, paid, min(left, default=None))
            landed += 1
        history = state.counts(*args)
        state.observe(*args)
        pairs = state.pair_history([args[:2]], t)
        velocity, seen, other = history[:3]
        counts = HistoryCounts.from_rows(np.array([history]))
        features = normalize(
            counts, np.array([device is not None]), np.array([stored["channel"][i]]), pairs
        )
        decision = decide_as_engine(
            policy,
            np.array([stored["cents"][i]]),
            features.spending_velocity,
            features.device_trust_score,
            features.ip_risk_score,
            counts.velocity_count,
            np.array([stored["draw"][i]]),
        )
        assert (velocity, seen, other) == (
            stored["velocity_count"][i],
            stored["device_seen_count"][i],
            stored["device_other_cards"][i],
        ), i
        assert features.spending_velocity[0] == stored["spending_velocity"][i]
        assert features.device_trust_score[0] == stored["device_trust_score"][i]
        assert features.ip_risk_score[0] == stored["ip_risk_score"][i]
        assert decision.score[0] == stored["score"][i]  # bit-identical
        assert REASON_NAMES[decision.reason[0]] == stored["reason_code"][i]
        assert ("Approved" if decision.approved[0] else "Declined") == stored["status"][i]
        assert bool(decision.risk_flag[0]) == bool(stored["risk_flag"][i])
        reasons.add(stored["reason_code"][i])
        state.approve([args[:2]], decision.approved, t)
        if decision.approved[0] and device is not None:
            counting.setdefault(args[:2], []).append(t)
            if stored["label_at"][i] >= 0:
                disputes.append((int(stored["label_at"][i]), args[0], device, t))
    assert reasons == set(REASON_NAMES[:5])  # every knob rule was exercised
    trust = stored["device_trust_score"]
    assert (trust > 0.6).sum() > 100 and landed > 20  # settled trust, and disputes within
    assert set(stored["policy_version"]) == {policy.version}
    assert set(stored["channel"]) <= set(CHANNELS)
