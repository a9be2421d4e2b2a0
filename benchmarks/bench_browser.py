"""Dashboard speed as the user feels it: every page in headless Chromium, at 1M and 10M rows.

    .venv/bin/python benchmarks/bench_browser.py                        # 1M and 10M rows
    .venv/bin/python benchmarks/bench_browser.py --rows 1000000         # one size
    .venv/bin/python benchmarks/bench_browser.py --pages tuning live    # some pages

What it does, per size:

1. **Data.** A database of ``rows`` simulated payments (``ptsim generate``: one run of ``rows``
   rows over 30 simulated days with 2% fraud, plus a 20,000-row second run so the Simulations
   page has two runs to compare), cached by its parameters under ``--cache``
   (``~/.cache/ptsim-bench`` by default, outside the repository) and copied to a temporary
   directory for each run, so every run starts from the same file.
2. **Browser.** The real server (``ptsim serve`` on free 127.0.0.1 ports, ``PTSIM_DB`` set,
   backups off) and Debian's Chromium through Playwright. For each page, ``--repeat`` times: a
   live payment is posted through the API (so no result cached by an earlier repetition can
   answer: the data version changed, as it does under live traffic), then a new tab opens the
   page (**open in a new tab**: from navigation until the script run finished, nothing is stale
   and the page's charts are drawn), performs the page's main interactions one after another,
   each timed from the user's action (the click, the Enter key) until its result is rendered,
   and finally opens the page again **from the sidebar** of another page (same session, as a
   user moving between pages does). Tabs share their browser's HTTP cache, warmed by one untimed
   load, as a returning user's do.
3. **Server.** The server is ``ptsim serve`` with one hook (``--serve``, below): it logs the start
   and duration of every script run it executes (Streamlit's one function that runs a page:
   script, engine calls, building the elements' messages). The server time of a step is the sum
   of the full (non-fragment) runs that started between the action and the rendered result, so
   browser minus server is session set-up, transport and rendering.

"Done" in the browser is read from the page itself: Streamlit's root element carries
``data-test-script-state`` (``running`` while a script or fragment run is in progress,
``notRunning`` after it); a MutationObserver installed before the page loads logs every change,
so a run shorter than a frame is not missed. An interaction is done when a run started after
the action has finished, no element is ``data-stale``, the page's charts exist and the text of
the element the action changes differs from before (this last check guards against a
self-refreshing fragment's run being taken for the action's). The running icon is no signal:
Streamlit only shows it after 500 ms.

Targets at 10M rows, medians of ``--repeat`` (5): every first load <= 1.0 s, every interaction
that recomputes (a backtest, a filter change) <= 1.0 s, every other interaction <= 0.3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PTSIM = str(ROOT / ".venv" / "bin" / "ptsim")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SEED, DAYS, FRAUD_RATE = 1, 30, 0.02
SECOND_RUN_ROWS = 20_000
WAIT_MS = 60_000
ATTEMPTS = 3
TARGET_LOAD_S, TARGET_RECOMPUTE_S, TARGET_OTHER_S = 1.0, 1.0, 0.3
PAYMENT = {
    "card_number": "4000000000000002",
    "amount": "25.00",
    "currency": "GBP",
    "merchant": "Bench Shop",
    "channel": "pos",
}

# Logs every value of the root's data-test-script-state, transient ones included (a mutation
# record's oldValue keeps a state that changed again within the same batch).
OBSERVER_JS = """
window.__bench = (() => {
  const log = [];
  let last = null;
  const times = [];
  const push = (s) => {
    if (s !== last) { log.push(s); times.push(Math.round(performance.now())); last = s; }
  };
  const note = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    push(app ? app.getAttribute('data-test-script-state') : null);
  };
  new MutationObserver((records) => {
    for (const r of records) if (r.type === 'attributes') push(r.oldValue);
    note();
  }).observe(document, {subtree: true, childList: true, attributes: true,
                       attributeOldValue: true, attributeFilter: ['data-test-script-state']});
  const text = (sel) => [...document.querySelectorAll(sel)].map((e) => e.textContent).join('|');
  return {
    mark: () => log.length,
    log: () => log.map((s, i) => `${s}@${times[i]}`).join(' '),
    text,
    done: (mark, charts, changes, before) => {
      note();
      // a run since the action: its 'running' state seen, or the text it writes changed (a
      // sidebar navigation can swap the app root between two observer callbacks, so its
      // 'running' is not always seen; the text only changes once that run has started)
      const ran = mark === null || log.slice(mark).some((s) => s === 'running')
        || (changes !== null && text(changes) !== before);
      return ran && last === 'notRunning'
        && !document.querySelector('[data-stale="true"]')
        && document.querySelectorAll('.js-plotly-plot .main-svg').length >= charts
        && (changes === null || text(changes) !== before);
    },
  };
})();
"""
CANDIDATES = [  # (note, rules) of the policies the Compare page compares with the active one
    ("bench B", [{"name": "Big", "action": "block", "when": ":amount: > 300"},
                 {"name": "Fast", "action": "review", "when": ":payments_per_card_1h: >= 5"}]),
    ("bench C", [{"name": "Bigger", "action": "block", "when": ":amount: > 800"},
                 {"name": "New device", "action": "review", "when": ":is_new_device: = true"}]),
]  # fmt: skip
CHANGED = '[data-testid="stMetricValue"], [data-testid="stCaptionContainer"]'


@dataclass
class Step:
    """One timed user step on a page: the first load (``act`` None) or an interaction."""

    name: str
    kind: str  # "load", "recompute" or "other": which target applies
    act: Callable[[Any], None] | None = None  # does the action in the browser tab
    prepare: Callable[[Any], None] | None = None  # untimed: e.g. open a dropdown, type a value
    changes: str | None = CHANGED  # the elements whose text the action changes
    fragment: bool = False  # the action reruns a fragment (not the page): count fragment runs


@dataclass
class PageSpec:
    """A dashboard page: its URL path, how many charts it draws, what the user does on it."""

    page: str
    path: str
    charts: int
    steps: list[Step] = field(default_factory=list)


TITLES = {
    "live": "Live dashboard",
    "submit": "Submit payment",
    "inspect": "Inspect",
    "tuning": "Rule workbench",
    "compare": "Compare policies",
    "shadow": "Shadow policies",
    "simulations": "Simulations",
    "admin": "Admin",
}


def sidebar_open(page: str, base_url: list[str]) -> Step:
    """Open ``page`` from the sidebar of another page (same session and browser tab): what a
    user moving between pages waits for. The other page is loaded untimed first."""
    away = "submit" if page == "admin" else "admin"

    def prepare(tab: Any) -> None:
        tab.goto(f"{base_url[0]}/{away}", wait_until="commit")
        wait_done(tab, None, 0, None, "")

    def act(tab: Any) -> None:
        tab.get_by_test_id("stSidebarNav").get_by_role("link", name=TITLES[page]).click()

    # done when the title changed too: a run of the page left behind is not this one
    return Step("open from the sidebar", "load", act, prepare, "h1")


def select_option(key: str, option: str) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
    """(prepare, act) for a selectbox: open its list untimed, then click the option."""

    def prepare(tab: Any) -> None:
        # a click on the input opens the list; one landing while the page settles may not
        for _ in range(5):
            tab.locator(f".st-key-{key} input").click()
            with contextlib.suppress(Exception):
                tab.get_by_role("option", name=option, exact=True).wait_for(timeout=2000)
                return
            tab.keyboard.press("Escape")
        raise SystemExit(f"the {key!r} selectbox did not open")

    def act(tab: Any) -> None:
        tab.get_by_role("option", name=option, exact=True).click()

    return prepare, act


def page_specs(sim_id: str, repetition: list[int], base_url: list[str]) -> list[PageSpec]:
    """What the user does on each page (in this order within one tab)."""
    run1_open, run1_pick = select_option("live_run", "Simulation run 1")
    range_open, range_pick = select_option("live_range", "Latest 24 hours")
    tune_open, tune_pick = select_option("tune_run", "Simulation run 1")
    cmp_open, cmp_pick = select_option("sim_compare_a", "2")
    # the candidates Server.store_candidates stored: B starts as the newest (v3), the user
    # picks the other
    policy_b_open, policy_b_pick = select_option("compare_b", f"v2 — {CANDIDATES[0][0]}")

    def threshold_value() -> str:
        # a new threshold every repetition: no earlier backtest can be reused
        return str(50 + 10 * repetition[0])

    def type_threshold(tab: Any) -> None:
        tab.locator(".st-key-tune_amount_threshold input").fill(threshold_value())

    def type_id(tab: Any) -> None:
        tab.locator(".st-key-inspect_id input").fill(sim_id)

    specs = [
        PageSpec(
            "live",
            "",
            4,
            [
                Step("open in a new tab", "load"),
                Step(
                    "traffic: all -> run 1",
                    "recompute",
                    run1_pick,
                    run1_open,
                ),
                Step(
                    "time range: all -> latest 24 h",
                    "recompute",
                    range_pick,
                    range_open,
                ),
            ],
        ),
        PageSpec(
            "submit",
            "submit",
            0,
            [
                Step("open in a new tab", "load"),
                Step(
                    "authorize a payment -> decision card",
                    "other",
                    lambda tab: tab.get_by_role("button", name="Authorize payment").click(),
                    fragment=True,
                ),
            ],
        ),
        PageSpec(
            "inspect",
            "inspect",
            0,
            [
                Step("open in a new tab", "load"),
                Step(
                    "look up a simulation row's id",
                    "other",
                    lambda tab: tab.get_by_role("button", name="Look up").click(),
                    type_id,
                ),
            ],
        ),
        PageSpec(
            "tuning",
            "tuning",
            2,
            [
                Step("open in a new tab", "load"),
                Step(
                    "amount threshold -> backtest",
                    "recompute",
                    lambda tab: tab.locator(".st-key-tune_amount_threshold input").press("Enter"),
                    type_threshold,
                ),
                Step(
                    "backtest over: all -> run 1",
                    "recompute",
                    tune_pick,
                    tune_open,
                ),
            ],
        ),
        PageSpec(
            "compare",
            "compare",
            2,
            [
                Step("open in a new tab", "load"),
                Step(
                    # all traffic holds the repetition's new live payment: always recomputed
                    "policy B: v3 -> v2",
                    "recompute",
                    policy_b_pick,
                    policy_b_open,
                ),
            ],
        ),
        PageSpec("shadow", "shadow", 0, [Step("open in a new tab", "load")]),
        PageSpec(
            "simulations",
            "simulations",
            1,
            [
                Step("open in a new tab", "load"),
                Step(
                    "compare: run A -> run 2",
                    "other",
                    cmp_pick,
                    cmp_open,
                    changes=".st-key-sim_compare_chart",
                ),
            ],
        ),
        PageSpec("admin", "admin", 0, [Step("open in a new tab", "load")]),
    ]
    for spec in specs:
        spec.steps.append(sidebar_open(spec.page, base_url))
    return specs


# --------------------------------------------------------------------------- data


def cached_database(cache: Path, rows: int) -> Path:
    """The base database for ``rows``, generated once per parameter set (``ptsim generate``)."""
    from engine.schema import SCHEMA_VERSION

    key = f"rows{rows}-seed{SEED}-days{DAYS}-fraud{FRAUD_RATE}-second{SECOND_RUN_ROWS}"
    folder = cache / f"{key}-schema{SCHEMA_VERSION}"
    db = folder / "base.duckdb"
    if (folder / "complete").exists():
        return db
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for run_rows, seed in ((rows, SEED), (SECOND_RUN_ROWS, SEED + 1)):
        subprocess.run(
            [
                *(PTSIM, "generate", "--rows", str(run_rows), "--seed", str(seed)),
                *("--days", str(DAYS), "--fraud-rate", str(FRAUD_RATE), "--db", str(db), "--quiet"),
            ],
            check=True,
        )
    (folder / "complete").write_text(f"built in {time.perf_counter() - started:.1f} s\n")
    print(f"built {rows + SECOND_RUN_ROWS:,} rows in {time.perf_counter() - started:.1f} s")
    return db


def working_copy(base: Path, folder: Path) -> Path:
    """A copy of the base database (and its card key) that this run may change."""
    db = folder / "bench.duckdb"
    shutil.copyfile(base, db)
    key = base.with_name(base.name + ".cardkey")
    if key.exists():
        shutil.copyfile(key, db.with_name(db.name + ".cardkey"))
    return db


def simulation_row_id(db: Path) -> str:
    """An id of run 1 to look up on the Inspect page (read before the server owns the file)."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return str(con.execute("SELECT max(id) FROM transactions WHERE run_id = 1").fetchone()[0])


