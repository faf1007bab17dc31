"""The benchmark suite runs end to end and writes its report (a smoke test, not a timing test)."""

from __future__ import annotations

import json

from benchmarks import suite, timing, workloads


def test_interleave_rotates_the_order_and_keeps_one_time_per_round():
    calls = []
    times = timing.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotation a-first, b-first, a-first
    assert [len(v) for v in times.values()] == [3, 3]
    result = timing.compare([2.0, 4.0, 3.0], [1.0, 2.0, 2.0])
    assert (result["ratio_median"], result["ratio_min"], result["ratio_max"]) == (2.0, 1.5, 2.0)


def test_every_workload_steps_both_libraries_on_the_same_problem():
    for setup in workloads.WORKLOADS.values():
        w = setup("cpu", quick=True)
        nx_loss, torch_loss = w.neuronix(), w.torch()
        if torch_loss is not None:  # same weights, same batch: the first losses agree
            assert abs(nx_loss.item() - torch_loss.item()) <= 1e-4 * abs(torch_loss.item()), w.name


def test_quick_suite_writes_json_and_png(tmp_path):
    out = tmp_path / "benchmarks.json"
    assert suite.main(["--quick", "--device", "cpu", "--rounds", "1", "--only", "tiny_chain", "memory",
                       "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"machine", "load_before", "busy_before", "results"} <= set(report)
    assert report["machine"]["torch_threads"] >= 1 and "preloaded" in report["machine"]["malloc"]
    names = [r["name"] for r in report["results"]]
    assert names == ["tiny_chain", "resnet18_memory"]
    for r in report["results"]:
        assert "error" not in r, r
        assert r["ratio_median"] > 0 and r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
    assert out.with_suffix(".png").stat().st_size > 1000


def test_growth_sweep_measures_both_libraries_at_each_length():
    from benchmarks import growth

    result = growth.sweep((200, 400), repeats=1)
    assert "error" not in result, result
    assert {(r["lib"], r["length"]) for r in result["rows"]} == {(lib, n) for lib in ("neuronix", "torch") for n in (200, 400)}
    assert all(r["forward_us"] > 0 and r["backward_us"] > 0 for r in result["rows"])
    assert result["neuronix_forward_flatness"] > 0 and "ratio_vs_torch_400" in result
    assert "neuronix" in growth.describe(result)
