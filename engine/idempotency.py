"""Idempotent payments with Stripe semantics.

The same ``Idempotency-Key`` with the same request returns the first result (same transaction,
one row); with a different request it is refused. Concurrent requests with one key share the
first request's future, so exactly one transaction is created. The key is stored in the same
transaction as the payment, so the promise survives restarts and crashes; keys are kept at least
48 hours (:data:`KEY_RETENTION`), then purged at start-up.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta

from engine.cards import CardFingerprint
from engine.errors import IdempotencyConflictError
from engine.models import PaymentRequest, PaymentResult
from engine.store import Store

KEY_RETENTION = timedelta(hours=48)
MAX_KEY_LENGTH = 255


def request_hash(request: PaymentRequest, card: CardFingerprint) -> str:
    """SHA-256 of the canonical request, with the card as its keyed fingerprint."""
    canonical = request.model_dump(mode="json", exclude={"card_number"})
    canonical["card"] = card.card_hash
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


class IdempotencyGuard:
    """Decides whether a keyed request is new, a replay, or a conflict."""

    def __init__(self, store: Store, replay: Callable[[uuid.UUID], PaymentResult]) -> None:
        self._store = store
        self._replay = replay
        self._lock = threading.Lock()
        self._inflight: dict[str, tuple[str, Future[PaymentResult]]] = {}

    def run(
        self,
        key: str,
        fingerprint: str,
        start: Callable[[], Future[PaymentResult]],
    ) -> tuple[Future[PaymentResult], bool]:
        """(future result, replayed?) for a request with ``key`` and request hash
        ``fingerprint``; ``start`` submits it when the key is new."""
        with self._lock:
            inflight = self._inflight.get(key)
            if inflight is not None:
                self._check(inflight[0], fingerprint)
                return inflight[1], True
            stored = self._store.find_idempotency_key(key)
            if stored is not None:
                self._check(stored[0], fingerprint)
                done: Future[PaymentResult] = Future()
                done.set_result(self._replay(stored[1]))
                return done, True
            future = start()
            self._inflight[key] = (fingerprint, future)
        future.add_done_callback(lambda _: self._forget(key))
        return future, False

    def _forget(self, key: str) -> None:
        with self._lock:
            self._inflight.pop(key, None)

    @staticmethod
    def _check(stored_hash: str, fingerprint: str) -> None:
        if stored_hash != fingerprint:
            raise IdempotencyConflictError(
                "This Idempotency-Key was already used with a different request; "
                "use a new key for a new payment."
            )