# --------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RUN_LOG = "bench-script-run"
RUN_LINE = re.compile(rf"{RUN_LOG} ([0-9.]+) ([0-9.]+) ([01])")


def _time_script_runs() -> None:
    """Wrap the one function Streamlit's script runner calls to execute a page, so every script
    (or fragment) run prints when it started (epoch s), how long it ran (ms) and whether it was
    a fragment run."""
    from streamlit.runtime.scriptrunner import script_runner

    execute = script_runner.exec_func_with_error_handling

    def timed(func: Any, ctx: Any) -> Any:
        started, clock = time.time(), time.perf_counter()
        try:
            return execute(func, ctx)
        finally:
            ms = (time.perf_counter() - clock) * 1000
            fragment = int(bool(ctx.fragment_ids_this_run))
            print(f"{RUN_LOG} {started:.6f} {ms:.3f} {fragment}", flush=True)

    script_runner.exec_func_with_error_handling = timed


def serve_floor_with_run_timing(port: str) -> int:
    """``streamlit run benchmarks/floor_app.py`` with the same hook and the same flags as the
    dashboard."""
    from streamlit.web import cli

    _time_script_runs()
    args = ["run", str(ROOT / "benchmarks" / "floor_app.py"), "--server.address=127.0.0.1"]
    args += ["--browser.gatherUsageStats=false", "--server.headless=true", f"--server.port={port}"]
    return cli.main(args=[*args, "--server.fileWatcherType=none"], standalone_mode=False) or 0


