"""Connection guard: uvicorn's httptools protocol with deadlines, a header limit and room-making.

What uvicorn's own options leave open (uvicorn 0.54, httptools):

* ``timeout_keep_alive`` is armed only after a response, so a connection that never sends a
  request, or that trickles its headers or its body, is never timed out;
* ``h11_max_incomplete_event_size`` bounds headers for h11 only; httptools accepts any size
  (a 64 MB header was accepted);
* ``limit_concurrency`` counts *open connections*: 1,024 idle sockets made every request answer
  its plain-text 503, for as long as the sockets stayed open.

:class:`GuardedProtocol` adds, per connection, one deadline for whichever phase it is in, checked
by one sweep per server (no timer per request on the hot path):

=========  ==================================================  ===========================
phase      from                                                 deadline
=========  ==================================================  ===========================
idle       connect, or the end of the previous response        ``idle_timeout_s``: close
head       the request's first byte                             ``header_timeout_s``: 408
body       the end of the headers (until the body's last byte)  ``body_timeout_s``: 408
busy       the body's last byte (the application's own time)    none
linger     a refusal (408/431/503): the answer is sent, the     ``LINGER_S``: close
           write side shut, the rest of the request discarded
=========  ==================================================  ===========================

A request line plus headers over ``max_header_bytes`` answers 431. At ``max_connections`` a new
connection makes room by closing the open connection nearest its deadline that is idle or still
sending its head (an idle keep-alive socket or a slowloris); only when every connection has a
request in progress does a new request answer 503. Every refusal is the API's JSON envelope and
is followed by a lingering close (as nginx does), so a client that writes its whole request
before reading still reads the answer instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.middleware import Receive, Scope, Send, _error_bytes, _next_request_id

_Base = HttpToolsProtocol  # called directly, not through super(): these run for every request

LINGER_S = 2.0  # how long a refused connection is read and discarded before it is closed
# How much of a refused or already-answered request is read and discarded at most (a 413'd
# upload is read to its end so the client can read the answer; beyond this it is cut off).
MAX_DISCARD_BYTES = 64 * 1024 * 1024

_IDLE, _HEAD, _BODY, _BUSY, _LINGER, _CLOSED = range(6)
_TIMED = (_IDLE, _HEAD, _BODY, _LINGER)  # the phases with a deadline
_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class ConnectionLimits:
    """One server's connection bounds and the sweep that enforces their deadlines.

    Each timed phase keeps its connections in a dict in the order they entered it; one phase
    has one timeout, so that is deadline order: the sweep and the choice of a connection to
    close both look only at the front (O(1), not a scan of every open connection).
    """

    def __init__(
        self,
        max_connections: int,
        idle_timeout_s: float,
        header_timeout_s: float,
        body_timeout_s: float,
        max_header_bytes: int,
    ) -> None:
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_header_bytes = max_header_bytes
        self.timeout_s = {
            _IDLE: idle_timeout_s,
            _HEAD: header_timeout_s,
            _BODY: body_timeout_s,
            _LINGER: LINGER_S,
        }
        self.sweep_interval_s = min(1.0, max(0.05, min(self.timeout_s.values()) / 4))
        self.queues: dict[int, dict[GuardedProtocol, None]] = {phase: {} for phase in _TIMED}
        self.open: set[GuardedProtocol] = set()  # HTTP connections this guard still owns
        self._sweep: asyncio.TimerHandle | None = None

    def admit(self, connection: GuardedProtocol, loop: asyncio.AbstractEventLoop) -> bool:
        """Track a new connection; False when the server is full of requests in progress."""
        self.open.add(connection)
        if self._sweep is None:
            self._sweep = loop.call_later(self.sweep_interval_s, self._expire, loop)
        if len(self.open) <= self.max_connections:
            return True
        victim = self._nearest_deadline((_IDLE, _HEAD), besides=connection)
        if victim is None:
            return False
        victim.close_now()
        return True

    def release(self, connection: GuardedProtocol) -> None:
        self.open.discard(connection)

    def _nearest_deadline(
        self, phases: tuple[int, ...], besides: GuardedProtocol
    ) -> GuardedProtocol | None:
        best = None
        for phase in phases:
            for candidate in self.queues[phase]:  # the front is the nearest deadline
                if candidate is not besides:
                    if best is None or candidate.deadline < best.deadline:
                        best = candidate
                    break
        return best

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for queue in self.queues.values():
            for connection in list(itertools.takewhile(lambda c: c.deadline <= now, queue)):
                connection.expire()
        self._sweep = (
            loop.call_later(self.sweep_interval_s, self._expire, loop) if self.open else None
        )


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedProtocol]:
    """The protocol class for one uvicorn server (``uvicorn.Config(http=...)``)."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


class GuardedProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` plus the deadlines, header limit and room-making above."""

    limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit_concurrency = None  # uvicorn's open-connection count is replaced, see admit()
        self.phase = _CLOSED  # until connection_made
        self._queued = _CLOSED  # the phase whose queue holds this connection
        self._begun = False  # a request began during the chunk being parsed
        self.deadline = math.inf
        self._head_bytes = 0
        self._chunk_bytes = 0
        self._discarded = 0
        self._over_limit = False
        self._close_after_response = False

    # -- the connection ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._enter(_IDLE)
        self._over_limit = not self.limits.admit(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(_CLOSED)
        self.limits.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.phase == _LINGER:
            self._discard(len(data))
            return
        self._chunk_bytes = len(data)
        _Base.data_received(self, data)
        if self.phase == _HEAD:  # the head is still incomplete after this whole chunk
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse_head_too_large()
        # One queue move per chunk, not per phase it passed through (a whole request usually
        # arrives in one chunk: idle -> busy); a new request re-enters even the same phase.
        if self.phase != self._queued or self._begun:
            self._begun = False
            self._requeue()

    def handle_websocket_upgrade(self) -> None:
        self._enter(_CLOSED)  # the websocket protocol owns the socket from here
        self.limits.release(self)
        super().handle_websocket_upgrade()

    # -- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        _Base.on_message_begin(self)
        self.phase = _HEAD  # parser callbacks only set the phase; data_received requeues
        self._begun = True
        self._head_bytes = 0
        self._discarded = 0

    def on_headers_complete(self) -> None:
        if self._head_bytes + self._chunk_bytes > self.limits.max_header_bytes and (
            self._head_size() > self.limits.max_header_bytes
        ):
            self._refuse_head_too_large()
            raise _Refused  # stops the parser; send_400_response below stays silent
        self.phase = _BODY
        previous = self.cycle
        if self._over_limit or len(self.tasks) >= self.limits.max_connections:
            self._close_after_response = True
            app, self.app = self.app, _service_unavailable  # type: ignore[assignment]
            try:
                _Base.on_headers_complete(self)
            finally:
                self.app = app
        else:
            _Base.on_headers_complete(self)
        cycle = self.cycle
        if cycle is previous:  # a WebSocket upgrade: no cycle, the WebSocket protocol takes over
            self.phase = _BUSY
        elif not cycle.keep_alive:  # the client asked for close, or speaks HTTP/1.0
            cycle.transport = _CloseGently(self)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        if self.phase == _BODY and self.cycle.response_complete:
            self._discard(len(body))  # answered before its body was read: discard the rest
            return
        _Base.on_body(self, body)

    def on_message_complete(self) -> None:
        if self.phase == _BODY:
            self.phase = _IDLE if self.cycle.response_complete else _BUSY
        _Base.on_message_complete(self)

    def on_response_complete(self) -> None:
        _Base.on_response_complete(self)
        if self._close_after_response:
            self._linger()
        elif self.phase == _BUSY and self.cycle.response_complete:  # not a pipelined request
            self._enter(_IDLE)

    # -- deadlines and refusals ---------------------------------------------------------------
    def _enter(self, phase: int) -> None:
        """Move to ``phase`` now (outside the parser's callbacks)."""
        self.phase = phase
        self._requeue()

    def _requeue(self) -> None:
        """Out of the queue it is in, to the back of its phase's queue (deadline from now)."""
        queues = self.limits.queues
        if self._queued in queues:
            queues[self._queued].pop(self, None)
        phase = self._queued = self.phase
        if phase in queues:
            self.deadline = self.loop.time() + self.limits.timeout_s[phase]
            queues[phase][self] = None
        else:
            self.deadline = math.inf

    def expire(self) -> None:
        """The phase's deadline passed (called by the sweep)."""
        if self.phase == _HEAD:
            seconds = self.limits.header_timeout_s
            self._refuse(408, "request_timeout", f"The request headers took over {seconds:g} s.")
        elif self.phase == _BODY and not self.cycle.response_started:
            self._stop_application()
            seconds = self.limits.body_timeout_s
            self._refuse(408, "request_timeout", f"The request body took over {seconds:g} s.")
        else:
            self.close_now()

    def close_now(self) -> None:
        """Close at once (an idle connection, a finished linger, or room for a new one)."""
        self._enter(_CLOSED)
        self.limits.release(self)
        self._stop_application()
        if not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Invalid HTTP: the JSON envelope instead of uvicorn's plain text."""
        if self.phase not in (_LINGER, _CLOSED):
            self._refuse(400, "bad_request", "The request is not valid HTTP/1.1.")

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _refuse_head_too_large(self) -> None:
        limit = self.limits.max_header_bytes
        self._refuse(
            431, "headers_too_large", f"The request line and headers exceed {limit} bytes."
        )

    def _refuse(self, status: int, type_: str, message: str) -> None:
        """Answer ``status`` with the JSON envelope, then close after a lingering read."""
        request_id = _next_request_id()
        body = _error_bytes(type_, message, request_id)
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"request-id: %s\r\nconnection: close\r\n\r\n"
            % (status, _REASONS[status], len(body), request_id.encode())
        )
        if not self.transport.is_closing():
            self.transport.write(head + body)
        self._linger()

    def _linger(self) -> None:
        """Shut the write side after the answer, read and discard what the client still sends
        (so its unread request does not turn our close into a reset that loses the answer)."""
        if self.phase in (_LINGER, _CLOSED):
            return
        self._enter(_LINGER)
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def _discard(self, count: int) -> None:
        self._discarded += count
        if self._discarded > MAX_DISCARD_BYTES:
            self.close_now()

    def _stop_application(self) -> None:
        """The application still waiting for this request's body gets ``http.disconnect``."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()


class _CloseGently:
    """The transport as a closing request's cycle sees it: uvicorn closes the connection right
    after such a response, which, with part of the body unread, resets it and loses the answer;
    this lingers instead. Only requests that asked to close get it (not the keep-alive hot path).
    """

    def __init__(self, connection: GuardedProtocol) -> None:
        self._connection = connection
        self._transport = connection.transport

    def close(self) -> None:
        if self._connection.phase == _BODY:  # answered before its body was read
            self._connection._linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Refused(httptools.HttpParserError):
    """Raised inside a parser callback to stop parsing a refused request."""


async def _service_unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    """Every connection has a request in progress: the JSON envelope, not uvicorn's text."""
    request_id = _next_request_id()
    body = _error_bytes(
        "service_unavailable",
        "The server is at its connection limit; retry in a moment.",
        request_id,
    )
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        (b"retry-after", b"1"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
