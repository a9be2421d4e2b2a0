"""Slow, idle, oversized and too many connections against the real ``ptsim api`` on 127.0.0.1.

Every client here writes its whole request before it reads, as plain ``http.client`` and raw
sockets do. The servers run with timeouts configured very small (1 s) so each test waits for the
server to act, never for a wall-clock threshold: a test asserts that the socket got an answer
and was closed, with a generous socket timeout only so that a regression fails instead of hanging.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.reliability.live_server import LiveServer

PAYMENT = {
    "amount": 12.5,
    "currency": "USD",
    "card_number": "4111111111111111",
    "merchant": "Corner Shop",
}
TEN_MB = 10 * 1024 * 1024
WAIT_S = 30  # upper bound on any single wait: a regression fails instead of hanging
FAST = {
    "PTSIM_IDLE_TIMEOUT_S": "1",
    "PTSIM_HEADER_TIMEOUT_S": "1",
    "PTSIM_BODY_TIMEOUT_S": "1",
}


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp(name)
    server = LiveServer(folder / "live.duckdb", folder / "server.log", **env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with the default limits."""
    yield from _server(tmp_path_factory, "default")


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose idle, header and body deadlines are 1 s."""
    yield from _server(tmp_path_factory, "fast", **FAST)


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with room for eight connections."""
    yield from _server(tmp_path_factory, "small", PTSIM_MAX_CONNECTIONS="8")


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return status, headers, json.loads(body[: int(headers["content-length"])])


