"""The pointwise family (neuronix/ops/pointwise*.py): errors, conventions at special points and the
choices the mirrors do not reach (a documented torch defect, values-only names, namedtuples)."""

from __future__ import annotations

import math

import pytest
import torch

import neuronix as nx


def _grads(lib, fn, *values, create_graph=False, dtype=torch.float64):
    """``fn``'s value and gradients (upstream ones) in ``lib`` (torch or nx) for float inputs ``values``."""
    mk = (lambda v: torch.tensor(v, dtype=dtype, requires_grad=True)) if lib is torch else \
        (lambda v: nx.tensor(v, dtype=dtype, requires_grad=True))
    leaves = [mk(v) for v in values]
    out = fn(*leaves)
    grads = lib.autograd.grad(out.sum(), leaves, create_graph=create_graph)
    data = (lambda t: t.detach()) if lib is torch else (lambda t: t.data)
    return data(out), [data(g) for g in grads]


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, equal_nan=True, rtol=1e-12, atol=0)
    assert torch.equal(a.signbit() & ~a.isnan(), b.signbit() & ~b.isnan()), (a, b)  # signed zeros too


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name, fn_args", [
    ("atan2 at the origin and with infinities", (lambda lib: lib.atan2, [0.0, -0.0, 1e-200, 0.0, math.nan],
                                                 [0.0, 0.0, 1e-200, math.inf, 1.0])),
    ("hypot at the origin: NaN, as torch", (lambda lib: lib.hypot, [0.0, 3.0], [0.0, -4.0])),
    ("copysign at zero", (lambda lib: lib.copysign, [0.0, -0.0, 2.0, math.nan], [-1.0, 1.0, -0.0, -1.0])),
    ("xlogy at x == 0", (lambda lib: lib.xlogy, [0.0, 0.0, 0.0, 1.0, 2.0], [0.0, -1.0, math.nan, 0.0, 3.0])),
    ("xlogy with a number other at the pole", (lambda lib: lambda x: lib.xlogy(x, 0.0), [0.0, 1.0, -2.0])),
    ("xlogy with a number other below the pole", (lambda lib: lambda x: lib.xlogy(x, -1.0), [0.0, 1.0])),
    ("xlog1py with a number other at the pole", (lambda lib: lambda x: lib.special.xlog1py(x, -1.0), [0.0, 1.0])),
    ("xlog1py with a number other beyond", (lambda lib: lambda x: lib.special.xlog1py(x, -2.0), [0.0, -1.0])),
    ("fmax at ties and NaN", (lambda lib: lib.fmax, [1.0, math.nan, 2.0, math.nan], [1.0, 1.0, math.nan, math.nan])),
    ("fmin at ties and NaN", (lambda lib: lib.fmin, [1.0, math.nan, 2.0, math.nan], [1.0, 1.0, math.nan, math.nan])),
    ("nextafter at equal inputs", (lambda lib: lib.nextafter, [1.0, 2.0, 0.0], [1.0, 3.0, -0.0])),
    ("logit at and beyond the ends", (lambda lib: lib.logit, [0.0, -0.0, 1.0, 1.5, -0.5, 0.25])),
    ("logit with eps beyond the clamp", (lambda lib: lambda x: lib.logit(x, 0.2), [0.1, 0.2, 0.8, 0.9, 0.5])),
    ("nan_to_num: 0 where replaced", (lambda lib: lib.nan_to_num, [math.nan, math.inf, -math.inf, 1.5])),
    ("sinc at 0", (lambda lib: lib.sinc, [0.0, -0.0, 1e-200, 0.5])),
    ("special.i1 at 0 and eps", (lambda lib: lib.special.i1, [0.0, 1e-17, -2e-16, 1.0])),
    ("special.i1e at 0", (lambda lib: lib.special.i1e, [0.0, -0.0, 3.0])),
    ("special.entr at 0 and below", (lambda lib: lib.special.entr, [0.0, -1.0, 2.0])),
])
def test_special_points_as_torch(name, fn_args, create_graph):
    make, *values = fn_args
    t_out, t_grads = _grads(torch, make(torch), *values, create_graph=create_graph)
    n_out, n_grads = _grads(nx, make(nx), *values, create_graph=create_graph)
    _same(n_out, t_out)
    for ng, tg in zip(n_grads, t_grads):
        _same(ng, tg)


