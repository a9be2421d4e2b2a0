"""Shadow and routed (champion/challenger) policies on live traffic.

- A **shadow** policy decides every live payment too, with the same attributes and the same
  stored draw, and is never enforced: its decision is stored on the payment's row
  (``shadow_*`` columns) and compared with the enforced one by
  :func:`engine.compare.run_shadow_comparison`. One shadow at a time.
- A **route** sends a deterministic share of live cards to a challenger policy, which then
  decides (and is enforced) for them. A card's side is :func:`route_bucket` of its fingerprint
  below the share, so a card stays on one side for as long as the share does, and raising the
  share only moves cards to the challenger.

Both are rows of ``policy_experiments``, changed in the transaction of their audit entry
(``policy.shadow_started`` / ``policy.shadow_stopped`` / ``policy.route_started`` /
``policy.route_stopped``) and read back at start-up, so they survive a restart.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from pydantic import BaseModel, Field

from engine.compare import Comparison
from engine.decision import Decider
from engine.errors import InvalidRequestError
from engine.models import UtcDateTime
from engine.policy import Policy
from engine.store import Store, utc_now

SHADOW, ROUTE = "shadow", "route"
_ROUTE_PERSON = b"ptsim-route"  # BLAKE2b personalisation: routing's hash is its own


def route_bucket(digest: bytes) -> float:
    """A card's routing number in [0, 1): the first 64 bits of BLAKE2b-64 (personalised
    ``ptsim-route``) of its stored fingerprint (the keyed HMAC of the card number), big-endian,
    over 2**64. A card is routed to the challenger while this is below the share."""
    value = int.from_bytes(hashlib.blake2b(digest, digest_size=8, person=_ROUTE_PERSON).digest())
    return value / 2**64


def routed(digests: list[bytes], share: float) -> np.ndarray:
    """Which of the cards ``digests`` a route of ``share`` sends to the challenger (bool)."""
    return np.array([route_bucket(d) < share for d in digests], dtype=bool)


@dataclass(frozen=True, slots=True)
class Experiment:
    """A shadow or a route in force: its policy (compiled), since when, and the routed share."""

    kind: str
    decider: Decider
    started_at: datetime  # UTC, aware
    share: float | None = None  # route only

    @property
    def policy(self) -> Policy:
        """The shadow or challenger policy."""
        return self.decider.policy


@dataclass(frozen=True, slots=True)
class LiveExperiments:
    """What the live writer reads once per group: the shadow and the route in force."""

    shadow: Experiment | None = None
    route: Experiment | None = None


class Experiments:
    """The shadow and route in force over one store: changed atomically with their audit entry,
    restored from the store at start-up. Thread-safe; :attr:`live` is swapped whole, so the
    live writer reads a consistent pair without a lock."""

    def __init__(self, store: Store, decider: Callable[[int], Decider]) -> None:
        self._store = store
        self._decider = decider  # version -> compiled policy (NotFoundError when unknown)
        self._lock = threading.Lock()
        self.live = LiveExperiments()
        self._restore()

    def _restore(self) -> None:
        rows = self._store.query("SELECT kind, version, share, started_at FROM policy_experiments")
        found = {
            kind: Experiment(kind, self._decider(version), started.replace(tzinfo=UTC), share)
            for kind, version, share, started in rows
        }
        self.live = LiveExperiments(found.get(SHADOW), found.get(ROUTE))

    def start_shadow(self, version: int) -> Experiment:
        """Shadow every live payment with stored version ``version`` from now on (replacing any
        shadow in force). :class:`~engine.errors.NotFoundError` for an unknown version."""
        with self._lock:
            experiment = Experiment(SHADOW, self._decider(version), utc_now().replace(tzinfo=UTC))
            self._put(experiment, "policy.shadow_started", {"version": version})
            self.live = LiveExperiments(experiment, self.live.route)
        return experiment

    def stop_shadow(self) -> Experiment | None:
        """Stop shadowing; the shadow that was in force, or None (then nothing is written)."""
        with self._lock:
            stopped = self.live.shadow
            if stopped is not None:
                self._delete(stopped, "policy.shadow_stopped")
                self.live = LiveExperiments(None, self.live.route)
        return stopped

    def route(self, version: int, share: float) -> Experiment | None:
        """Route ``share`` (in [0, 1]) of live cards to stored version ``version``; 0 ends the
        route in force (answering None). :class:`~engine.errors.NotFoundError` for an unknown
        version, :class:`~engine.errors.InvalidRequestError` (``share``) outside [0, 1]."""
        if not 0.0 <= share <= 1.0:
            raise InvalidRequestError("share", "share must be between 0 and 1.")
        with self._lock:
            decider = self._decider(version)
            if share == 0.0:
                ended = self.live.route
                if ended is not None:
                    self._delete(ended, "policy.route_stopped")
                    self.live = LiveExperiments(self.live.shadow, None)
                return None
            experiment = Experiment(ROUTE, decider, utc_now().replace(tzinfo=UTC), share)
            self._put(experiment, "policy.route_started", {"version": version, "share": share})
            self.live = LiveExperiments(self.live.shadow, experiment)
        return experiment

    def cleared(self) -> None:
        """Forget the shadow and route in force: the store's reset deleted their rows (and the
        audit entries that started them). Called by the live writer's reset, so no group is
        decided between the delete and this."""
        with self._lock:
            self.live = LiveExperiments()

    def _put(self, experiment: Experiment, event: str, payload: dict[str, object]) -> None:
        started = experiment.started_at.replace(tzinfo=None)
        with self._store.write() as tx:
            tx.execute("DELETE FROM policy_experiments WHERE kind = ?", [experiment.kind])
            tx.execute(
                "INSERT INTO policy_experiments VALUES (?, ?, ?, ?)",
                [experiment.kind, experiment.policy.version, experiment.share, started],
            )
            tx.execute(
                "INSERT INTO audit_log VALUES (NULL, ?, ?, ?, ?)",
                [started, event, experiment.policy.version, json.dumps(payload)],
            )

    def _delete(self, experiment: Experiment, event: str) -> None:
        with self._store.write() as tx:
            tx.execute("DELETE FROM policy_experiments WHERE kind = ?", [experiment.kind])
            tx.execute(
                "INSERT INTO audit_log VALUES (NULL, ?, ?, ?, ?)",
                [
                    utc_now(),
                    event,
                    experiment.policy.version,
                    json.dumps({"since": experiment.started_at.isoformat()}),
                ],
            )


class ShadowInfo(BaseModel):
    """The shadow in force."""

    version: int = Field(description="The policy version that shadows live traffic.")
    since: UtcDateTime = Field(description="When it started (UTC).")


class RouteInfo(BaseModel):
    """The route in force (champion/challenger)."""

    version: int = Field(description="The challenger policy version.")
    share: float = Field(description="The share of cards routed to it, in (0, 1].")
    since: UtcDateTime = Field(description="When this share started (UTC).")


class ShadowReport(BaseModel):
    """The shadow and route in force, and the shadow's comparison on live traffic."""

    shadow: ShadowInfo | None = Field(description="None when nothing shadows.")
    route: RouteInfo | None = Field(description="None when nothing is routed.")
    comparison: Comparison | None = Field(
        description="POST /compare's answer for the live payments the shadow decided since it "
        "started: a is what was enforced (the active policy, or the challenger for routed "
        "cards), b the shadow's stored decisions. None when nothing shadows."
    )

    @staticmethod
    def of(live: LiveExperiments, comparison: Comparison | None) -> ShadowReport:
        """The report of ``live`` with ``comparison``."""
        shadow, route = live.shadow, live.route
        return ShadowReport(
            shadow=None
            if shadow is None
            else ShadowInfo(version=shadow.policy.version, since=shadow.started_at),
            route=None
            if route is None
            else RouteInfo(
                version=route.policy.version, share=route.share or 0.0, since=route.started_at
            ),
            comparison=comparison,
        )
