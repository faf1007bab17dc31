"""``python -m conformance run`` under pytest-xdist: workers' records merge into one report; repro replays a case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_sharded_run_merges_workers_into_one_report(tmp_path):
    run = _python("run", "-n", "2", "-k", "sin or cos", "--dtypes", "float64", "--report-dir", str(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads((tmp_path / "conformance.json").read_text())
    cases = {r["case_id"] for r in data["records"]}
    assert {"sin|float64|cpu", "cos|float64|cpu", "Tensor.sin|float64|cpu", "Tensor.cos|float64|cpu"} <= cases
    assert all(c.endswith("|float64|cpu") for c in cases)
    assert data["run"]["filtered"] is True and data["run"]["profile"] == "ci"
    assert (tmp_path / "conformance.html").exists() and (tmp_path / "conformance.junit.xml").exists()
    gate = _python("gate", str(tmp_path / "conformance.json"))
    assert "conformance gate:" in gate.stdout and gate.stdout.strip().splitlines()[-1] in ("gate: PASS", "gate: FAIL")


def test_repro_prints_every_comparison_of_one_case():
    run = _python("repro", "exp|float64|cpu", "--example", "1")
    assert run.returncode == 0, run.stdout[-3000:]
    out = run.stdout
    assert "case exp|float64|cpu" in out and "example 1" in out and "example 0" not in out
    assert "backward" in out and "finite_difference" in out and "inputs:" in out


def test_list_prints_the_registry():
    run = _python("list")
    assert run.returncode == 0
    names = {line.split()[0] for line in run.stdout.splitlines()}
    assert {"exp", "Tensor.exp", "add[alpha]"} <= names
