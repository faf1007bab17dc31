"""The HTML report in a real headless browser (Debian's ``chromium``): it loads without console errors, the
DOM holds the entry x dtype x device matrix, the screenshot shows its colours, the view in the URL hash
filters the matrix and opens a case's drill-down with its trend chart, and real clicks (driven over the
DevTools pipe) go through that same hash.

Skips (with the reason) only when no chromium binary is installed; CI installs it. With
``CONFORMANCE_SHOTS=DIR`` the screenshots are also copied to DIR (to look at them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import neuronix as nx
from conformance import report
from conformance.coverage import Coverage
from conformance.mirror import OpMirror
from conformance.runner import run_case
from conformance.strategies import unary

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
CONSOLE = re.compile(r":CONSOLE[:(\d]")
FAILING = "planted.wrong|float64|cpu"
INJECTED = '</script><img src=x onerror="console.error(\'injected\')"> & <b>bold</b>'
SNIPPET = "print('the planted snippet')"
RERUN = "fails again with its seed and on 2 of 2 fresh seeds"


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--enable-logging=stderr", "--v=0", *args, url], capture_output=True, text=True, timeout=90)


def console_messages(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if CONSOLE.search(line)]


def dom(page: Path, hash_: str = "") -> str:
    run = chromium(page.as_uri() + hash_, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_messages(run) == []
    return run.stdout


def screenshot(page: Path, hash_: str, path: Path, height: int = 1000) -> Path:
    run = chromium(page.as_uri() + hash_, f"--screenshot={path}", f"--window-size=1280,{height}", "--hide-scrollbars")
    assert path.exists() and path.stat().st_size > 10_000, run.stderr[-2000:]
    assert console_messages(run) == []
    if os.environ.get("CONFORMANCE_SHOTS"):
        Path(os.environ["CONFORMANCE_SHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["CONFORMANCE_SHOTS"]) / path.name)
    return path


def history_line(k: int, headrooms: dict) -> str:
    return json.dumps({"schema": "neuronix-conformance-history/1", "commit": f"{k:02d}" + "ab" * 19, "dirty": False,
                       "time": f"2026-11-{k + 1:02d}T00:00:00+00:00", "torch": "2.13.0", "devices": ["cpu (x86_64)"],
                       "profile": "ci", "dtypes": ["float32", "float64"], "summary": {}, "seconds": 0.1,
                       "cases": {cid: [h, 0.01] for cid, h in headrooms.items()}})


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """exp passes (one of its records under an override), planted.wrong fails in float64 with a snippet, a rerun
    verdict and a message quoting markup, and errs in float32; a six-run history drifts exp|float64|cpu from 1e-6
    to 0.3."""
    tmp = tmp_path_factory.mktemp("report")
    mirrors = [OpMirror("exp", nx.exp, torch.exp, unary()),
               OpMirror("planted.wrong", lambda x: nx.exp(x) * 1.001, torch.exp, unary())]
    records = [r for m in mirrors for dt in ("float32", "float64") for r in run_case(m, dt, "cpu", examples=2).records]
    history = tmp / "history.jsonl"
    history.write_text("".join(history_line(k, {"exp|float64|cpu": h, "exp|float32|cpu": 0.0, FAILING: None}) + "\n"
                               for k, h in enumerate([1e-6, 2e-6, 0.0, 1e-6, 4e-3, 0.3])))
    opts = {"dtypes": ["float32", "float64"], "devices": ["cpu"], "profile": "ci", "examples": 2, "tolerances": None,
            "history": str(history)}
    data = report.build(records, opts, coverage=Coverage(["exp", "planted.wrong", "hole"], ["exp"], ["hole"], {}, []))
    next(r for r in data["records"] if r["case_id"] == "exp|float32|cpu")["rule"] = "override[0] op=exp (planted)"
    next(r for r in data["records"] if r["case_id"] == FAILING and r["status"] != "pass")["message"] += INJECTED
    for r in data["records"]:  # planted.wrong's float32 case raises instead: an error has headroom 0, no ratio
        if r["case_id"] == FAILING.replace("float64", "float32"):
            r.update(status="error" if r["status"] != "pass" else "pass", headroom=0.0)
    data["snippets"] = {FAILING: {"check": "forward", "example": 0, "shrunk": False, "snippet": SNIPPET}}
    data["reruns"] = {FAILING: {"same_seed": {"seed": 7, "status": "fail", "checks": ["forward"]},
                                "fresh": [{"seed": 8, "status": "fail", "checks": ["forward"]}],
                                "verdict": "reproduces", "text": RERUN}}
    return report.write_html(data, tmp / "conformance.html")


def matrix_rows(dump: str) -> dict[str, bool]:
    """``{entry: visible}`` of the matrix's rows in the dumped DOM, in their displayed order."""
    body = dump[dump.index('<table class="matrix">'):]
    body = body[: body.index("</table>")]
    return {m.group(2): not m.group(1) for m in re.finditer(r'<tr( hidden="")?><td><code>([^<]+)</code>', body)}


