"""The main job: the dashboard and the REST API in one process over one engine.

Two uvicorn servers share one asyncio loop: the FastAPI app on ``PTSIM_API_PORT`` and the
Streamlit ASGI app (``st.App``) on ``PTSIM_UI_PORT``. One process is what DuckDB's one-writer rule
asks for, and sharing the engine means a payment posted with curl shows up on the dashboard at
once. Ctrl-C (SIGINT) or SIGTERM stops both servers, drains queued payments and checkpoints the
database, so no WAL file is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import logging.handlers
import resource
import signal
import threading
from collections.abc import Iterator

import uvicorn
import uvloop

from api.app import create_app
from api.middleware import access_log
from engine.config import PROJECT_ROOT, Settings
from engine.errors import SettingsError
from engine.service import Engine
from workbench.connections import ConnectionLimits, guarded_protocol
from workbench.runtime import close_shared_engine, install_shared_engine

log = logging.getLogger("ptsim.server")


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve_forever`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(app: object, settings: Settings, port: int) -> uvicorn.Config:
    limits = ConnectionLimits(
        max_connections=settings.max_connections,
        idle_timeout_s=settings.idle_timeout_s,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        loop="uvloop",
        # httptools with deadlines per connection phase, a header limit and a connection limit
        # that makes room by closing idle sockets (workbench/connections.py); uvicorn's own
        # limit_concurrency counted idle sockets and answered plain text, so it stays unset.
        http=guarded_protocol(limits),
        access_log=False,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        backlog=settings.max_connections,
        timeout_keep_alive=settings.idle_timeout_s,  # type: ignore[arg-type]  (any number works)
    )


def refuse_public_without_token(settings: Settings) -> None:
    """Serving beyond loopback without an admin token leaves admin routes unusable and the
    dashboard's admin controls unguarded: refuse, unless explicitly allowed."""
    if settings.admin_token or settings.allow_public_without_token or _is_loopback(settings.host):
        return
    raise SettingsError(
        f"PTSIM_HOST={settings.host} serves beyond this machine without an admin token: set "
        "PTSIM_ADMIN_TOKEN (e.g. to the output of 'openssl rand -hex 32'), bind "
        "PTSIM_HOST=127.0.0.1, or set PTSIM_ALLOW_PUBLIC_WITHOUT_TOKEN=true."
    )


def _is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def _raise_open_files_limit(settings: Settings, servers: int) -> None:
    """Each open connection is a file descriptor: raise the soft limit towards what
    ``max_connections`` needs (up to the hard limit), and say so when it cannot be reached."""
    needed = servers * (settings.max_connections + 64) + 256  # + database, logs, browser fds
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning(
                "Open-file limit %d is below the %d that PTSIM_MAX_CONNECTIONS=%d needs; raise "
                "'ulimit -n' or lower PTSIM_MAX_CONNECTIONS.",
                target,
                needed,
                settings.max_connections,
            )


async def _serve(servers: list[_QuietServer], urls: list[str]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            stop()
            break
        await asyncio.sleep(0.05)
    else:
        for url in urls:
            print(url, flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)


def run(settings: Settings, with_dashboard: bool = True) -> int:
    """Start the engine, then the API (and the dashboard); block until Ctrl-C. Exit code."""
    refuse_public_without_token(settings)
    _raise_open_files_limit(settings, servers=2 if with_dashboard else 1)
    engine = Engine(settings)
    install_shared_engine(engine)
    _tune_garbage_collector()
    flusher = threading.Event()
    try:
        servers = [_QuietServer(_config(create_app(engine), settings, settings.api_port))]
        urls = [f"API:       http://{settings.host}:{settings.api_port}  (docs at /docs)"]
        if with_dashboard:
            servers.append(_QuietServer(_config(_dashboard_app(), settings, settings.ui_port)))
            urls.insert(0, f"Dashboard: http://{settings.host}:{settings.ui_port}")
        # After the uvicorn configs: each applies a logging dictConfig, which closes existing
        # handlers (a closed MemoryHandler drops its target and would swallow every line).
        flusher = _buffer_access_log()
        uvicorn_loop = uvloop.new_event_loop()  # Config(loop=...) only applies to uvicorn.run
        try:
            uvicorn_loop.run_until_complete(_serve(servers, urls))
        finally:
            uvicorn_loop.close()
        failed = [s for s in servers if not s.started]
        return 1 if failed else 0
    finally:
        flusher.set()
        close_shared_engine()
        print("Stopped; database closed.", flush=True)


def _buffer_access_log(interval_s: float = 0.5) -> threading.Event:
    """Write the one-line-per-request access log in batches: formatting and writing each line as
    it happened cost ~15% of the HTTP path's time. Lines reach stderr within ``interval_s`` (at
    once for errors); set the returned event to flush and stop."""
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    buffered = logging.handlers.MemoryHandler(10_000, flushLevel=logging.ERROR, target=stderr)
    access_log.addHandler(buffered)
    access_log.propagate = False
    stop = threading.Event()

    def flush() -> None:
        while not stop.wait(interval_s):
            buffered.flush()
        buffered.flush()

    threading.Thread(target=flush, name="ptsim-access-log", daemon=True).start()
    return stop


def _tune_garbage_collector() -> None:
    """Request handling allocates many short-lived objects; with the default generation-0
    threshold (700) the collector ran every few requests and its pauses were the p99 tail under
    load (63 ms -> 21 ms at 32 concurrent payments). Start-up objects are frozen out of it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _dashboard_app() -> object:
    import streamlit as st

    return st.App(str(PROJECT_ROOT / "streamlit_app.py"))
