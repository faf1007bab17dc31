"""``nx.autograd.gradcheck`` / ``gradgradcheck``: torch's signatures, verdicts and errors."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

import neuronix as nx


def leaf(n=3, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return nx.Tensor(torch.randn(n, generator=gen, dtype=torch.float64).to(dtype), requires_grad=True)


def _with_backward(backward, forward=lambda ctx, x: (ctx.save_for_backward(x), x ** 3)[1]):
    return type("Fn", (nx.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


RIGHT = _with_backward(lambda ctx, g: g * 3 * ctx.saved_tensors[0] ** 2)
WRONG = _with_backward(lambda ctx, g: g * 2 * ctx.saved_tensors[0] ** 2)
# first derivative right, but written outside the graph: its own derivative is lost
DETACHED = _with_backward(lambda ctx, g: g * nx.Tensor(3 * ctx.saved_tensors[0].data ** 2))


@pytest.mark.parametrize("name", ["gradcheck", "gradgradcheck"])
def test_signatures_are_torchs(name):
    ours, theirs = inspect.signature(getattr(nx.autograd, name)), inspect.signature(getattr(torch.autograd, name))
    assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == \
           [(p.name, p.kind, p.default) for p in theirs.parameters.values()]
    assert issubclass(nx.autograd.GradcheckError, RuntimeError)


def test_builtin_ops_and_a_right_function_pass():
    a, b = leaf(3), leaf(3, seed=1)
    assert nx.autograd.gradcheck(lambda x, y: (x * y.sin(), x.exp().sum()), (a, b))
    assert nx.autograd.gradgradcheck(lambda x, y: x * y.sin(), (a, b))
    assert nx.autograd.gradcheck(RIGHT.apply, (a,), fast_mode=True)
    assert nx.autograd.gradgradcheck(RIGHT.apply, a)  # a lone tensor is a one-tuple


@pytest.mark.parametrize("fast_mode", [False, True])
def test_a_wrong_backward_fails_with_torchs_message_or_false(fast_mode):
    x = leaf()
    with pytest.raises(nx.autograd.GradcheckError, match="Jacobian mismatch for output 0 with respect to input 0"):
        nx.autograd.gradcheck(WRONG.apply, (x,), fast_mode=fast_mode)
    assert nx.autograd.gradcheck(WRONG.apply, (x,), fast_mode=fast_mode, raise_exception=False) is False


def test_check_forward_ad_compares_neuronix_forward_mode_with_finite_differences():
    a, b = leaf(3), leaf(3, seed=1)
    assert nx.autograd.gradcheck(lambda x, y: (x * y.sin(), x.exp().sum()), (a, b), check_forward_ad=True)
    with pytest.raises(nx.autograd.GradcheckError, match="Jacobian computed with forward mode mismatch for output 0"):
        nx.autograd.gradcheck(WRONG.apply, (a,), check_forward_ad=True, check_backward_ad=False)


def test_gradgradcheck_catches_a_backward_outside_the_graph():
    x = leaf()
    assert nx.autograd.gradcheck(DETACHED.apply, (x,))
    with pytest.raises(nx.autograd.GradcheckError):
        nx.autograd.gradgradcheck(DETACHED.apply, (x,))
    up = nx.Tensor(torch.ones(3, dtype=torch.float64), requires_grad=True)
    assert nx.autograd.gradgradcheck(RIGHT.apply, (x,), (up,), gen_non_contig_grad_outputs=True)


def test_tolerances_decide_as_torchs_allclose():
    x = leaf()
    slightly = _with_backward(lambda ctx, g: g * 3 * ctx.saved_tensors[0] ** 2 * (1 + 1e-4))
    assert nx.autograd.gradcheck(slightly.apply, (x,))  # rtol 1e-3 covers it
    assert not nx.autograd.gradcheck(slightly.apply, (x,), rtol=1e-6, atol=1e-8, raise_exception=False)


def test_errors_and_warnings_as_torch():
    with pytest.raises(ValueError, match="at least one input tensor to require gradient"):
        nx.autograd.gradcheck(RIGHT.apply, (nx.Tensor(torch.ones(2, dtype=torch.float64)),))
    with pytest.warns(UserWarning, match="Input #0 requires gradient and is not a double precision"):
        nx.autograd.gradcheck(lambda x: x * 2, (leaf(dtype=torch.float32),), eps=1e-3, atol=1e-2, rtol=1e-2)
    with pytest.raises(NotImplementedError, match="check_batched_grad"):
        nx.autograd.gradcheck(RIGHT.apply, (leaf(),), check_batched_grad=True)


def test_nondeterministic_backward_and_hidden_dependence_are_reported():
    calls = [0]

    def jittery(ctx, g):
        calls[0] += 1
        return g * 3 * ctx.saved_tensors[0] ** 2 + (1e-9 if calls[0] % 2 else 0)

    with pytest.raises(nx.autograd.GradcheckError, match="Backward is not reentrant"):
        nx.autograd.gradcheck(_with_backward(jittery).apply, (leaf(),))
    assert nx.autograd.gradcheck(_with_backward(jittery).apply, (leaf(),), nondet_tol=1e-6)
    with pytest.raises(nx.autograd.GradcheckError, match="Numerical gradient for function expected to be zero"):
        nx.autograd.gradcheck(lambda x: nx.Tensor(x.data * 2), (leaf(),))  # a detach hides a dependence


def test_importing_neuronix_does_not_import_the_harness_and_gradcheck_needs_no_toml_reader():
    code = "import sys, neuronix; assert not any(m.startswith('conformance') for m in sys.modules), 'loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)
    # a bare install on Python 3.10 has no TOML reader (tomli is a test extra): gradcheck must not need one
    code = ("import sys, torch; sys.modules['tomllib'] = sys.modules['tomli'] = None; import neuronix as nx; "
            "x = nx.Tensor(torch.ones(2, dtype=torch.float64), requires_grad=True); "
            "assert nx.autograd.gradcheck(lambda t: t * t, (x,)) and nx.autograd.gradgradcheck(lambda t: t * t, (x,))")
    subprocess.run([sys.executable, "-c", code], check=True)