def drill(dump: str) -> str:
    return re.search(r'<aside id="drill"[^>]*>(.*?)</aside>', dump, re.S).group(0)


def test_console_check_can_fail(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("planted"); notDefined();</script></body></html>')
    messages = console_messages(chromium(bad.as_uri(), "--dump-dom"))
    assert any("planted" in m for m in messages) and any("notDefined" in m for m in messages)


def test_report_loads_without_console_errors_and_has_the_matrix(page):
    text = dom(page)
    assert '<table class="matrix">' in text
    for needle in ("float32/cpu", "float64/cpu", "planted.wrong", "Headroom distribution", "hole",
                   "python -m conformance repro 'planted.wrong|float64|cpu'", "2 of 2 rows"):
        assert needle in text, needle
    assert matrix_rows(text) == {"planted.wrong": True, "exp": True}  # failing first by default
    assert '<aside id="drill" hidden=""' in text and 'data-case="exp|float32|cpu"' in text


def test_screenshot_shows_the_coloured_matrix(page, tmp_path):
    shot = screenshot(page, "", tmp_path / "report.png", 1400)
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert (0xC0, 0x39, 0x2B) in colours  # a failing cell / card
    assert colours & {(0x1E, 0x84, 0x49), (0x52, 0xBE, 0x80), (0xA9, 0xDF, 0xBF)}  # passing cells by headroom


@pytest.mark.parametrize("hash_, visible", [
    ("#status=failing", {"planted.wrong"}),
    ("#status=passing", {"exp"}),
    ("#q=^ex", {"exp"}),  # a regular expression
    ("#q=WRONG", {"planted.wrong"}),  # case-insensitive
    ("#q=[", set()),  # not a regular expression: matched as text (no entry holds "["), and said so
    ("#overridden=1", {"exp"}),
    ("#hmin=1", {"planted.wrong"}),  # a failure without a finite headroom counts as the largest
    ("#kind=op&q=exp", {"exp"}),
    ("#kind=module", set()),
    ("#dtype=float32&overridden=1", {"exp"}),
    ("#dtype=float64&overridden=1", set()),  # the override is on exp's float32 column only
    ("#dtype=float32&hmin=1000", {"planted.wrong"}),  # an error (headroom 0) is above every threshold
])
def test_the_hash_filters_the_matrix(page, hash_, visible):
    text = dom(page, hash_)
    rows = matrix_rows(text)
    assert {entry for entry, shown in rows.items() if shown} == visible
    assert f"{len(visible)} of 2 rows" in text
    assert ('<span id="q-note">not a regular expression' in text) == (hash_ == "#q=[")


def test_the_hash_hides_dtype_columns_and_sorts(page):
    text = dom(page, "#dtype=float64&sort=-entry")
    rule = re.search(r'<style id="column-filter">(.*?)</style>', text, re.S).group(1)
    assert "nth-child(5)" in rule and "nth-child(6)" not in rule  # float32/cpu is the 5th column, float64/cpu the 6th
    assert list(matrix_rows(text)) == ["planted.wrong", "exp"]  # entry Z..A
    assert list(matrix_rows(dom(page, "#sort=entry"))) == ["exp", "planted.wrong"]


def test_the_hash_opens_a_drill_down_with_everything_about_the_case(page, tmp_path):
    blob = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page.read_text(), re.S).group(1)
    seed = json.loads(blob)["cases"][FAILING][4]
    text = dom(page, f"#open={FAILING}")
    panel = drill(text)
    assert "hidden" not in panel[:40]
    for needle in (FAILING, "forward", "backward", "defaults.float64", "rtol 1e-7, atol 1e-12", f"seed {seed}", SNIPPET, RERUN,
                   "python -m conformance repro 'planted.wrong|float64|cpu'", "reproduces", "seed 8: fail",
                   "grad arg 0", "comparisons failed", '<svg class="trend"'):
        assert needle in panel, needle
    assert "&lt;/script&gt;&lt;img src=x" in panel and "<img" not in text  # the message shown as text, never markup
    screenshot(page, f"#open={FAILING}", tmp_path / "drilldown.png", 1200)


