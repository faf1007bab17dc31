"""The harness is tested too: planted faults must be caught and reported with the right case named.

Each fault is a small op registered only for the test (or a monkeypatched engine rule);
each test also runs the correct twin of the op, so a check that cannot fail (or that
fails on correct code) shows up here.
"""

from __future__ import annotations

import gc

import pytest
import torch
from planting import plant as _op

import neuronix as nx
from conformance.mirror import OpMirror, Sample
from conformance.runner import case_id, run_case, seed_of
from conformance.strategies import nonempty_shape, tensor, unary
from neuronix.ops.registry import apply


def run(mirror, dtype="float64", **kw):
    return run_case(mirror, dtype, "cpu", examples=kw.pop("examples", 3), **kw)


def record(case, check):
    return next(r for r in case.records if r.check == check)


def status(case) -> dict:
    return {r.check: r.status for r in case.records}


# ----- a VJP off by a factor 1 + 1e-5 ------------------------------------------------------
def _scaled_mirror(factor: float) -> OpMirror:
    spec = _op(f"planted_scale_{factor}", lambda x: x * 3, lambda g, out, x: g * (3 * factor), saves=())
    return OpMirror("planted.scale", lambda x: apply(spec, x), lambda x: x * 3, unary())


def test_vjp_off_by_1e5_in_float64_is_caught_by_both_oracles():
    case = run(_scaled_mirror(1 + 1e-5))
    assert case.case_id == "planted.scale|float64|cpu"
    assert record(case, "forward").status == "pass"
    backward = record(case, "backward")
    assert backward.status == "fail"
    assert 5e-6 < backward.max_rel_error < 2e-5  # the planted factor, measured
    assert record(case, "finite_difference").status == "fail"  # the second oracle sees it on its own
    message = case.failure_message()
    assert "planted.scale|float64|cpu" in message and "python -m conformance repro 'planted.scale|float64|cpu'" in message


def test_exact_vjp_passes():
    case = run(_scaled_mirror(1.0))
    assert not case.failed, case.failure_message()
    assert set(status(case)) >= {"forward", "backward", "double_backward", "finite_difference", "leak"}


# ----- a broadcast gradient not reduced ----------------------------------------------------
def _broadcast_sample(draw, dtype, device):
    return Sample((tensor(draw, (3, 1), dtype, device), tensor(draw, (1, 4), dtype, device)))


def test_unreduced_broadcast_gradient_is_caught(monkeypatch):
    import neuronix.ops.reduce as reduce_ops

    mirror = OpMirror("planted.mul_broadcast", nx.mul, torch.mul, _broadcast_sample)
    assert not run(mirror).failed  # the real engine reduces correctly
    monkeypatch.setattr(reduce_ops, "sum_to_shape", lambda g, shape: g)  # the engine forgets to reduce
    case = run(mirror)
    backward = record(case, "backward")
    assert backward.status == "fail"
    assert "shape (3, 4) != torch's (3, 1)" in backward.message
    assert backward.case_id == "planted.mul_broadcast|float64|cpu"


def test_broadcast_gradient_reduced_with_mean_instead_of_sum_is_caught(monkeypatch):
    import neuronix.ops.reduce as reduce_ops

    real = reduce_ops.sum_to_shape
    def averaged(g, shape):
        return real(g, shape) / 4 if tuple(shape) == (3, 1) else real(g, shape)

    monkeypatch.setattr(reduce_ops, "sum_to_shape", averaged)
    case = run(OpMirror("planted.mul_mean", nx.mul, torch.mul, _broadcast_sample))
    assert record(case, "backward").status == "fail"
    assert "grad arg 0" in record(case, "backward").message


# ----- a transposed gradient on a square matrix ----------------------------------------------
WEIGHT = torch.arange(9, dtype=torch.float64).reshape(3, 3) / 7 - 0.5  # not symmetric


def _square_sample(draw, dtype, device):
    return Sample((tensor(draw, (3, 3), dtype, device),))


def _weighted_mirror(transposed: bool) -> OpMirror:
    def vjp(g, out, x):  # recorded under create_graph, as a rule must be (forward mode transposes it)
        grad = g * WEIGHT.to(g.dtype)
        return grad.T.contiguous() if transposed else grad

    spec = _op(f"planted_weighted_{transposed}", lambda x: x * WEIGHT.to(x.dtype), vjp, saves=())
    return OpMirror("planted.weighted", lambda x: apply(spec, x), lambda x: x * WEIGHT.to(x.dtype), _square_sample,
                    gradgrad=False)