def serve_with_run_timing(argv: list[str]) -> int:
    """``ptsim serve`` with one stdout line per script (or fragment) run: when it started (epoch
    seconds), how long it ran (ms) and whether it was a fragment run. The hook wraps the one
    function Streamlit's script runner calls to execute a page, so it times the script, the
    engine calls and building the elements' messages; sending them is the event loop's job."""
    from workbench.cli import main as ptsim

    _time_script_runs()
    return ptsim(["serve", *argv])


class Server:
    """The real server (``ptsim serve`` with the run-timing hook) on free ports in its own
    process group; its output is kept for errors and its script-run lines are parsed. With no
    ``db``: the floor app (:mod:`floor_app`) alone."""

    def __init__(self, db: Path | None) -> None:
        self.api_port = free_port()
        self.ui_port = free_port()
        while self.ui_port == self.api_port:
            self.ui_port = free_port()
        env = os.environ | {
            "PTSIM_DB": str(db),
            "PTSIM_HOST": "127.0.0.1",
            "PTSIM_BACKUP_INTERVAL_S": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.floor = db is None
        self.lines: list[str] = []
        self.runs: list[tuple[float, float, bool]] = []  # (started epoch s, ms, fragment run)
        command = [sys.executable, __file__, "--serve", "--api-port", str(self.api_port)]
        command += ["--ui-port", str(self.ui_port)]
        if self.floor:
            command = [sys.executable, __file__, "--serve-floor", str(self.ui_port)]
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if found := RUN_LINE.search(line):
                started, ms, fragment = found.groups()
                self.runs.append((float(started), float(ms), fragment == "1"))
            else:
                self.lines.append(line.rstrip("\n"))

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}"

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                api = 200 if self.floor else httpx.get(f"{self.api}/health", timeout=5).status_code
                if (
                    api == 200
                    and httpx.get(f"{self.ui}/_stcore/health", timeout=5).status_code == 200
                ):
                    return
            time.sleep(0.2)
        self.stop()
        raise SystemExit("ptsim serve did not become ready:\n" + "\n".join(self.lines[-50:]))

    def store_candidates(self) -> None:
        """Two draft policies beside the active one (stored, never activated), for the Compare
        page: versions 2 and 3 of a fresh database."""
        for note, rules in CANDIDATES:
            answer = httpx.post(
                f"{self.api}/policies", json={"rules": rules, "note": note}, timeout=30
            )
            if answer.status_code != 201:
                raise SystemExit(f"POST /policies answered {answer.status_code}: {answer.text}")

    def post_payment(self) -> None:
        if self.floor:
            return
        answer = httpx.post(f"{self.api}/payment", json=PAYMENT, timeout=30)
        if answer.status_code != 201:
            raise SystemExit(f"POST /payment answered {answer.status_code}: {answer.text}")

    def script_ms(self, since: float, until: float, fragments: bool = False) -> float:
        """Milliseconds of full script runs that started in ``[since, until]`` (fragment-only
        runs are the live panel's auto refresh, not the user's action), or of every run with
        ``fragments`` (a step whose action reruns a fragment). Waits briefly for the line of a
        run the browser has already seen finish."""
        deadline = time.monotonic() + 2
        while True:
            full = [
                ms
                for start, ms, fragment in self.runs
                if since <= start <= until and (fragments or not fragment)
            ]
            if full or time.monotonic() > deadline:
                return sum(full) if full else float("nan")
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGINT (Ctrl-C: drain, checkpoint, close), SIGKILL after a bounded wait."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