def test_a_trend_chart_is_drawn_from_the_history(page, tmp_path):
    panel = drill(dom(page, "#open=exp|float64|cpu"))
    chart = re.search(r'<svg class="trend"[^>]*>.*?</svg>', panel, re.S).group(0)
    assert len(re.findall(r"<circle", chart)) == 6  # one point per recorded run
    assert chart.count('class="exact"') == 1 and "torch 2.13.0" in chart and "headroom 0.3" in chart
    text = dom(page)
    drift = text[text.index('<h2 id="drift">'):text.index('<h2 id="worst">')]
    assert "exp|float64|cpu" in drift and drift.count('<svg class="trend"') >= 1
    failing = drill(dom(page, f"#open={FAILING.replace('float64', 'float32')}"))
    assert failing.count('class="nonfinite"') == 6  # planted.wrong: no finite headroom in any run, drawn red on top
    screenshot(page, "#open=exp|float64|cpu", tmp_path / "trend.png", 1200)


def test_filter_screenshot(page, tmp_path):
    screenshot(page, "#q=exp&status=passing&dtype=float64", tmp_path / "filter.png", 1100)


# chromium's pipe ends must be fds 3 and 4: a tiny exec trampoline puts them there (dash cannot redirect fds > 9)
ONTO_3_AND_4 = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"


