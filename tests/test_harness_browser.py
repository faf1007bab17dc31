"""The HTML report in a real headless browser (Debian's ``chromium``): it loads without console
errors, the DOM holds the entry x dtype x device matrix, and the screenshot shows its colours.

Skips (with the reason) only when no chromium binary is installed; CI installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess

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


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--enable-logging=stderr", "--v=0", *args, url], capture_output=True, text=True, timeout=90)


def console_messages(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if CONSOLE.search(line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    mirrors = [OpMirror("exp", nx.exp, torch.exp, unary()),
               OpMirror("planted.wrong", lambda x: nx.exp(x) * 1.001, torch.exp, unary())]
    records = [r for m in mirrors for dt in ("float32", "float64") for r in run_case(m, dt, "cpu", examples=2).records]
    opts = {"dtypes": ["float32", "float64"], "devices": ["cpu"], "profile": "ci", "examples": 2, "tolerances": None}
    data = report.build(records, opts, coverage=Coverage(["exp", "planted.wrong", "hole"], ["exp"], ["hole"], {}, []))
    return report.write_html(data, tmp / "conformance.html")


def test_console_check_can_fail(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("planted"); notDefined();</script></body></html>')
    messages = console_messages(chromium(bad.as_uri(), "--dump-dom"))
    assert any("planted" in m for m in messages) and any("notDefined" in m for m in messages)


def test_report_loads_without_console_errors_and_has_the_matrix(page):
    run = chromium(page.as_uri(), "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_messages(run) == []
    dom = run.stdout
    assert '<table class="matrix">' in dom
    for text in ("float32/cpu", "float64/cpu", "planted.wrong", "Headroom distribution", "hole",
                 "python -m conformance repro 'planted.wrong|float64|cpu'"):
        assert text in dom, text


def test_screenshot_shows_the_coloured_matrix(page, tmp_path):
    shot = tmp_path / "report.png"
    run = chromium(page.as_uri(), f"--screenshot={shot}", "--window-size=1280,1400", "--hide-scrollbars")
    assert shot.exists() and shot.stat().st_size > 10_000, run.stderr[-2000:]
    assert console_messages(run) == []
    image = pytest.importorskip("PIL.Image").open(shot).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert (0xC0, 0x39, 0x2B) in colours  # a failing cell / card
    assert colours & {(0x1E, 0x84, 0x49), (0x52, 0xBE, 0x80), (0xA9, 0xDF, 0xBF)}  # passing cells by headroom