# --------------------------------------------------------------------------- browser


def wait_done(tab: Any, mark: int | None, charts: int, changes: str | None, before: str) -> None:
    tab.wait_for_function(
        "([m, c, s, b]) => window.__bench.done(m, c, s, b)",
        arg=[mark, charts, changes, before],
        polling="raf",
        timeout=WAIT_MS,
    )


Times = dict[tuple[str, str], tuple[list[float], list[float]]]


def measure(server: Server, specs: list[PageSpec], repeat: int, counter: list[int]) -> Times:
    """(browser ms, server ms) per (page, step) over ``repeat`` repetitions in headless
    Chromium; server ms are the script runs the step caused, from the server's own log."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    times: Times = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for spec in specs:
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                context.add_init_script(OBSERVER_JS)
                url = f"{server.ui}/{spec.path}"
                warm = context.new_page()  # fills the HTTP cache, untimed
                warm.goto(url, wait_until="commit")
                wait_done(warm, None, spec.charts, None, "")
                warm.close()
                for i in range(repeat):
                    counter[0] = i
                    for attempt in range(1, ATTEMPTS + 1):
                        try:
                            rows = repetition(server, context, url, spec)
                            break
                        except PlaywrightTimeout as exc:
                            # a click that landed while the page was settling; not a result
                            first_line = str(exc).splitlines()[0]
                            print(f"  {spec.page}: repetition {i + 1}, try {attempt}: {first_line}")
                    else:
                        raise SystemExit(f"{spec.page}: {ATTEMPTS} attempts timed out")
                    for name, browser_ms, server_ms in rows:
                        b, s = times.setdefault((spec.page, name), ([], []))
                        b.append(browser_ms)
                        s.append(server_ms)
                        print(
                            f"  {spec.page}: {name}: browser {browser_ms:,.0f} ms, "
                            f"server {server_ms:,.0f} ms",
                            flush=True,
                        )
                context.close()
        finally:
            browser.close()
    return times


def repetition(
    server: Server, context: Any, url: str, spec: PageSpec
) -> list[tuple[str, float, float]]:
    """One repetition of a page's steps in a new tab: (step, browser ms, server ms) each."""
    server.post_payment()
    tab = context.new_page()
    try:
        return [(step.name, *timed_step(tab, server, url, spec, step)) for step in spec.steps]
    finally:
        tab.close()


