"""Admin acts in the dashboard need the same token as the API's admin routes.

Every write the API reserves for admins (reset, backup, activating a policy; later lists,
disputes, shadow runs, routing) is a dashboard control drawn with ``disabled=not unlocked`` and
an ``on_click`` wrapped by :func:`admin_only`; :func:`admin_access` draws the prompt. The token
(``PTSIM_ADMIN_TOKEN``, engine settings) is entered once per browser session: a correct entry
sets a flag in ``st.session_state``; wrong entries draw on the same per-client budget as the
API's (``PTSIM_ADMIN_FAILURE_LIMIT``, ``Engine.admin_failures``). The token itself is compared
in constant time, never kept in the session and never displayed. Without a configured token the
controls stay disabled and say how to enable them.

Usage on a page::

    unlocked = admin_access(eng, "admin")
    st.button("Reset all data", disabled=not unlocked, on_click=admin_only(eng, do_reset))
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.service import Engine

NOT_CONFIGURED = "Admin actions are disabled: set PTSIM_ADMIN_TOKEN and restart ptsim serve."
ASK = "Admin actions need the admin token (PTSIM_ADMIN_TOKEN); enter it once per browser session."
WRONG = "Wrong admin token: nothing was changed."
THROTTLED = (
    "Too many wrong admin tokens from this client (PTSIM_ADMIN_FAILURE_LIMIT); retry after "
    "{seconds} s. Nothing was checked or changed."
)
REFUSED = "Admin actions are locked: enter the admin token first; nothing was changed."
_UNLOCKED = "admin_unlocked"  # session flag: this browser session entered the right token
_NOTICE = "admin_gate_notice"  # a refusal to show on the next run (set inside callbacks)


def token_configured(eng: Engine) -> bool:
    """Whether the process has an admin token (without one, admin acts are disabled)."""
    return eng.settings.admin_token is not None


def token_matches(eng: Engine, supplied: str) -> bool:
    """``supplied`` is the configured admin token (constant-time comparison, as the API does)."""
    configured = eng.settings.admin_token
    if configured is None:
        return False
    return hmac.compare_digest(supplied.encode(), configured.get_secret_value().encode())


def is_unlocked(eng: Engine) -> bool:
    """This browser session entered the right token (and the process has one)."""
    return token_configured(eng) and st.session_state.get(_UNLOCKED) is True


def admin_only(eng: Engine, act: Callable[..., Any]) -> Callable[..., None]:
    """``act`` as a widget callback that runs only in an unlocked session.

    Disabled buttons are not enough: a client can still send their trigger, so the check is
    repeated on the server when the act would run."""

    def guarded(*args: Any, **kwargs: Any) -> None:
        if not is_unlocked(eng):
            st.session_state[_NOTICE] = NOT_CONFIGURED if not token_configured(eng) else REFUSED
            return
        act(*args, **kwargs)

    return guarded


def _client() -> str:
    """The browser's address, as the API keys its clients (so a guess through either counts
    against the same budget); sessions without one share a key."""
    address = st.context.ip_address  # None without one (and not a str under AppTest)
    return address if isinstance(address, str) and address else "dashboard"


def _check_entry(eng: Engine, field: str) -> None:
    supplied = str(st.session_state.get(field) or "")
    st.session_state[field] = ""  # the token does not stay in the session (nor in the input)
    client = _client()
    if wait := eng.admin_failures.wait(client):
        # refused before comparing, even when right: the throttle never confirms a guess
        st.session_state[_UNLOCKED] = False
        st.session_state[_NOTICE] = THROTTLED.format(seconds=max(1, math.ceil(wait)))
    elif token_matches(eng, supplied):
        st.session_state[_UNLOCKED] = True
    else:
        eng.admin_failures.take(client)
        st.session_state[_UNLOCKED] = False
        st.session_state[_NOTICE] = WRONG


def _lock() -> None:
    st.session_state[_UNLOCKED] = False


def admin_access(eng: Engine, key: str) -> bool:
    """Draw the admin-token prompt (or why admin acts are off); True when they are allowed.

    ``key`` prefixes the widget keys, so several pages (or two places on one page) can draw it.
    """
    if notice := st.session_state.pop(_NOTICE, None):
        st.error(notice)
    if not token_configured(eng):
        st.info(NOT_CONFIGURED, icon=":material/lock:")
        return False
    if is_unlocked(eng):
        row = st.container(horizontal=True, vertical_alignment="center")
        row.caption(":material/lock_open: Admin actions unlocked for this browser session.")
        row.button("Lock", key=f"{key}_admin_lock", on_click=_lock)
        return True
    field = f"{key}_admin_token"
    with st.form(f"{key}_admin_form", border=False):
        st.text_input(
            "Admin token",
            type="password",
            key=field,
            help=ASK,
            placeholder="PTSIM_ADMIN_TOKEN",
            width=320,
        )
        st.form_submit_button(
            "Unlock admin actions",
            key=f"{key}_admin_unlock",
            on_click=_check_entry,
            args=(eng, field),
        )
    st.caption(ASK)
    return False
