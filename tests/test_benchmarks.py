"""The benchmark suite runs end to end and writes its report (a smoke test, not a timing test)."""

from __future__ import annotations

import json
import math

import torch

import neuronix as nx
from benchmarks import suite, timing, transformer, workloads


def test_interleave_rotates_the_order_and_keeps_one_time_per_round():
    calls = []
    times = timing.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then rotation a-first, b-first, a-first
    assert [len(v) for v in times.values()] == [3, 3]
    result = timing.compare([2.0, 4.0, 3.0], [1.0, 2.0, 2.0])
    assert (result["ratio_median"], result["ratio_min"], result["ratio_max"]) == (2.0, 1.5, 2.0)


def test_transformer_twins_match_loss_and_gradients():
    """The two sides of the transformer benchmark compute the same thing (else the ratio means nothing)."""
    torch.manual_seed(0)
    nx_model, torch_model = transformer.build(nx)(context=8), transformer.build(torch)(context=8)
    nx_model.load_state_dict(torch_model.state_dict())
    idx = torch.randint(0, transformer.VOCAB, (2, 9))
    nx_loss = transformer.loss(nx, nx_model(idx[:, :-1]), idx[:, 1:])
    torch_loss = transformer.loss(torch, torch_model(idx[:, :-1]), idx[:, 1:])
    nx_loss.backward()
    torch_loss.backward()
    assert math.isclose(nx_loss.item(), torch_loss.item(), rel_tol=1e-5)
    for (name, p), q in zip(nx_model.named_parameters(), torch_model.parameters()):
        torch.testing.assert_close(p.grad.data, q.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_every_workload_steps_both_libraries():
    for setup in workloads.WORKLOADS.values():
        w = setup("cpu", quick=True)
        w.neuronix()
        w.torch()


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