def _above_ten(fd: int) -> int:
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe`` (it reads commands on fd 3 and answers on fd 4,
    NUL-separated JSON): enough of the DevTools protocol to click and read back, with no extra package."""

    def __init__(self):
        child_in, self._send = os.pipe()
        self._read, child_out = os.pipe()
        # above fd 10 before the trampoline maps them onto 3 and 4, so neither dup2 overwrites the other's source
        child_in, child_out = (_above_ten(fd) for fd in (child_in, child_out))
        args = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--remote-debugging-pipe", "--window-size=1280,1000", "about:blank"]
        self.proc = subprocess.Popen([sys.executable, "-c", ONTO_3_AND_4, str(child_in), str(child_out), *args],
                                     pass_fds=(child_in, child_out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self._buffer, self._id, self._session = b"", 0, None
        target = next(t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        self.errors: list[str] = []

    def send(self, method: str, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._send, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._read, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(reply["params"])[:500])
            if reply.get("method") == "Runtime.consoleAPICalled" and reply["params"]["type"] in ("error", "warning"):
                self.errors.append(json.dumps(reply["params"])[:500])
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        self.send("Runtime.enable")
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while not self.js("document.readyState === 'complete' && location.protocol === 'file:'"):
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.05)

    def js(self, expression: str):
        """The value of ``expression`` (statements allowed: the last one's value) once the events it caused
        (hashchange) have run."""
        wrapped = f"(async () => {{ const v = await eval({json.dumps(expression)}); await new Promise(r => setTimeout(r, 30)); " \
                  "return v; })()"
        result = self.send("Runtime.evaluate", expression=wrapped, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except RuntimeError:
            pass
        self.proc.wait(timeout=20)


@pytest.fixture
def browser():
    devtools = DevTools()
    yield devtools
    devtools.close()


STATE = "({hash: decodeURIComponent(location.hash), open: !document.getElementById('drill').hidden, " \
        "count: document.getElementById('count').textContent, " \
        "rows: Array.from(document.querySelectorAll('table.matrix tbody tr'))" \
        ".filter(r => !r.hidden).map(r => r.cells[0].textContent)})"


def test_clicks_and_typing_go_through_the_hash(page, browser):
    browser.open(page.as_uri())
    browser.js("document.querySelector('td[data-case=\"exp|float64|cpu\"]').click()")
    state = browser.js(STATE)
    assert state["hash"] == "#open=exp|float64|cpu" and state["open"]
    assert "exp|float64|cpu" in browser.js("document.getElementById('drill').textContent")
    browser.js("document.querySelector('#drill [data-close]').click()")
    assert browser.js(STATE)["open"] is False and browser.js("location.hash") in ("", "#")
    browser.js("document.querySelector('th[data-sort=entry]').click()")
    assert browser.js(STATE)["rows"] == ["exp", "planted.wrong"] and browser.js("location.hash") == "#sort=entry"
    browser.js("document.querySelector('th[data-sort=entry]').click()")
    assert browser.js(STATE)["rows"] == ["planted.wrong", "exp"] and browser.js("location.hash") == "#sort=-entry"
    browser.js("const q = document.querySelector('#filters [name=q]'); q.value = 'wrong'; "
               "q.dispatchEvent(new Event('input', {bubbles: true}))")
    state = browser.js(STATE)
    assert state["hash"] == "#q=wrong&sort=-entry" and state["rows"] == ["planted.wrong"] and state["count"] == "1 of 2 rows"
    browser.js("const b = document.querySelector('#filters input[name=dtype][value=float32]'); b.click()")
    ticked = "float64,float16,bfloat16,complex64,complex128"  # exp claims them all: "not run" columns
    assert browser.js(STATE)["hash"] == f"#q=wrong&dtype={ticked}&sort=-entry"
    assert browser.js("getComputedStyle(document.querySelector('th[data-col=\"float32/cpu\"]')).display") == "none"
    browser.js("document.querySelector('a[data-case=\"planted.wrong|float64|cpu\"]').click()")  # a worst-case link
    state = browser.js(STATE)
    assert state["hash"] == f"#q=wrong&dtype={ticked}&sort=-entry&open=planted.wrong|float64|cpu" and state["open"]
    browser.js("history.back()")
    assert browser.js(STATE)["open"] is False  # opening pushed a history entry: Back closes the drill-down
    assert browser.errors == []


def test_a_cell_opens_from_the_keyboard(page, browser):
    browser.open(page.as_uri())
    browser.js("document.querySelector('td[data-case=\"exp|float32|cpu\"]').focus()")
    assert browser.js("document.activeElement.dataset.case") == "exp|float32|cpu"  # Tab can reach a cell
    for kind in ("keyDown", "keyUp"):  # a real key press, through the browser's input pipeline
        browser.send("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
    state = browser.js(STATE)
    assert state["hash"] == "#open=exp|float32|cpu" and state["open"]
    assert browser.errors == []


def test_devtools_sees_console_errors(page, browser):
    browser.open(page.as_uri())
    browser.js("console.error('planted'); 1")
    assert any("planted" in e for e in browser.errors)
