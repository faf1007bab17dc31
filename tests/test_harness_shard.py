"""Sharding (``run --shard K/N``) and merging (``merge``): slices partition the cases, balance by the recorded
durations, and the merged report of a complete sharded run is judged exactly as the unsharded run."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import gate, history, report, shard
from conformance.runner import run_case
from conformance.tolerances import Tolerances
from tests.test_harness_report import CLEAN, EXP, OPTS, _toml

ROOT = Path(__file__).resolve().parent.parent
CASES = [f"op{i:03d}|{dt}|cpu" for i in range(120) for dt in ("float32", "float64")]


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "2", "1/2/3", "a/b", "", "-1/2", "1.5/2"])
def test_a_bad_spec_says_what_is_valid(spec):
    with pytest.raises(ValueError, match=r"expected K/N.*1 <= K <= N"):
        shard.select(CASES, spec)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7, 240, 300])
def test_the_slices_partition_the_cases(count):
    slices = [shard.select(CASES, f"{k}/{count}") for k in range(1, count + 1)]
    dealt = [c for s in slices for c in s]
    assert sorted(dealt) == sorted(CASES)  # every case, none twice
    assert len(set(dealt)) == len(CASES)
    for s in slices:  # each slice keeps the collection order
        assert s == [c for c in CASES if c in set(s)]


def test_the_selection_is_deterministic_and_does_not_depend_on_the_collection_order():
    # each pytest-xdist worker collects on its own: the same slice whatever order the registry gave
    shuffled = CASES[:]
    random.Random(3).shuffle(shuffled)
    for k in (1, 2, 3):
        assert set(shard.select(shuffled, f"{k}/3")) == set(shard.select(CASES, f"{k}/3"))
        assert shard.select(CASES, f"{k}/3") == shard.select(list(CASES), f"{k}/3")


def _history_line(seconds: dict[str, float], commit: str = "c0") -> dict:
    return {"schema": history.SCHEMA, "commit": commit, "dirty": False, "time": "2026-12-01T00:00:00+00:00",
            "torch": "2.x", "devices": ["cpu"], "profile": "ci", "dtypes": ["float32", "float64"],
            "summary": {}, "cases": {c: [0.01, s] for c, s in seconds.items()}, "seconds": sum(seconds.values())}


def _skewed() -> dict[str, float]:
    """Heavy-tailed case durations (a few models among many cheap ops), none over a tenth of the total."""
    rng = random.Random(0)
    return {c: min(rng.paretovariate(1.2) * 0.05, 2.0) for c in CASES}


@pytest.mark.parametrize("count", [2, 3, 4, 6])
def test_slices_balance_by_the_recorded_durations(tmp_path, count):
    seconds = _skewed()
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps(_history_line(seconds)) + "\n")
    ideal = sum(seconds.values()) / count
    loads = [sum(seconds[c] for c in shard.select(CASES, f"{k}/{count}", str(path))) for k in range(1, count + 1)]
    assert max(loads) <= 1.2 * ideal, (loads, ideal)
    # the same durations dealt round-robin in collection order are less even: the history is what
    # balances the slices
    naive = [sum(seconds[c] for c in CASES[k::count]) for k in range(count)]
    assert max(loads) < max(naive)
    assert shard.describe(f"1/{count}", str(path))["balanced_by"] == f"history {path} (1 runs)"


def test_the_longest_cases_are_dealt_first(tmp_path):
    # ten short cases collected before one long one: dealt in collection order, the long case would land
    # on a slice that already holds half the short ones (15 s against 5 s); longest first splits 10 | 10
    seconds = {**{f"a{i}|float32|cpu": 1.0 for i in range(10)}, "z|float32|cpu": 10.0}
    path = tmp_path / "history.jsonl"
    path.write_text(json.dumps(_history_line(seconds)) + "\n")
    slices = [shard.select(list(seconds), f"{k}/2", str(path)) for k in (1, 2)]
    assert sorted(sum(seconds[c] for c in s) for s in slices) == [10.0, 10.0]
    assert ["z|float32|cpu"] in slices


def test_a_case_the_history_has_not_seen_weighs_the_median(tmp_path):
    path = tmp_path / "history.jsonl"
    known = {"a|float32|cpu": 1.0, "b|float32|cpu": 3.0, "c|float32|cpu": 10.0}
    path.write_text(json.dumps(_history_line({"a|float32|cpu": 7.0})) + "\n"
                    + json.dumps(_history_line(known, "c1")) + "\n")  # later runs overwrite
    work = shard.durations([*known, "new|float32|cpu"], str(path))
    assert work == {**known, "new|float32|cpu": 3.0}


def test_without_a_history_the_slices_balance_by_an_estimate(tmp_path):
    assert shard.describe("2/3", str(tmp_path / "none.jsonl")) == {
        "index": 2, "count": 3, "cases": None, "balanced_by": "estimate"}
    assert shard.describe("1/1")["balanced_by"] == "estimate"
    # a model (module kind) weighs more than an op: two models do not land in the same slice of two
    cases = ["models.resnet18|float32|cpu", "models.vit_b_16|float32|cpu", "exp|float32|cpu", "sin|float32|cpu"]
    import conformance.mirrors  # noqa: F401  (the registry names the kinds)

    slices = [shard.select(cases, f"{k}/2") for k in (1, 2)]
    assert all(sum(c.startswith("models.") for c in s) == 1 for s in slices), slices


def test_a_lone_slice_fails_the_gate_and_names_merge():
    data = {"run": {"shard": {"index": 2, "count": 3, "cases": 5, "balanced_by": "estimate"}}}
    assert shard.report_problems(data) == [("sharded run", [
        "slice 2 of 3: merge the 3 slices with python -m conformance merge, then gate the merged report"])]
    assert shard.report_problems({"run": {"shard": None}}) == []


# --- merge, in process: planted mirrors, an override that only one slice exercises -----------------

def _planted_slices(tmp_path):
    """Slice 1 holds planted.exp in float32, slice 2 in float64; the override (float32) matches only in
    slice 1. Returns the two slice reports and the unsharded report of the same records."""
    toml = _toml(tmp_path, '[[override]]\nop = "planted.exp"\ndtype = "float32"\natol = 1e-3\nreason = "planted"\n')
    tol = Tolerances.load(toml)
    by_dtype = {dt: run_case(EXP, dt, "cpu", tolerances=tol, examples=2).records for dt in ("float32", "float64")}
    opts = {**OPTS, "tolerances": str(toml)}
    common = {"coverage": CLEAN, "names": ("planted.exp",), "snippets": {}, "reruns": {}}
    slices = [report.build(by_dtype[dt], {**opts, "shard": f"{k}/2"}, **common)
              for k, dt in ((1, "float32"), (2, "float64"))]
    whole = report.build(by_dtype["float32"] + by_dtype["float64"], opts, **common)
    return slices, whole


def _verdicts(data) -> list:
    return sorted((r["case_id"], r["check"], r["status"], r["max_abs_error"]) for r in data["records"])


def test_merged_slices_make_the_unsharded_report(tmp_path):
    slices, whole = _planted_slices(tmp_path)
    assert [s["run"]["shard"]["cases"] for s in slices] == [1, 1]
    assert [o["status"] for o in slices[1]["overrides"]] == ["not exercised"]  # slice 2 alone is not a run
    assert "sharded run" in dict(gate.problems(slices[0]))
    merged = shard.merge([("b.json", slices[1]), ("a.json", slices[0])], names=("planted.exp",))
    assert _verdicts(merged) == _verdicts(whole)
    assert merged["summary"] == whole["summary"]
    assert [o["status"] for o in merged["overrides"]] == [o["status"] for o in whole["overrides"]] == ["ok"]
    assert merged["run"]["shard"] is None
    assert merged["run"]["merged"] == {"shards": 2, "files": ["a.json", "b.json"]}
    assert gate.problems(merged) == gate.problems(whole) == []


def test_merge_keeps_the_slices_snippets_and_reruns(tmp_path):
    slices, _ = _planted_slices(tmp_path)
    slices[0]["reruns"] = {"planted.exp|float32|cpu": {"verdict": "seed-specific", "text": "t"}}
    slices[1]["snippets"] = {"planted.exp|float64|cpu": {"script": "s"}}
    merged = shard.merge([("a", slices[0]), ("b", slices[1])], names=("planted.exp",))
    assert merged["reruns"] == slices[0]["reruns"] and merged["snippets"] == slices[1]["snippets"]


def _refusal(slices, names=("a.json", "b.json")) -> str:
    with pytest.raises(shard.MergeError) as err:
        shard.merge(list(zip(names, slices, strict=True)), names=("planted.exp",))
    return str(err.value)


def test_merge_refuses_slices_of_different_runs(tmp_path):
    slices, whole = _planted_slices(tmp_path)
    assert "slice(s) 2 of 2 missing (got 1)" in _refusal(slices[:1], ["a.json"])
    assert "slice 1 of 2 given twice: a.json and b.json" in _refusal([slices[0], slices[0]])
    assert "b.json is not a slice" in _refusal([slices[0], whole])
    for key, value in (("torch", "0.0"), ("commit", "f" * 40), ("profile", "thorough"), ("dtypes", ["float64"]),
                       ("devices", [{"device": "cuda", "name": "gpu"}]), ("tolerances", "other.toml")):
        other = copy.deepcopy(slices[1])
        other["run"][key] = value
        assert f"b.json differs from a.json in run.{key}" in _refusal([slices[0], other]), key
    other = copy.deepcopy(slices[1])
    other["run"]["shard"]["count"] = 3
    assert "disagree on the number of slices: [2, 3]" in _refusal([slices[0], other])
    other = copy.deepcopy(slices[1])
    other["run"]["shard"]["balanced_by"] = "history h.jsonl (3 runs)"
    assert "b.json was dealt by 'history h.jsonl (3 runs)' but a.json by 'estimate'" in _refusal([slices[0], other])
    other = copy.deepcopy(slices[1])
    other["overrides"][0]["atol"] = 1.0
    assert "tolerance overrides" in _refusal([slices[0], other])
    other = copy.deepcopy(slices[1])
    other["coverage"]["missing"] = ["x"]
    assert "differs from a.json in its coverage" in _refusal([slices[0], other])
    other = copy.deepcopy(slices[1])
    other["records"].append(slices[0]["records"][0])
    assert "case planted.exp|float32|cpu is in two slices: a.json and b.json" in _refusal([slices[0], other])


def test_merge_refuses_slices_of_different_case_lists_or_a_case_in_no_slice(tmp_path):
    slices, _ = _planted_slices(tmp_path)
    for data in slices:
        data["run"]["shard"].update(total=2, fingerprint="f00d")
    assert shard.merge([("a.json", slices[0]), ("b.json", slices[1])], names=("planted.exp",))["summary"]["cases"] == 2
    other = copy.deepcopy(slices[1])
    other["run"]["shard"]["fingerprint"] = "beef"
    assert "b.json and a.json were dealt from different case lists" in _refusal([slices[0], other])
    for data in slices:
        data["run"]["shard"]["total"] = 3  # a third case was dealt to no slice that reported it
    assert "the 2 slices hold 2 of the run's 3 cases: 1 landed in no slice" in _refusal(slices)


# --- merge, end to end: real slices of a real run -------------------------------------------------

def _conformance(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """The sin/cos cases in float64 on cpu: slice 1/2, slice 2/2 and the unsharded run."""
    base = tmp_path_factory.mktemp("shards")
    select = ["-k", "sin or cos", "--dtypes", "float64", "--devices", "cpu"]
    # slice 1 under pytest-xdist (the controller learns the case list from a worker), slice 2 in one process
    for name, extra in (("s1", ["--shard", "1/2", "-n", "2"]), ("s2", ["--shard", "2/2"]), ("all", [])):
        done = _conformance("run", *select, *extra, "--report-dir", str(base / name))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return base


def test_merging_real_slices_gives_the_unsharded_verdicts_and_passes_the_gate(real_runs):
    s1, s2 = (json.loads((real_runs / n / "conformance.json").read_text()) for n in ("s1", "s2"))
    assert s1["run"]["shard"]["cases"] + s2["run"]["shard"]["cases"] > 20
    assert not {r["case_id"] for r in s1["records"]} & {r["case_id"] for r in s2["records"]}
    # both know the whole run's case list (before -k): merge checks that no case landed in no slice
    assert s1["run"]["shard"]["fingerprint"] == s2["run"]["shard"]["fingerprint"]
    assert s1["run"]["shard"]["total"] == s2["run"]["shard"]["total"] > 1000
    lone = _conformance("gate", str(real_runs / "s1" / "conformance.json"))
    assert lone.returncode == 1 and "slice 1 of 2: merge the 2 slices" in lone.stdout
    hist = real_runs / "history.jsonl"
    done = _conformance("merge", str(real_runs / "s1" / "conformance.json"), str(real_runs / "s2" / "conformance.json"),
                        "--report-dir", str(real_runs / "merged"), "--history", str(hist))
    assert done.returncode == 0, done.stdout + done.stderr
    merged = json.loads((real_runs / "merged" / "conformance.json").read_text())
    whole = json.loads((real_runs / "all" / "conformance.json").read_text())
    assert _verdicts(merged) == _verdicts(whole)
    assert merged["summary"] == whole["summary"]
    assert [o["status"] for o in merged["overrides"]] == [o["status"] for o in whole["overrides"]]
    assert (real_runs / "merged" / "conformance.html").exists()
    assert (real_runs / "merged" / "conformance.junit.xml").exists()
    assert _conformance("gate", str(real_runs / "merged" / "conformance.json")).returncode == \
        _conformance("gate", str(real_runs / "all" / "conformance.json")).returncode == 0
    recorded = history.load(hist)  # merge appends the whole run's record, and the next run balances by it
    assert len(recorded) == 1 and set(recorded[0]["cases"]) == {r["case_id"] for r in whole["records"]}


def test_merge_exits_2_on_a_missing_slice(real_runs):
    done = _conformance("merge", str(real_runs / "s2" / "conformance.json"), "--report-dir", str(real_runs / "bad"))
    assert done.returncode == 2
    assert "slice(s) 1 of 2 missing (got 2)" in done.stdout
    assert not (real_runs / "bad").exists()


def test_merge_exits_2_on_a_slice_of_another_torch(real_runs, tmp_path):
    other = json.loads((real_runs / "s2" / "conformance.json").read_text())
    other["run"]["torch"] = "1.0.0"
    (tmp_path / "s2.json").write_text(json.dumps(other))
    done = _conformance("merge", str(real_runs / "s1" / "conformance.json"), str(tmp_path / "s2.json"),
                        "--report-dir", str(tmp_path / "out"))
    assert done.returncode == 2 and "in run.torch: '1.0.0' vs" in done.stdout