def timed_step(
    tab: Any, server: Server, url: str, spec: PageSpec, step: Step
) -> tuple[float, float]:
    """Do one step in ``tab``: (browser ms from the action to the rendered result, server ms)."""
    if step.act is None:
        since, start = time.time(), time.perf_counter()
        tab.goto(url, wait_until="commit")
        wait_done(tab, None, spec.charts, None, "")
    else:
        if step.prepare is not None:
            step.prepare(tab)
        before = tab.evaluate("(s) => window.__bench.text(s)", step.changes)
        mark = tab.evaluate("window.__bench.mark()")
        since, start = time.time(), time.perf_counter()
        step.act(tab)
        wait_done(tab, mark, spec.charts, step.changes, before)
    browser_ms = (time.perf_counter() - start) * 1000
    return browser_ms, server.script_ms(since, time.time(), step.fragment)


# --------------------------------------------------------------------------- report


def target(kind: str) -> float:
    return {"load": TARGET_LOAD_S, "recompute": TARGET_RECOMPUTE_S}.get(kind, TARGET_OTHER_S)


def load() -> str:
    """The 1/5/15-minute load averages (the machine is shared: read figures against them)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


FLOOR_SPECS = [
    PageSpec(
        "floor: empty page",
        "",
        0,
        [
            Step("open in a new tab", "load"),
            Step(
                "click a button",
                "other",
                lambda tab: tab.get_by_role("button", name="Count").click(),
            ),
        ],
    ),
    PageSpec("floor: one plotly chart", "chart", 1, [Step("open in a new tab", "load")]),
]


def measure_floor(repeat: int) -> Times:
    """Streamlit's own floor, measured like the dashboard's pages: :mod:`floor_app`."""
    server = Server(None)
    try:
        server.wait_ready()
        return measure(server, FLOOR_SPECS, repeat, [0])
    finally:
        server.stop()


def report(rows: int, specs: list[PageSpec], times: Times) -> None:
    """The table: medians per step, the target that applies and whether the browser met it;
    the floor's rows (Streamlit alone, same run) first."""
    print("\n| page | action | rows | browser median ms | server median ms | target ms | result |")
    print("|---|---|---:|---:|---:|---:|---|")
    for spec in [s for s in FLOOR_SPECS if (s.page, s.steps[0].name) in times] + specs:
        for step in spec.steps:
            browser, server = times[(spec.page, step.name)]
            b, s = statistics.median(browser), statistics.median(server)
            limit = target(step.kind) * 1000
            size = "—" if spec in FLOOR_SPECS else f"{rows:,}"
            print(
                f"| {spec.page} | {step.name} | {size} | {b:,.0f} | {s:,.0f} | {limit:,.0f} | "
                f"{'pass' if b <= limit else 'FAIL'} |",
                flush=True,
            )


