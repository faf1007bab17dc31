"""The pytest plugin under ``python -m conformance run``: one test per case, one merged report.

Loaded by ``conformance/conftest.py`` (so ``pytest conformance -n auto`` works from a
checkout) and never through a ``pytest11`` entry point: an entry point would load it in
every pytest run of the environment. It stays inert unless conformance cases run:
``conformance/test_cases.py`` asks it for the case list, each case's records are kept,
and only a session that ran cases writes ``reports/``.

With pytest-xdist every worker sends its records to the controller through
``workeroutput`` when it finishes (as JSON rows, read back into ``Record``s); the controller
merges them with the coverage check and the tolerance overrides into ``conformance.json``,
``.html`` and ``.junit.xml``.
"""

from __future__ import annotations

import json
import os

import pytest

from conformance.record import Record

RECORDS_KEY = "conformance_records"
CASE_LIST_KEY = "conformance_case_list"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("conformance", "neuronix conformance harness")
    group.addoption("--conformance-dtypes", default="float32,float64", help="comma-separated dtypes (float32,float64)")
    group.addoption("--conformance-devices", default=None, help="comma-separated devices (default: cpu, plus cuda if available)")
    group.addoption("--conformance-profile", default="ci", choices=("ci", "thorough"), help="examples per case")
    group.addoption("--conformance-examples", type=int, default=None, help="examples per case (overrides the profile)")
    group.addoption("--conformance-report", default="reports", help="directory for conformance.json/.html/.junit.xml")
    group.addoption("--conformance-tolerances", default=None, help="tolerances.toml to use (default: the repository's)")
    group.addoption("--conformance-shard", default=None, help="K/N: run slice K of N (conformance.shard)")
    group.addoption("--conformance-history", default=None, help="JSON Lines history (conformance.history)")


class _State:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.ran = False
        self.case_list: dict | None = None  # a sharded run: the whole run's case count and fingerprint


_KEY = pytest.StashKey[_State]()


def _state(config) -> _State:
    if _KEY not in config.stash:
        config.stash[_KEY] = _State()
    return config.stash[_KEY]


def options(config) -> dict:
    """The run's settings, as the case test and the report see them."""
    devices = config.getoption("conformance_devices")
    if not devices:
        import torch

        devices = "cpu,cuda" if torch.cuda.is_available() else "cpu"
    return {
        "dtypes": [d.strip() for d in config.getoption("conformance_dtypes").split(",") if d.strip()],
        "devices": [d.strip() for d in devices.split(",") if d.strip()],
        "profile": config.getoption("conformance_profile"),
        "examples": config.getoption("conformance_examples"),
        "tolerances": config.getoption("conformance_tolerances"),
        "report": config.getoption("conformance_report"),
        "shard": config.getoption("conformance_shard"),
        "history": config.getoption("conformance_history"),
    }


def record_case(config, case) -> None:
    """Called by the case test: keep the case's records for the report."""
    state = _state(config)
    state.ran = True
    state.records.extend(case.records)


def note_case_list(config, cases: list[str]) -> None:
    """Called at collection of a sharded run with the whole run's cases (before the slice is chosen): their
    count and fingerprint go into ``run["shard"]``, so ``merge`` can tell a case that landed in no slice."""
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(cases)).encode()).hexdigest()[:16]
    _state(config).case_list = {"total": len(cases), "fingerprint": digest}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: merge a finished worker's records."""
    output = getattr(node, "workeroutput", {})
    if output.get(CASE_LIST_KEY):  # the controller does not collect: a worker tells it the case list
        _state(node.config).case_list = json.loads(output[CASE_LIST_KEY])
    payload = output.get(RECORDS_KEY)
    if payload:
        state = _state(node.config)
        state.ran = True
        state.records.extend(Record.from_dict(row) for row in json.loads(payload))


def pytest_sessionfinish(session, exitstatus) -> None:
    config = session.config
    state = _state(config)
    if hasattr(config, "workerinput"):  # an xdist worker: hand the records to the controller
        if state.case_list:
            config.workeroutput[CASE_LIST_KEY] = json.dumps(state.case_list)
        if state.ran:
            config.workeroutput[RECORDS_KEY] = json.dumps([r.as_dict() for r in state.records])
        return
    if not state.ran:
        return
    from conformance import report

    opts = {**options(config), "case_list": state.case_list}
    state.records.extend(_lost_cases(config, state.records, opts))
    filtered = bool(config.getoption("keyword") or config.getoption("markexpr")
                    or any("::" in str(a) for a in config.args))
    data = report.build(state.records, opts, filtered=filtered)
    if opts["history"] and not opts["shard"]:  # a shard's record is partial: `merge --history` appends the whole run's
        from conformance import history

        history.append(data, opts["history"])  # first: the HTML's trend charts then include this run
    paths = report.write_all(data, opts["report"])
    summary = report.one_line(data)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"conformance: {summary}")
        tr.write_line(f"conformance: wrote {', '.join(os.path.relpath(p) for p in paths)}")


def _lost_cases(config, records: list[Record], opts: dict) -> list[Record]:
    """An error record for every case that ran but left no records: an xdist worker that crashed (a
    segfault in a kernel) takes the records of every case it ran with it, and a report that silently
    held fewer cases would let the gate judge a partial run."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return []
    marker = "test_case["
    ran = {rep.nodeid.split(marker, 1)[1][:-1] for reports in tr.stats.values() for rep in reports
           if getattr(rep, "when", None) in ("call", "setup") and marker in getattr(rep, "nodeid", "")}
    lost = sorted(ran - {r.case_id for r in records})
    if not lost:
        return []
    import conformance.mirrors  # noqa: F401  (the registry names each case's kind)
    from conformance.mirror import REGISTRY
    from conformance.record import CaseResult, ExampleResult, summarise
    from conformance.runner import parse_case_id, seed_of
    from conformance.tolerances import load

    tolerances = load(opts["tolerances"])
    out = []
    for cid in lost:
        name, dtype, device = parse_case_id(cid)
        kind = getattr(REGISTRY.get(name), "kind", "op")
        case = CaseResult(cid, name, kind, dtype, device, opts["profile"], seed_of(cid))
        case.examples.append(ExampleResult(0, case.seed, status="error",
                                           error="the case left no records: its pytest-xdist worker crashed "
                                                 "(see the run's output) or died before handing them over"))
        out += summarise(case, tolerances)
    return out
