"""List management for the dashboard: see every named list, upload or replace one (admin).

Drawn by the admin page (:func:`lists_section`); a self-contained section so the rule workbench
can draw it beside the rule editor. Items are one per line, typed or from a text file; a
refusal names the line (the engine names ``items[i]``, which is line ``i + 1`` of the items
after blank lines are dropped, so the message is rewritten to the line the person sees).
"""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from engine.errors import InvalidRequestError
from engine.lists import KINDS
from engine.service import Engine
from workbench.admin_gate import admin_only

_NOTICE = "lists_notice"
_ERROR = "lists_error"
_ITEM_FIELD = re.compile(r"^Field 'items\[(\d+)\]'")
KIND_HELP = {
    "card": "card numbers (12–19 digits); only their fingerprints are stored",
    "bin": "six-digit BINs (a card's first six digits)",
    "device": "device ids (printable ASCII, no spaces)",
    "merchant": "merchant names",
    "currency": "ISO 4217 codes (GBP, EUR, ...)",
    "text": "any text, up to 200 characters per line",
}


def _lines(text: str) -> tuple[list[str], list[int]]:
    """The non-blank lines of ``text`` and the line number (from 1) of each."""
    items, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            items.append(line)
            numbers.append(number)
    return items, numbers


def _where(exc: InvalidRequestError, numbers: list[int], source: str) -> str:
    """The engine's message with ``Field 'items[i]'`` as the line the person typed."""
    match = _ITEM_FIELD.match(exc.message)
    if not match:
        return exc.message
    line = numbers[int(match.group(1))]
    return _ITEM_FIELD.sub(f"Line {line} of the {source}", exc.message)


def _save(eng: Engine) -> None:
    """Store the typed or uploaded items as the list's next version (an admin act)."""
    state = st.session_state
    upload = state.get("lists_file")
    if upload is not None:
        try:
            text, source = upload.getvalue().decode("utf-8"), "file"
        except UnicodeDecodeError:
            state[_ERROR] = "The file is not UTF-8 text: save it as plain text, one item a line."
            return
    else:
        text, source = str(state.get("lists_items") or ""), "items"
    items, numbers = _lines(text)
    name = str(state.get("lists_name") or "").strip()
    try:
        outcome = eng.put_list(name, state["lists_kind"], items, str(state.get("lists_note") or ""))
    except InvalidRequestError as exc:
        state[_ERROR] = _where(exc, numbers, source)
        return
    summary = outcome.summary
    state[_NOTICE] = (
        f"List {summary.name} saved as version {summary.version} "
        f"({summary.item_count:,} item{'' if summary.item_count == 1 else 's'})."
        if outcome.changed
        else f"List {summary.name} is unchanged: version {summary.version} already holds "
        "these items, so no version was made."
    )
    state["lists_items"] = ""


def lists_section(eng: Engine, unlocked: bool) -> None:
    """Draw the lists table, a list's first items, and the upload form (enabled when
    ``unlocked``: the admin gate's answer for this session)."""
    if notice := st.session_state.pop(_NOTICE, None):
        st.success(notice)
    if problem := st.session_state.pop(_ERROR, None):
        st.error(problem)
    summaries = eng.lists.summaries()
    if summaries:
        table = pd.DataFrame(
            {
                "list": [f"@{s.name}" for s in summaries],
                "kind": [s.kind for s in summaries],
                "items": [s.item_count for s in summaries],
                "version": [s.version for s in summaries],
                "changed at (UTC)": [s.created_at for s in summaries],
                "note": [s.note for s in summaries],
            }
        )
        st.dataframe(table, hide_index=True)
        shown = st.selectbox("Show items of", [s.name for s in summaries], key="lists_show")
        summary, items = eng.lists.page(shown, limit=100)
        caption = (
            f"@{shown} version {summary.version}: first {len(items)} of {summary.item_count:,}"
        )
        if summary.kind == "card":
            caption += " (card fingerprints: card numbers are never stored)"
        st.caption(caption)
        st.code("\n".join(items) or "(empty)", language=None)
    else:
        st.info("No lists yet. Rules use them as @name, e.g. :card_bin: in @risky_bins.")

    st.markdown("**Upload or replace a list** — the items replace the list's current ones.")
    left, right = st.columns([1, 1])
    left.text_input(
        "Name", key="lists_name", placeholder="risky_bins", help="Letters, digits and _"
    )
    kind = right.selectbox("Kind", KINDS, key="lists_kind", format_func=str)
    st.caption(f"{kind}: {KIND_HELP[kind]}.")
    st.text_area("Items, one a line", key="lists_items", height=150)
    st.file_uploader(
        "…or a text file, one item a line (used instead of the box)",
        type=["txt", "csv"],
        key="lists_file",
    )
    st.text_input("Note (optional)", key="lists_note")
    st.button(
        "Save list",
        key="lists_save",
        type="primary",
        disabled=not unlocked,
        on_click=admin_only(eng, _save),
        args=(eng,),
    )