@contextlib.contextmanager
def temporary_folder(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="ptsim-bench-") as tmp:
        yield Path(tmp)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:  # the server subprocess Server starts
        raise SystemExit(serve_with_run_timing(sys.argv[2:]))
    if sys.argv[1:2] == ["--serve-floor"]:
        raise SystemExit(serve_floor_with_run_timing(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pages", nargs="*", help="only these pages (live, submit, ...)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ptsim-bench",
        help="where generated base databases are kept between runs",
    )
    parser.add_argument("--work", type=Path, help="keep the working copy here (default: temp)")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load()}"
    )
    for rows in args.rows:
        base = cached_database(args.cache, rows)
        with temporary_folder(args.work) as folder:
            db = working_copy(base, folder)
            counter = [0]  # the repetition being measured (each picks a new threshold)
            base_url: list[str] = []  # the dashboard's URL, known once the server started
            specs = page_specs(simulation_row_id(db), counter, base_url)
            if args.pages:
                specs = [s for s in specs if s.page in args.pages]
            server = Server(db)
            try:
                server.wait_ready()
                server.store_candidates()
                base_url.append(server.ui)
                print(f"\n## {rows:,} rows; load average before {load()}")
                times = measure(server, specs, args.repeat, counter)
            finally:
                server.stop()
            times |= measure_floor(args.repeat)
            report(rows, specs, times)
            print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
