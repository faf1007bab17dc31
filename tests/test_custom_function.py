"""``nx.autograd.Function``: torch's interface and torch's behaviour, where the mirrors (values and
derivatives of ``conformance/mirrors/custom.py``) do not reach: the ctx's API, errors, freeing,
``once_differentiable``, in place, and a planted backward mistake caught by gradcheck and the harness."""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch

import neuronix as nx
from conformance.mirror import OpMirror
from conformance.mirrors.custom import Softplus, TorchSoftplus
from conformance.runner import run_case
from conformance.strategies import REAL, unary
from tests.planting import plant_mirror


def leaf(*values, dtype=torch.float64):
    return nx.Tensor(torch.tensor(values, dtype=dtype), requires_grad=True)


class Cube(nx.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * 3 * x ** 2


def test_values_gradients_and_second_derivatives_of_a_cube():
    x = leaf(1.0, -2.0, 0.5)
    y = Cube.apply(x)
    assert repr(y.grad_fn) == "<CubeBackward>"
    (g,) = nx.autograd.grad(y.sum(), x, create_graph=True)
    (gg,) = nx.autograd.grad(g.sum(), x)
    torch.testing.assert_close(g.data, 3 * x.data ** 2)
    torch.testing.assert_close(gg.data, 6 * x.data)


def test_setup_context_style_binds_defaults_and_keeps_keywords():
    seen = {}

    class Scale(nx.autograd.Function):
        @staticmethod
        def forward(x, factor=3.0):
            return x * factor

        @staticmethod
        def setup_context(ctx, inputs, output):
            seen["inputs"] = inputs
            ctx.factor = inputs[1]

        @staticmethod
        def backward(ctx, grad):
            return grad * ctx.factor, None

    x = leaf(1.0, 2.0)
    Scale.apply(x).sum().backward()
    assert seen["inputs"][1] == 3.0 and len(seen["inputs"]) == 2
    torch.testing.assert_close(x.grad.data, torch.full((2,), 3.0, dtype=torch.float64))
    x.grad = None
    Scale.apply(x, factor=-1.0).sum().backward()
    torch.testing.assert_close(x.grad.data, torch.full((2,), -1.0, dtype=torch.float64))


def test_forward_runs_without_recording_and_sees_needs_input_grad():
    seen = {}

    class Probe(nx.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, n):
            seen["grad"] = nx.is_grad_enabled()
            seen["needs"] = ctx.needs_input_grad
            return a * b * n

        @staticmethod
        def backward(ctx, grad):
            return grad, None, None

    Probe.apply(leaf(1.0), nx.Tensor(torch.ones(1, dtype=torch.float64)), 2)
    assert seen == {"grad": False, "needs": (True, False, False)}
    with nx.no_grad():
        out = Probe.apply(leaf(1.0), leaf(2.0), 2)
    assert seen["needs"] == (False, False, False) and not out.requires_grad


def test_mark_non_differentiable_and_materialized_zeros_for_it():
    got = {}

    class Max(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            idx = x.data.argmax().reshape(1)
            value = x[idx]
            ctx.mark_non_differentiable(idx)
            ctx.save_for_backward(x, nx.Tensor(idx))
            return value, nx.Tensor(idx)

        @staticmethod
        def backward(ctx, g_value, g_idx):
            got["g_idx"] = g_idx
            x, idx = ctx.saved_tensors
            out = torch.zeros_like(x.data)
            out[idx.data] = g_value.data
            return nx.Tensor(out)

    x = leaf(1.0, 5.0, 2.0)
    value, idx = Max.apply(x)
    assert value.requires_grad and not idx.requires_grad
    value.sum().backward()
    torch.testing.assert_close(x.grad.data, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    assert torch.equal(got["g_idx"].data, torch.zeros(1, dtype=torch.int64))  # torch's zeros of the output's dtype


@pytest.mark.parametrize("materialize", [True, False])
def test_unused_output_gets_zeros_or_none(materialize):
    got = {}

    class Pair(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            got["g2"] = g2
            return g1 * 2 + (0 if g2 is None else g2 * 3)

    x = leaf(1.0, 2.0)
    a, _ = Pair.apply(x)
    a.sum().backward()
    torch.testing.assert_close(x.grad.data, torch.full((2,), 2.0, dtype=torch.float64))
    if materialize:
        assert torch.equal(got["g2"].data, torch.zeros(2, dtype=torch.float64))
    else:
        assert got["g2"] is None


def test_a_none_gradient_leaves_grad_unset_as_torch():
    class Stop(nx.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    a, b = leaf(1.0), leaf(2.0)
    Stop.apply(a, b).sum().backward()
    assert b.grad is None and a.grad is not None


def _fn(backward, forward=lambda ctx, x, *rest: x * 2):
    return type("Bad", (nx.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


@pytest.mark.parametrize("backward, message", [
    (lambda ctx, g: (g, g), "returned an incorrect number of gradients (expected 1, got 2)"),
    (lambda ctx, g: g[:1], "returned an invalid gradient at index 0 - got [1] but expected shape compatible with [3]"),
    (lambda ctx, g: 3.0, "expected a Tensor or None"),
])
def test_bad_gradients_raise_torchs_errors(backward, message):
    x = leaf(1.0, 2.0, 3.0)
    with pytest.raises((RuntimeError, TypeError)) as err:
        _fn(backward).apply(x).sum().backward()
    assert message in str(err.value)


def test_trailing_none_gradients_are_accepted_and_a_non_tensor_input_must_get_none():
    x = leaf(1.0, 2.0)
    _fn(lambda ctx, g: (g * 2, None, None)).apply(x).sum().backward()  # extra Nones: dropped, as torch
    torch.testing.assert_close(x.grad.data, torch.full((2,), 2.0, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="returned a gradient different than None at position 2, but the "
                                           "corresponding forward input was not a Variable"):
        _fn(lambda ctx, g, *_: (g, g), forward=lambda ctx, x, k: x * k).apply(x, 2).sum().backward()


def test_gradients_are_cast_and_reduced_to_the_input():
    x = leaf(1.0, 2.0, dtype=torch.float32)
    _fn(lambda ctx, g: g.double().expand(4, 2)).apply(x).sum().backward()
    assert x.grad.dtype == torch.float32
    torch.testing.assert_close(x.grad.data, torch.full((2,), 4.0))
    a, b = leaf(1.0, 2.0), leaf(3.0, dtype=torch.float32)  # packed: two inputs of two dtypes
    two = type("Two", (nx.autograd.Function,), {
        "forward": staticmethod(lambda ctx, a, b: a * b),
        "backward": staticmethod(lambda ctx, g: (g.expand(3, 2), g.sum().reshape(1) * 2))})
    two.apply(a, b).sum().backward()
    torch.testing.assert_close(a.grad.data, torch.full((2,), 3.0, dtype=torch.float64))
    assert b.grad.dtype == torch.float32 and float(b.grad.data) == 4.0


def test_saved_tensor_written_in_place_raises_and_freed_saves_refuse_a_second_pass():
    y = leaf(1.0, 2.0) * 1
    out = Cube.apply(y)
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    x = leaf(1.0, 2.0)
    out = Cube.apply(x)
    out.sum().backward(retain_graph=True)
    out.sum().backward()  # retained: a second pass runs
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.sum().backward()
    nothing_saved = _fn(lambda ctx, g: g * 2).apply(x)
    nothing_saved.sum().backward()
    nothing_saved.sum().backward()  # torch too: a node that saved nothing runs again


def test_once_differentiable_runs_unrecorded_and_refuses_the_second_derivative():
    class Once(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        @nx.autograd.function.once_differentiable
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            assert not nx.is_grad_enabled()
            return grad * 3 * x ** 2

    x = leaf(1.0, 2.0)
    up = nx.Tensor(torch.ones(2, dtype=torch.float64), requires_grad=True)
    (g,) = nx.autograd.grad(Once.apply(x), x, up, create_graph=True)
    torch.testing.assert_close(g.data, 3 * x.data ** 2)
    with pytest.raises(RuntimeError, match="trying to differentiate twice a function that was marked with "
                                           "@once_differentiable"):
        g.sum().backward()
    (g,) = nx.autograd.grad(Once.apply(x).sum(), x, create_graph=True)  # torch: no graph when nothing needs one
    assert not g.requires_grad


def test_double_backward_through_a_saved_output():
    class Exp(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * y

    class ExpPair(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y, x * 2

        @staticmethod
        def backward(ctx, g1, g2):
            (y,) = ctx.saved_tensors
            return g1 * y + g2 * 2

    for fn, pick in ((Exp.apply, lambda out: out), (ExpPair.apply, lambda out: out[0] + out[1])):
        x = leaf(0.5, -1.0)
        (g,) = nx.autograd.grad(pick(fn(x)).sum(), x, create_graph=True)
        (gg,) = nx.autograd.grad(g.sum(), x)
        torch.testing.assert_close(gg.data, x.data.exp())
    y = Exp.apply(leaf(0.5))
    y.data.add_(1)  # the saved output written in place
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_mark_dirty_moves_the_inputs_history_and_refuses_a_leaf():
    class Double_(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            x.mul_(2)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    x = leaf(1.0, 3.0)
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad"):
        Double_.apply(x)
    x = leaf(1.0, 3.0)
    y = x * 1
    out = Double_.apply(y)
    assert out is y and repr(y.grad_fn) == "<Double_Backward>"
    torch.testing.assert_close(y.data, torch.tensor([2.0, 6.0], dtype=torch.float64))
    (y * y).sum().backward()
    torch.testing.assert_close(x.grad.data, 2 * y.data * 2)


def test_an_input_returned_as_is_is_a_new_tensor_in_the_graph():
    x = leaf(1.0)
    out = _fn(lambda ctx, g: g * 5, forward=lambda ctx, x: x).apply(x)
    assert out is not x and out.requires_grad and out.data is x.data
    out.backward()
    assert float(x.grad.data) == 5.0


def test_non_tensor_outputs_and_raw_torch_outputs():
    class Mixed(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2, "label", 3

        @staticmethod
        def backward(ctx, g, _label, _n):
            return g * 2

    x = leaf(1.0, 2.0)
    y, label, n = Mixed.apply(x)
    assert isinstance(y, nx.Tensor) and y.requires_grad and (label, n) == ("label", 3)
    y.sum().backward()
    torch.testing.assert_close(x.grad.data, torch.full((2,), 2.0, dtype=torch.float64))


def test_legacy_calls_and_missing_backward_raise_as_torch():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instance = Cube()
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    with pytest.raises(RuntimeError, match="Legacy autograd function with non-static forward method"):
        instance(leaf(1.0))
    no_backward = type("NoBackward", (nx.autograd.Function,), {"forward": staticmethod(lambda ctx, x: x * 2)})
    with pytest.raises(NotImplementedError, match="You must implement either the backward or vjp method"):
        no_backward.apply(leaf(1.0)).backward()
    with pytest.raises(TypeError, match="save_for_backward can only save variables"):
        _fn(lambda ctx, g: g, forward=lambda ctx, x: ctx.save_for_backward(3) or x).apply(leaf(1.0))


def test_a_recorded_function_leaves_no_cycle():
    gc.disable()
    try:
        x = leaf(1.0, 2.0)
        with nx.autograd.AutogradGraph() as graph:
            a, b = ExpPairSaved.apply(x, x * 2)
            node = weakref.ref(a.grad_fn)
            assert graph.live_nodes() >= 3
            del a, b
        assert node() is None and graph.live_nodes() == 0
    finally:
        gc.enable()


class ExpPairSaved(nx.autograd.Function):
    """Two inputs, two outputs, an output and an input saved: the pack, pick and call nodes."""

    @staticmethod
    def forward(ctx, x, z):
        y = x.exp()
        ctx.save_for_backward(y, z)
        ctx.keep = "attributes are fine"
        return y, x * z

    @staticmethod
    def backward(ctx, g1, g2):
        y, z = ctx.saved_tensors
        return g1 * y + g2 * z, g2 * (y.log())


def test_planted_backward_mistake_fails_gradcheck_and_the_mirror():
    class WrongSoftplus(Softplus):
        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * nx.sigmoid(x) * 1.01

    x = nx.Tensor(torch.randn(4, dtype=torch.float64), requires_grad=True)
    assert nx.autograd.gradcheck(Softplus.apply, (x,)) and nx.autograd.gradgradcheck(Softplus.apply, (x,))
    with pytest.raises(nx.autograd.GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        nx.autograd.gradcheck(WrongSoftplus.apply, (x,))
    good = plant_mirror(OpMirror("custom.planted_good", Softplus.apply, TorchSoftplus.apply, unary(REAL)))
    bad = plant_mirror(OpMirror("custom.planted_wrong", WrongSoftplus.apply, TorchSoftplus.apply, unary(REAL)))
    assert not run_case(good, torch.float64, examples=2).failed
    case = run_case(bad, torch.float64, examples=2, classify=False)
    assert case.failed and any(not j.ok and j.check == "backward" for ex in case.examples for j in ex.judged)


def test_a_tensor_already_in_a_graph_returned_by_forward_keeps_its_history():
    weight = leaf(1.0, 2.0)
    closes_over = _fn(lambda ctx, g: g, forward=lambda ctx, x: weight)
    out = closes_over.apply(leaf(3.0, 4.0))
    assert out is not weight and weight.is_leaf and out.requires_grad


USER_MIRRORS = '''
import torch
import neuronix as nx
from conformance.mirror import OpMirror, register
from conformance.strategies import unary


class Cube(nx.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2


class TorchCube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2


register(OpMirror("custom.user_cube", Cube.apply, TorchCube.apply, unary(), dtypes=(torch.float64,)))
'''


def test_a_users_mirror_module_runs_under_python_m_conformance(tmp_path):
    import json
    import subprocess
    import sys

    module = tmp_path / "my_mirrors.py"
    module.write_text(USER_MIRRORS)
    listed = subprocess.run([sys.executable, "-m", "conformance", "list", "--mirrors", str(module)],
                            capture_output=True, text=True, check=True).stdout
    assert "custom.user_cube" in listed
    reports = tmp_path / "reports"
    subprocess.run([sys.executable, "-m", "conformance", "run", "--mirrors", "my_mirrors", "-k", "custom.user_cube",
                    "--dtypes", "float64", "--examples", "2", "--report-dir", str(reports)],
                   cwd=tmp_path, capture_output=True, text=True, check=True)  # a module importable from the cwd
    report = json.loads((reports / "conformance.json").read_text())
    summary = report["summary"]
    assert summary["cases"] == 1 and summary["passed"] == summary["records"] and not summary["errors"], summary
    # one record per check kind, each over both examples: the op checks a unary float64 op runs, all of them
    checks = {r["check"] for r in report["records"] if r["entry"] == "custom.user_cube"}
    assert checks >= {"forward", "backward", "double_backward", "finite_difference", "forward_ad", "special_values",
                      "variant", "version_guard", "thread", "leak"}, checks
    assert all(r["examples"] == 2 for r in report["records"] if r["check"] != "leak"), report["records"]
    assert "custom.user_cube" not in report["coverage"]["orphans"]