def test_third_derivative_of_digamma_records():
    """digamma's rule is polygamma(1), whose rule is polygamma(2): every order records."""
    xs = [0.7, 2.5]
    t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    n = nx.tensor(xs, dtype=torch.float64, requires_grad=True)
    for lib, x in ((torch, t), (nx, n)):
        (g1,) = lib.autograd.grad(lib.digamma(x).sum(), [x], create_graph=True)
        (g2,) = lib.autograd.grad(g1.sum(), [x], create_graph=True)
        (g3,) = lib.autograd.grad(g2.sum(), [x])
        if lib is torch:
            expected = g3
        else:
            torch.testing.assert_close(g3.data, expected)


def test_ldexp_negative_integer_exponent_gives_the_true_gradient():
    """torch 2.13's gradient of ldexp(x, k) for an integer k < 0 is 0 (it computes 2^k in integers); torch 2.14's and
    neuronix's is 2^k."""
    x = nx.tensor([1.0, 1.0, 1.0], requires_grad=True)
    nx.ldexp(x, torch.tensor([-1, -3, 2])).sum().backward()
    assert x.grad.data.tolist() == [0.5, 0.125, 4.0]
    tx = torch.ones(3, requires_grad=True)
    torch.ldexp(tx, torch.tensor([-1, -3, 2])).sum().backward()
    # the installed torch: 2.13's defect, or (2.14 on) the true gradient; neuronix's is the true one either way
    assert tx.grad.tolist() in ([0.0, 0.0, 4.0], [0.5, 0.125, 4.0])