def test_transposed_gradient_on_square_matrix_is_caught_in_both_dtypes():
    for dtype in ("float32", "float64"):
        assert not run(_weighted_mirror(False), dtype).failed
        case = run(_weighted_mirror(True), dtype)
        assert record(case, "backward").status == "fail", dtype
        assert record(case, "backward").case_id == f"planted.weighted|{dtype}|cpu"


# ----- a wrong second derivative with a right first one --------------------------------------
def _cube_mirror(detached: bool) -> OpMirror:
    def vjp(g, out, x):
        slope = nx.Tensor(3 * x.data**2) if detached else 3 * x * x  # detached: d/dx of the slope is lost
        return g * slope

    spec = _op(f"planted_cube_{detached}", lambda x: x**3, vjp)
    return OpMirror("planted.cube", lambda x: apply(spec, x), lambda x: x**3, unary())


def test_wrong_second_derivative_with_right_first_is_caught():
    assert not run(_cube_mirror(False)).failed
    case = run(_cube_mirror(True))
    checks = status(case)
    assert checks["forward"] == checks["backward"] == checks["finite_difference"] == "pass"
    assert checks["double_backward"] == "fail"
    assert "grad of <grad, v> wrt arg 0" in record(case, "double_backward").message


# ----- a reference cycle that keeps a graph alive ----------------------------------------------
def _cycle_mirror(leaky: bool) -> OpMirror:
    spec = _op(f"planted_cycle_{leaky}", lambda x, box: x * 2, lambda g, out, x, box: g * 2, saves=())

    def fn(x):
        box = []
        out = apply(spec, x, box=box)
        if leaky:
            box.append(out)  # node.attrs["box"] -> out -> node: only the cyclic collector could free it
        return out

    return OpMirror("planted.cycle", fn, lambda x: x * 2, unary())


def test_reference_cycle_is_reported_as_a_leak():
    assert gc.isenabled()
    assert not run(_cycle_mirror(False)).failed
    case = run(_cycle_mirror(True))
    leak = record(case, "leak")
    assert leak.status == "fail" and leak.case_id == "planted.cycle|float64|cpu"
    assert "graph node(s) still alive" in leak.message and "planted_cycle_True" in leak.message
    assert "output" in leak.message  # the weak reference to the output is still alive too
    assert all(r.leak.ok is False for r in case.records)
    assert gc.isenabled()  # the runner restores the collector


# ----- errors and capability claims -------------------------------------------------------------
def test_neuronix_raising_where_torch_does_not_is_an_error():
    def broken(x):
        raise ValueError("planted failure")

    case = run(OpMirror("planted.raises", broken, torch.exp, unary()))
    assert record(case, "error").status == "error"
    assert "planted failure" in record(case, "error").message


def test_missing_driver_is_reported_not_raised():
    from conformance.kinds import DRIVERS

    DRIVERS["planted_kind"] = "conformance.kinds.no_such_module:compare"
    try:
        mirror = OpMirror("planted.kind", nx.exp, torch.exp, unary(), kind="planted_kind")
        case = run(mirror)
        assert record(case, "error").status == "error"
        assert "no comparison driver for kind 'planted_kind'" in record(case, "error").message
    finally:
        del DRIVERS["planted_kind"]


def _replay_mirror(name: str = "planted.replay") -> OpMirror:
    return OpMirror(name, nx.exp, torch.exp, lambda d, t, v: Sample((tensor(d, nonempty_shape(d), t, v),)))


def _draws(case) -> list:
    return [(e.index, e.seed, e.info["inputs"]) for e in case.examples]


def test_a_case_id_maps_to_its_own_seed_on_every_machine():
    assert seed_of("exp|float64|cpu") == 977669144  # pinned: a repro command printed by CI replays anywhere
    ids = [case_id(n, dt, dev) for n in ("exp", "exp2", "planted.replay") for dt in ("float32", "float64")
           for dev in ("cpu", "cuda")]
    assert len({seed_of(i) for i in ids}) == len(ids)  # name, dtype and device each move the seed


def test_case_replays_identically_from_its_id():
    mirror = _replay_mirror()
    first, again = run(mirror, examples=6), run(mirror, examples=6)
    assert first.seed == seed_of("planted.replay|float64|cpu")
    assert _draws(first) == _draws(again)
    assert record(first, "backward").max_abs_error == record(again, "backward").max_abs_error
    for k in (0, 3, 5):  # ``repro --example K``: example K alone is the example K of the whole case
        assert _draws(run(mirror, examples=6, only_example=k)) == [_draws(first)[k]]