def _assert_envelope(body: dict[str, Any], type_: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["type"] == type_
    assert body["error"]["message"] and body["error"]["request_id"]


def _payment_ok(server: LiveServer) -> None:
    answer = httpx.post(f"{server.url}/payment", json=PAYMENT, timeout=WAIT_S)
    assert answer.status_code == 201, answer.text


# -- oversized bodies: the client reads the 413, not a reset ----------------------------------


def test_http_client_writing_ten_megabytes_reads_the_413(default_server: LiveServer) -> None:
    server = default_server
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    body = json.dumps({**PAYMENT, "merchant": "m" * TEN_MB}).encode()
    connection.request("POST", "/payment", body, {"Content-Type": "application/json"})
    answer = connection.getresponse()
    assert answer.status == 413
    _assert_envelope(json.loads(answer.read()), "payload_too_large")
    # The rest of the body was read and discarded: the same connection serves the next request.
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200
    connection.close()


def test_raw_socket_with_content_length_reads_the_413(default_server: LiveServer) -> None:
    server = default_server
    with _connect(server) as sock:
        head = (
            "POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {TEN_MB}\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * TEN_MB)
        status, headers, body = _parse(_read_until_closed(sock))
    assert status == 413 and headers["content-type"] == "application/json"
    _assert_envelope(body, "payload_too_large")


def test_raw_socket_with_a_chunked_body_reads_the_413(default_server: LiveServer) -> None:
    server = default_server
    chunk = b"y" * 65536
    with _connect(server) as sock:
        sock.sendall(
            b"POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        for _ in range(TEN_MB // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        status, _, body = _parse(_read_until_closed(sock))
    assert status == 413
    _assert_envelope(body, "payload_too_large")


def test_http_client_chunked_upload_reads_the_413(default_server: LiveServer) -> None:
    server = default_server

    def chunks() -> Iterator[bytes]:
        for _ in range(160):
            yield b"z" * 65536

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    connection.request(
        "POST",
        "/payment",
        chunks(),
        {"Content-Type": "application/json"},
        encode_chunked=True,
    )
    answer = connection.getresponse()
    assert answer.status == 413
    _assert_envelope(json.loads(answer.read()), "payload_too_large")
    connection.close()


# -- idle and slow connections are closed -----------------------------------------------------


def test_a_connection_that_never_sends_is_closed(fast_server: LiveServer) -> None:
    with _connect(fast_server) as sock:
        assert _read_until_closed(sock) == b""  # closed by the server, no answer owed
    _payment_ok(fast_server)


def test_a_kept_alive_connection_that_goes_quiet_is_closed(fast_server: LiveServer) -> None:
    with _connect(fast_server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = _read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 200")


def test_trickled_headers_answer_408_and_are_closed(fast_server: LiveServer) -> None:
    with _connect(fast_server) as sock:
        sock.sendall(b"POST /payment HTTP/1.1\r\nHost: x\r\n")
        answer = b""
        for _ in range(int(WAIT_S / 0.2)):  # one header byte every 0.2 s, the slowloris way
            try:
                sock.sendall(b"X")
            except OSError:
                break  # the server has shut the connection
            time.sleep(0.2)
            sock.setblocking(False)
            try:
                answer = sock.recv(65536)
            except BlockingIOError:
                continue
            finally:
                sock.setblocking(True)
            break
        answer += _read_until_closed(sock)
    status, headers, body = _parse(answer)
    assert status == 408 and headers["connection"] == "close"
    _assert_envelope(body, "request_timeout")
    _payment_ok(fast_server)


def test_a_trickled_body_answers_408_and_is_closed(fast_server: LiveServer) -> None:
    body = json.dumps(PAYMENT).encode()
    before = httpx.get(f"{fast_server.url}/stats", timeout=WAIT_S).json()["total"]
    with _connect(fast_server) as sock:
        sock.sendall(
            b"POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        answer = b""
        for byte in body:  # one body byte every 0.2 s
            sock.setblocking(False)
            try:
                answer = sock.recv(65536)
                break
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
        answer += _read_until_closed(sock)
    status, _, error = _parse(answer)
    assert status == 408
    _assert_envelope(error, "request_timeout")
    after = httpx.get(f"{fast_server.url}/stats", timeout=WAIT_S).json()["total"]
    assert after == before  # the half-sent payment was never decided
    # The access log calls the abandoned request a 499 (client closed request), not a 500.
    for _ in range(int(WAIT_S / 0.2)):  # the access log is written in batches
        if '"status": 499' in fast_server.output():
            break
        time.sleep(0.2)
    log = fast_server.output()
    assert '"path": "/payment", "status": 499' in log and '"status": 500' not in log


def test_a_huge_header_answers_431(default_server: LiveServer) -> None:
    server = default_server
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4_000_000 + b"\r\n\r\n")
        status, _, body = _parse(_read_until_closed(sock))
    assert status == 431
    _assert_envelope(body, "headers_too_large")


def test_invalid_http_answers_the_json_envelope(default_server: LiveServer) -> None:
    server = default_server
    with _connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        status, _, body = _parse(_read_until_closed(sock))
    assert status == 400
    _assert_envelope(body, "bad_request")


# -- the connection limit -------------------------------------------------------------------


def test_idle_sockets_at_the_limit_do_not_refuse_payments(small_server: LiveServer) -> None:
    server = small_server
    idle = [_connect(server) for _ in range(16)]  # twice the limit, all silent
    try:
        for _ in range(3):
            _payment_ok(server)
    finally:
        for sock in idle:
            sock.close()


def test_beyond_the_limit_of_requests_in_progress_the_503_is_the_envelope(
    small_server: LiveServer,
) -> None:
    server = small_server
    body = json.dumps(PAYMENT).encode()
    busy = []
    try:
        for _ in range(8):  # eight requests in progress: headers sent, body never finished
            sock = _connect(server)
            sock.sendall(
                b"POST /payment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:5])
            )
            busy.append(sock)
        # A request in progress is what the limit counts: wait until the server sees all eight.
        answer = httpx.get(f"{server.url}/health", timeout=WAIT_S)
        for _ in range(int(WAIT_S / 0.1)):
            if answer.status_code == 503:
                break
            time.sleep(0.1)
            answer = httpx.get(f"{server.url}/health", timeout=WAIT_S)
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["retry-after"] == "1"
        _assert_envelope(answer.json(), "service_unavailable")
    finally:
        for sock in busy:
            sock.close()
    _payment_ok(server)
