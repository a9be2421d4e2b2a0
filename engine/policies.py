"""Stored policy versions: drafts, activations, list pins and compiled deciders.

A policy version is immutable once stored. Storing checks its rules against the catalogue and
the lists as they are now, and pins the newest version of every list the rules read, so a
decision and its backtest stay reproducible from the row and its policy version. Activation is
its own record (``policy_activations``, with an audit entry): the newest activation is the
active policy. Changing a list the active policy reads stores and activates a re-pinned copy
(:meth:`Policies.repin_active`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from engine.challenge import ChallengeModel
from engine.decision import Decider
from engine.errors import NotFoundError
from engine.lists import Lists, checked_note
from engine.pan import PAN_RULE, contains_pan
from engine.policy import Knobs, Policy, RuleSpec, ScoreWeights
from engine.rules import ACTION_NAMES, ListSpec, RuleError, compile_policy
from engine.store import ReadTx, Store, utc_now

_POLICY_COLUMNS = "version, created_at, knobs, note, definition"


class Policies:
    """Policy versions over one store, with their lists in ``lists``. Thread-safe; versions and
    deciders are cached (a stored version never changes)."""

    def __init__(self, store: Store, lists: Lists) -> None:
        self._store = store
        self._lists = lists
        self._cache: dict[int, Policy] = {}
        self._deciders: dict[Policy, Decider] = {}
        self._lock = threading.Lock()

    # -- checking and storing ----------------------------------------------------------------

    def draft(
        self,
        rules: Sequence[Any],
        score_weights: ScoreWeights | None = None,
        note: str = "",
        knobs: Knobs | None = None,
        challenge: ChallengeModel | None = None,
    ) -> Policy:
        """A checked, unsaved policy (version 0) pinning the newest version of every list its
        rules read. Raises :class:`~engine.rules.RuleError` naming the rule, part, line and
        column at fault (unknown lists included)."""
        note = checked_note(note)
        if isinstance(rules, Sequence) and not isinstance(rules, str | bytes):
            rules = [_checked_extras(i, rule) for i, rule in enumerate(rules)]
        summaries = {summary.name: summary for summary in self._lists.summaries()}
        compiled = compile_policy(  # checks shape, names, actions and conditions, in order
            rules, {name: ListSpec(s.kind, ()) for name, s in summaries.items()}
        )
        specs = tuple(
            RuleSpec(name=r.name, action=ACTION_NAMES[r.action], when=r.when, flags_risk=f)
            for r, f in zip(
                compiled.rules, (rule.get("flags_risk", True) for rule in rules), strict=True
            )
        )
        pins = tuple(sorted((name, summaries[name].version) for name in compiled.used_lists))
        return Policy(
            rules=specs,
            score_weights=score_weights or ScoreWeights(),
            lists=pins,
            note=note,
            knobs=knobs,
            challenge=challenge or ChallengeModel(),
        )

    def store(self, policy: Policy, note: str | None = None) -> Policy:
        """Store ``policy`` as a new version (not active) with a ``policy.created`` audit
        entry; return it with its version and creation time."""
        note = policy.note if note is None else note
        with self._store.write() as tx:
            (version,) = tx.one("SELECT coalesce(max(version), 0) + 1 FROM policies")
            now = utc_now()
            stored = policy.model_copy(update={"version": version, "created_at": now, "note": note})
            knobs = policy.knobs.model_dump(mode="json") if policy.knobs else None
            tx.execute(
                "INSERT INTO policies (version, created_at, knobs, note, definition) "
                "VALUES (?, ?, ?, ?, ?)",
                [version, now, json.dumps(knobs) if knobs else None, note, _definition(stored)],
            )
            tx.execute(
                "INSERT INTO audit_log VALUES (NULL, ?, 'policy.created', ?, ?)",
                [now, version, json.dumps({"note": note, **stored.definition()})],
            )
        with self._lock:
            self._cache[version] = stored
        return stored

    def activate(self, version: int, note: str = "activated") -> Policy:
        """Make stored version ``version`` the active policy (a ``policy.activated`` audit
        entry); :class:`NotFoundError` when no such version exists."""
        policy = self.get(version)
        self.decider(policy)  # compile (and load its lists) before it can decide anything
        with self._store.write() as tx:
            now = utc_now()
            tx.execute("INSERT INTO policy_activations VALUES (?, ?, ?)", [version, now, note])
            tx.execute(
                "INSERT INTO audit_log VALUES (NULL, ?, 'policy.activated', ?, ?)",
                [now, version, json.dumps({"note": note, **policy.definition()})],
            )
        return policy

    def repin(self, policy: Policy) -> Policy | None:
        """A draft of ``policy`` pinning the newest version of its lists, or None when its
        pins are already the newest."""
        fresh = self.draft(
            [rule.model_dump() for rule in policy.rules], policy.score_weights, knobs=policy.knobs
        )
        return None if fresh.lists == policy.lists else fresh

    # -- reading -----------------------------------------------------------------------------

    def get(self, version: int) -> Policy:
        """Stored version ``version``; :class:`NotFoundError` when there is none."""
        with self._lock:
            if (cached := self._cache.get(version)) is not None:
                return cached
        with self._store.read() as tx:
            row = tx.one(f"SELECT {_POLICY_COLUMNS} FROM policies WHERE version = ?", [version])
        if row is None:
            raise NotFoundError(f"No policy version {version}.")
        policy = _from_row(row)
        with self._lock:
            self._cache[version] = policy
        return policy

    def all(self) -> list[Policy]:
        """Every stored version, newest first."""
        with self._store.read() as tx:
            rows = tx.rows(f"SELECT {_POLICY_COLUMNS} FROM policies ORDER BY version DESC")
        return [_from_row(row) for row in rows]

    def active_version(self) -> int | None:
        """The version of the newest activation, or None before any."""
        with self._store.read() as tx:
            return _active_version(tx)

    def decider(self, policy: Policy) -> Decider:
        """``policy`` compiled for the numpy paths with its pinned lists (cached per policy:
        the decider also carries the version and weights the paths record and score with)."""
        key = policy
        with self._lock:
            if (cached := self._deciders.get(key)) is not None:
                return cached
        decider = Decider(policy, self.list_specs(policy))
        with self._lock:
            self._deciders[key] = decider
            while len(self._deciders) > 32:
                self._deciders.pop(next(iter(self._deciders)))
        return decider

    def list_specs(self, policy: Policy) -> dict[str, ListSpec]:
        """The pinned contents of every list ``policy`` reads."""
        specs = {}
        for name, version in policy.lists:
            snapshot = self._lists.items(name, version)
            specs[name] = ListSpec(snapshot.kind, snapshot.items)
        return specs


def _checked_extras(index: int, rule: Any) -> Any:
    """``rule`` as a mapping (a :class:`RuleSpec` is dumped); its optional ``flags_risk`` and
    unknown fields checked (the compiler checks name, action and condition)."""
    if isinstance(rule, RuleSpec):
        return rule.model_dump()
    if not isinstance(rule, Mapping):
        return rule  # the compiler says what a rule is
    unknown = sorted(set(rule) - {"name", "action", "when", "flags_risk"})
    if unknown:
        raise RuleError(
            f"unknown field {str(unknown[0])[:40]!r}: a rule has name, action, when and "
            "optionally flags_risk",
            rule=index,
        )
    if not isinstance(rule.get("flags_risk", True), bool):
        raise RuleError("flags_risk must be true or false", rule=index)
    for part in ("name", "when"):  # stored, audited and shown: never a card number
        if isinstance(rule.get(part), str) and contains_pan(rule[part]):
            raise RuleError(
                f"the {part} {PAN_RULE}: put cards in a card list (@name) instead",
                rule=index,
                part=part,
            )
    return rule


def _definition(policy: Policy) -> str:
    return json.dumps(policy.definition())


def _from_row(row: tuple[Any, ...]) -> Policy:
    version, created_at, knobs, note, definition = row
    if definition is None:  # stored by an earlier build: its knobs are the definition
        base = Policy.from_knobs(Knobs(**json.loads(knobs)))
    else:
        base = Policy(**json.loads(definition))
    return base.model_copy(update={"version": version, "created_at": created_at, "note": note})


def _active_version(tx: ReadTx) -> int | None:
    row = tx.one(
        "SELECT version FROM policy_activations ORDER BY activated_at DESC, rowid DESC LIMIT 1"
    )
    return None if row is None else int(row[0])