def test_another_case_id_draws_other_examples():
    """A seed that ignored the id (or a runner that ignored the seed) would give every case the same examples.

    Example 0 is Hypothesis's simplest draw (seed 0) in every case, so the examples after it are compared.
    """
    first = [e.seed for e in run(_replay_mirror(), examples=6).examples]
    renamed = [e.seed for e in run(_replay_mirror("planted.replay.renamed"), examples=6).examples]
    other_dtype = [e.seed for e in run(_replay_mirror(), "float32", examples=6).examples]
    assert first[1:] != renamed[1:] and first[1:] != other_dtype[1:] and renamed[1:] != other_dtype[1:]


# ----- a gradient cached on a node across backward passes ----------------------------------
def _cached_mirror(stale: bool) -> OpMirror:
    """``x * y`` whose VJPs share one computation; the stale twin keeps it on the node (the old norm bug)."""

    def shared(g, out, x, y, cache):
        if not stale or "grads" not in cache:
            cache["grads"] = (g * y, g * x)
        return cache["grads"]

    spec = _op(f"planted_cache_{stale}", lambda x, y, cache: x * y,
               lambda g, out, x, y, cache: shared(g, out, x, y, cache)[0],
               lambda g, out, x, y, cache: shared(g, out, x, y, cache)[1])

    def call(x, y):
        return apply(spec, x, y, cache={})

    sample = lambda draw, dtype, device: Sample((tensor(draw, (3, 2), dtype, device), tensor(draw, (3, 2), dtype, device)))
    return OpMirror("planted.cache", call, torch.mul, sample, gradgrad=False)


def test_a_gradient_kept_for_another_upstream_gradient_is_caught():
    case = run(_cached_mirror(stale=True))
    assert record(case, "backward").status == "fail"
    assert "upstream" in record(case, "backward").message
    assert not run(_cached_mirror(stale=False)).failed


# ----- an index tensor the backward reads without a version check ---------------------------
def _index_mirror(checked: bool) -> OpMirror:
    """``x[idx]``; the unchecked twin hides ``idx`` from the node (read through a closure)."""
    forward = lambda x, box, index=None: x[box[0] if index is None else index]

    def backward(g, out, x, box, index=None):  # linear in g and recorded, as a rule must be
        return nx.index_add(nx.zeros(box[1], dtype=g.dtype), 0, box[0] if index is None else index, g)

    spec = _op(f"planted_index_{checked}", forward, backward, None, saves=(1,))

    def call(x, index):
        raw = index.data
        if checked:
            return apply(spec, x, (raw, x.shape[0]), index=raw)
        return apply(spec, x, (raw, x.shape[0]))

    sample = lambda draw, dtype, device: Sample((tensor(draw, (4,), dtype, device), torch.tensor([0, 2, 2])))
    return OpMirror("planted.index", call, lambda x, index: x[index], sample, gradgrad=False, fd=False)


def test_an_index_changed_in_place_after_use_must_raise_as_torch():
    case = run(_index_mirror(checked=False))
    assert record(case, "version_guard").status == "fail"
    assert not run(_index_mirror(checked=True)).failed


# ----- a rule whose dependence on the upstream gradient is wrong under recording -------------
def _upstream_mirror(fault: str) -> OpMirror:
    """``3 * x``. Its first derivative is right in every variant; under create_graph the faulty rules
    cut the gradient off the upstream ``g`` (``raw``: reads its value) or scale that dependence
    (``scaled``: ``6g - 3g`` with the second term a constant). For a linear op that is its whole
    second-order behaviour: only differentiating w.r.t. the upstream gradient sees it."""

    def rule(g, out, x):
        if fault == "raw" and isinstance(g, nx.Tensor):
            return nx.Tensor(g.data * 3)
        if fault == "scaled" and isinstance(g, nx.Tensor):
            return g * 6 - nx.Tensor(g.data * 3)
        return g * 3

    spec = _op(f"planted_upstream_{fault}", lambda x: x * 3, rule, saves=())
    sample = lambda draw, dtype, device: Sample((tensor(draw, (3, 2), dtype, device),))
    return OpMirror("planted.upstream", lambda x: apply(spec, x), lambda x: x * 3, sample, fd=False)


@pytest.mark.parametrize("fault", ["raw", "scaled"])
def test_a_rule_wrong_only_in_its_dependence_on_the_upstream_gradient_is_caught(fault):
    case = run(_upstream_mirror(fault))
    assert record(case, "backward").status == "pass"  # the first derivative is right
    assert record(case, "double_backward").status == "fail"
    assert "upstream gradient" in record(case, "double_backward").message
    assert not run(_upstream_mirror("none")).failed