def test_inplace_acosh_differentiates_where_torch_cannot():
    """torch's acosh_ has no derivative (backward raises); neuronix's records acosh's rule."""
    x = nx.tensor([1.5, 2.0], dtype=torch.float64, requires_grad=True)
    y = x * 1
    y.acosh_()
    y.sum().backward()
    torch.testing.assert_close(x.grad.data, 1 / torch.sqrt(torch.tensor([1.5, 2.0], dtype=torch.float64) ** 2 - 1))
    tx = torch.tensor([1.5, 2.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(NotImplementedError):
        (tx * 1).acosh_().sum().backward()


def test_frexp_namedtuple_and_mantissa_gradient():
    x = nx.tensor([3.0, -0.75, 0.0], requires_grad=True)
    result = nx.frexp(x)
    t = torch.frexp(torch.tensor([3.0, -0.75, 0.0]))
    assert result._fields == ("mantissa", "exponent")
    assert result.exponent.dtype == torch.int32 and not result.exponent.requires_grad
    assert torch.equal(result.mantissa.data, t.mantissa) and torch.equal(result.exponent.data, t.exponent)
    result.mantissa.sum().backward()
    assert x.grad.data.tolist() == [0.25, 1.0, 1.0]  # 1 / 2^exponent


def test_float_power_is_double_and_gradient_keeps_the_input_dtype():
    x = nx.tensor([1.5, 2.0], requires_grad=True)
    y = nx.float_power(x, 2)
    assert y.dtype == torch.float64
    y.sum().backward()
    assert x.grad.dtype == torch.float32 and x.grad.data.tolist() == [3.0, 4.0]


def test_polygamma_argument_order_and_errors():
    x = nx.tensor([1.5, 3.0])
    torch.testing.assert_close(x.polygamma(2).data, torch.polygamma(2, torch.tensor([1.5, 3.0])))
    torch.testing.assert_close(nx.special.polygamma(1, x).data, torch.special.polygamma(1, torch.tensor([1.5, 3.0])))
    with pytest.raises(TypeError, match="polygamma"):
        nx.polygamma(1.0, x)


def test_mvlgamma_below_its_domain_as_torch():
    """torch (2.13) no longer rejects elements <= (p - 1) / 2: the kernel's values (inf at a pole) pass through."""
    x = [0.2, 0.5, 3.0]
    torch.testing.assert_close(nx.mvlgamma(nx.tensor(x), 2).data, torch.mvlgamma(torch.tensor(x), 2))


def test_inputs_torch_cannot_differentiate_are_refused():
    """heaviside, igamma's and zeta's first input: torch has no derivative; neuronix refuses them at the call."""
    a = nx.tensor([1.0, 2.0], requires_grad=True)
    b = nx.tensor([0.5, 1.5])
    for call in (lambda: nx.heaviside(a, b), lambda: nx.igamma(a, b), lambda: nx.special.zeta(a + 1, b)):
        with pytest.raises(RuntimeError, match="not differentiable"):
            call()
    # the other input is differentiable, as torch's
    q = nx.tensor([0.5, 1.5], requires_grad=True)
    nx.special.zeta(nx.tensor([2.0, 3.0]), q).sum().backward()
    tq = torch.tensor([0.5, 1.5], requires_grad=True)
    torch.special.zeta(torch.tensor([2.0, 3.0]), tq).sum().backward()
    torch.testing.assert_close(q.grad.data, tq.grad)


def test_values_only_names_never_require_grad():
    x = nx.tensor([0.5, 1.5], requires_grad=True)
    for name in ("bessel_j0", "modified_bessel_k1", "airy_ai"):
        y = getattr(nx.special, name)(x)
        assert not y.requires_grad
        torch.testing.assert_close(y.data, getattr(torch.special, name)(torch.tensor([0.5, 1.5])))
    y = nx.special.chebyshev_polynomial_t(x, 3)
    assert not y.requires_grad
    torch.testing.assert_close(y.data, torch.special.chebyshev_polynomial_t(torch.tensor([0.5, 1.5]), 3))


def test_positive_is_the_input_and_refuses_bool():
    x = nx.tensor([1.0, -2.0])
    assert nx.positive(x) is x and torch.positive(x.data) is x.data
    with pytest.raises(RuntimeError, match="bool"):
        nx.positive(nx.tensor([True]))


def test_rsub_with_a_number_and_alpha():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = nx.rsub(x, 5.0, alpha=2)
    assert y.data.tolist() == torch.rsub(torch.tensor([1.0, 2.0]), 5.0, alpha=2).tolist()
    y.sum().backward()
    assert x.grad.data.tolist() == [-2.0, -2.0]
    assert not hasattr(torch.Tensor, "rsub") and not hasattr(nx.Tensor, "rsub")


def test_aliases_are_the_same_functions():
    assert nx.arccos is nx.acos and nx.fix is nx.trunc and nx.special.psi is nx.digamma
    assert nx.special.expit is nx.sigmoid and nx.greater is nx.gt and nx.special.gammaln is nx.lgamma
    x = nx.tensor([0.5])
    assert torch.equal(x.arctanh().data, torch.tensor([0.5]).arctanh())


def test_predicates_as_torch():
    x = nx.tensor([[1.0, 2.0]])
    assert nx.numel(x) == 2 and nx.is_floating_point(x) and not nx.is_complex(x) and x.is_signed()
    assert nx.is_same_size(x, nx.tensor([[0.0, 0.0]])) and not x.is_same_size(nx.tensor([0.0, 0.0]))
    assert nx.is_nonzero(nx.tensor([0.5])) and not nx.is_nonzero(nx.tensor(0.0))
    with pytest.raises(RuntimeError, match="ambiguous"):
        nx.is_nonzero(x)  # more than one value, as torch
    with pytest.raises(TypeError):
        nx.numel([1.0, 2.0])  # torch.numel takes tensors only


def test_type_promotion_and_is_tensor():
    x = nx.tensor([1, 2])
    assert nx.result_type(x, 1.0) == torch.result_type(torch.tensor([1, 2]), 1.0) == torch.float32
    assert nx.promote_types(torch.int32, torch.float16) == torch.float16 and not nx.can_cast(torch.float32, torch.int32)
    assert nx.is_tensor(x) and not nx.is_tensor(x.data) and not nx.is_tensor([1.0])  # Neuronix's tensors only
    assert nx.resolve_neg(x) is x


def test_detach_function_and_unravel_index():
    x = nx.tensor([1.0, 2.0], requires_grad=True)
    y = nx.detach(x * 2)
    assert not y.requires_grad and y.grad_fn is None and y.data.tolist() == [2.0, 4.0]
    rows, cols = nx.unravel_index(nx.tensor([0, 5, 7]), (3, 4))
    assert rows.data.tolist() == [0, 1, 1] and cols.data.tolist() == [0, 1, 3]
    assert not hasattr(torch.Tensor, "unravel_index") and not hasattr(nx.Tensor, "unravel_index")
