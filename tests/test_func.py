"""``nx.func`` and ``nx.autograd.forward_ad`` against ``torch.func`` and ``torch.autograd.forward_ad``:
values, return structures, ``has_aux``, ``argnums``, nesting, and torch's errors for wrong inputs."""

from __future__ import annotations

import pytest
import torch
import torch.autograd.forward_ad as tfw

import neuronix as nx
from neuronix.autograd import forward_ad as nfw

torch.manual_seed(0)
X = torch.randn(3, 4, dtype=torch.float64)
Y = torch.randn(4, dtype=torch.float64)
V = torch.randn(3, 4, dtype=torch.float64)
W = torch.randn(4, dtype=torch.float64)


def nxt(t: torch.Tensor) -> nx.Tensor:
    return nx.Tensor(t.clone())


def plain(tree):
    """Neuronix results as torch values, keeping the structure (tuples, lists, dicts)."""
    if isinstance(tree, nx.Tensor):
        return tree.data
    if isinstance(tree, (tuple, list)):
        return type(tree)(plain(t) for t in tree)
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    return tree


def assert_same(actual, expected):
    """Same structure and values (float64: to rounding)."""
    actual = plain(actual)
    assert type(actual) is type(expected), (type(actual), type(expected))
    if isinstance(expected, torch.Tensor):
        assert actual.shape == expected.shape and actual.dtype == expected.dtype
        torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_same(a, e)
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for k in expected:
            assert_same(actual[k], expected[k])
    else:
        assert actual == expected


# programs written once for both libraries: only tensor methods and operators
def two_in_two_out(x, y):
    return (x * y).tanh(), (x.exp() @ y).sum()


def scalar(x, y):
    return ((x * y).sin() ** 2).sum() + (x @ y).exp().sum()


def cubic(x):
    return (x ** 3).sum() + (x[0] * x[-1]).sum()


# ----- jvp / vjp ------------------------------------------------------------------------------------
def test_jvp_matches_torch_with_two_inputs_and_two_outputs():
    expected = torch.func.jvp(two_in_two_out, (X, Y), (V, W))
    assert_same(nx.func.jvp(two_in_two_out, (nxt(X), nxt(Y)), (nxt(V), nxt(W))), expected)


def test_jvp_has_aux_and_an_output_that_does_not_depend_on_the_input():
    def f(x):
        return (x.cos(), x * 0 + 1), {"aux": x.sum()}

    out, tangent, aux = nx.func.jvp(f, (nxt(X),), (nxt(V),), has_aux=True)
    t_out, t_tangent, t_aux = torch.func.jvp(f, (X,), (V,), has_aux=True)
    assert_same((out, tangent, aux), (t_out, t_tangent, t_aux))
    assert not tangent[1].data.any()


def test_jvp_results_are_detached_unless_an_outer_tensor_requires_grad():
    out, tangent = nx.func.jvp(lambda x: x.exp(), (nxt(X),), (nxt(V),))
    assert not out.requires_grad and not tangent.requires_grad
    with nx.no_grad():  # the transform still computes, as torch.func's ignores an outer no_grad
        _, tangent = nx.func.jvp(lambda x: x.exp(), (nxt(X),), (nxt(V),))
    torch.testing.assert_close(tangent.data, X.exp() * V)


def test_vjp_matches_torch_and_vjp_fn_can_run_twice():
    out, fn = nx.func.vjp(two_in_two_out, nxt(X), nxt(Y))
    t_out, t_fn = torch.func.vjp(two_in_two_out, X, Y)
    assert_same(out, t_out)
    for scale in (1.0, -2.5):
        cot = (V * scale, torch.tensor(scale, dtype=torch.float64))
        assert_same(fn((nxt(cot[0]), nxt(cot[1]))), t_fn(cot))


def test_vjp_of_an_unused_input_is_zeros_and_aux_comes_back():
    def f(x, y):
        return y * 2, x.sum()

    out, fn, aux = nx.func.vjp(f, nxt(X), nxt(Y), has_aux=True)
    t_out, t_fn, t_aux = torch.func.vjp(f, X, Y, has_aux=True)
    assert_same((out, aux), (t_out, t_aux))
    assert_same(fn(nxt(W)), t_fn(W))


# ----- grad -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argnums", [0, 1, -1, (0, 1), (1, 0)])
def test_grad_matches_torch_for_each_argnums(argnums):
    assert_same(nx.func.grad(scalar, argnums)(nxt(X), nxt(Y)), torch.func.grad(scalar, argnums)(X, Y))


def test_grad_and_value_with_aux_and_a_dict_argument():
    def f(d):
        loss = (d["a"] * d["b"]).sum()
        return loss, d["a"] * 2

    got = nx.func.grad_and_value(f, has_aux=True)({"a": nxt(X[0]), "b": nxt(Y)})
    assert_same(got, torch.func.grad_and_value(f, has_aux=True)({"a": X[0], "b": Y}))
    g, aux = nx.func.grad(f, has_aux=True)({"a": nxt(X[0]), "b": nxt(Y)})
    assert_same((g, aux), torch.func.grad(f, has_aux=True)({"a": X[0], "b": Y}))


def test_grad_of_grad_and_grad_reaching_a_closed_over_tensor():
    x = torch.tensor(0.7, dtype=torch.float64)

    def f(a):
        return a.sin() * a ** 2

    assert_same(nx.func.grad(nx.func.grad(f))(nxt(x)), torch.func.grad(torch.func.grad(f))(x))
    assert_same(nx.func.grad(nx.func.grad(nx.func.grad(f)))(nxt(x)),
                torch.func.grad(torch.func.grad(torch.func.grad(f)))(x))
    # an outer backward reaches a tensor the function closes over (torch.func composes with autograd)
    w_t, w_n = W.clone().requires_grad_(), nx.Tensor(W.clone(), requires_grad=True)
    torch.func.grad(lambda a: (a * w_t).sin().sum())(Y).sum().backward()
    nx.func.grad(lambda a: (a * w_n).sin().sum())(nxt(Y)).sum().backward()
    torch.testing.assert_close(w_n.grad.data, w_t.grad)


def test_inner_grad_does_not_follow_a_closed_over_copy_of_its_input():
    """Perturbation confusion: d/dx [x * d/dy (x * y)] = d/dx x^2 = 2x, not 3x or more."""
    x = torch.tensor(1.5, dtype=torch.float64)

    def outer(t, grad):
        return t * grad(lambda y: t * y)(t)

    assert_same(nx.func.grad(lambda t: outer(t, nx.func.grad))(nxt(x)),
                torch.func.grad(lambda t: outer(t, torch.func.grad))(x))


# ----- Jacobians and Hessians ---------------------------------------------------------------------------
@pytest.mark.parametrize("argnums", [0, (0, 1)])
@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
def test_jacobians_match_torch_in_structure_and_value(transform, argnums):
    got = getattr(nx.func, transform)(two_in_two_out, argnums)(nxt(X), nxt(Y))
    assert_same(got, getattr(torch.func, transform)(two_in_two_out, argnums)(X, Y))


def test_jacobian_has_aux():
    def f(x):
        return x.exp(), x.sum()

    for transform in ("jacrev", "jacfwd"):
        got = getattr(nx.func, transform)(f, has_aux=True)(nxt(Y))
        assert_same(got, getattr(torch.func, transform)(f, has_aux=True)(Y))


def test_hessian_and_jacfwd_of_jacrev_and_jacrev_of_jacrev():
    assert_same(nx.func.hessian(cubic)(nxt(Y)), torch.func.hessian(cubic)(Y))
    assert_same(nx.func.hessian(scalar, (0, 1))(nxt(X[:2]), nxt(Y)), torch.func.hessian(scalar, (0, 1))(X[:2], Y))
    assert_same(nx.func.jacfwd(nx.func.jacrev(cubic))(nxt(Y)), torch.func.jacfwd(torch.func.jacrev(cubic))(Y))
    assert_same(nx.func.jacrev(nx.func.jacrev(cubic))(nxt(Y)), torch.func.jacrev(torch.func.jacrev(cubic))(Y))


def test_jvp_of_grad_is_a_hessian_vector_product():
    got = nx.func.jvp(nx.func.grad(cubic), (nxt(Y),), (nxt(W),))
    assert_same(got, torch.func.jvp(torch.func.grad(cubic), (Y,), (W,)))


# ----- errors ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda: nx.func.jvp(lambda x: x, [nxt(Y)], [nxt(W)]), "Expected primals to be a tuple"),
    (lambda: nx.func.jvp(lambda x: x, (1.0,), (1.0,)), "only contain Tensors"),
    (lambda: nx.func.jvp(lambda x: x, (nxt(Y),), (nxt(W[:2]),)), "shape"),
    (lambda: nx.func.jvp(lambda x: x, (nxt(Y),), (nxt(W), nxt(W))), "same python structure"),
    (lambda: nx.func.jvp(lambda: 1, (), ()), "at least one Tensor"),
    (lambda: nx.func.jvp(lambda x: 3.0, (nxt(Y),), (nxt(W),)), "return only tensors"),
    (lambda: nx.func.jvp(lambda x: x, (nxt(Y),), (nxt(W),), has_aux=True), "should be a tuple"),
    (lambda: nx.func.grad(lambda x, y: (x * y).sum(), argnums=2)(nxt(Y), nxt(W)), "Got argnum=2, but only 2"),
    (lambda: nx.func.grad(lambda x, y: (x * y).sum(), argnums=(0, 0))(nxt(Y), nxt(W)), "must be unique"),
    (lambda: nx.func.grad(lambda x, y: (x * y).sum(), argnums=())(nxt(Y), nxt(W)), "must be non-empty"),
    (lambda: nx.func.grad(lambda x: x.sum(), argnums=1.0)(nxt(Y)), "argnums must be int"),
    (lambda: nx.func.grad(lambda x: x)(nxt(Y)), "scalar Tensor, got tensor with 1 dims"),
    (lambda: nx.func.grad(lambda x: 3.0)(nxt(Y)), "return a Tensor"),
    (lambda: nx.func.jacrev(lambda x: x, chunk_size=0)(nxt(Y)), "chunk_size"),
    (lambda: nx.func.jacfwd(lambda x: x, randomness="sometimes")(nxt(Y)), "randomness"),
])
def test_wrong_inputs_raise_as_torch_func(call, match):
    with pytest.raises((RuntimeError, ValueError), match=match):
        call()


def test_non_tensor_and_integer_primals_are_refused():
    with pytest.raises(ValueError, match="must be Tensor"):
        nx.func.grad(lambda x: x)(3.0)
    with pytest.raises(ValueError, match="floating point"):
        nx.func.jvp(lambda x: x * 2, (nx.arange(3),), (nx.arange(3),))


def test_vjp_fn_checks_its_cotangents():
    _, fn = nx.func.vjp(lambda x: x * 2, nxt(Y))
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        fn(nxt(W[:2]))
    with pytest.raises(RuntimeError, match="pytree structure"):
        fn((nxt(W),))


# ----- forward_ad -------------------------------------------------------------------------------------------
def _dual_program(fw, lib, x, v, y):
    """A few ops on a dual tensor: the tangents of a result, of a zero result, of a non-dual result."""
    with fw.dual_level():
        d = fw.make_dual(x, v)
        h = (d @ y).tanh() * d.sum(0).exp().sum() + lib.softmax(d, -1).sum(-1)
        results = [fw.unpack_dual(h), fw.unpack_dual(d * 0), fw.unpack_dual(y * 2), fw.unpack_dual(d.detach())]
    after = fw.unpack_dual(h)
    return [(r.primal, r.tangent) for r in results] + [(after.primal, after.tangent)]


def test_forward_ad_matches_torch_including_tangents_that_do_not_reach_the_output():
    got = _dual_program(nfw, nx, nxt(X), nxt(V), nxt(Y))
    expected = _dual_program(tfw, torch, X, V, Y)
    for (gp, gt), (ep, et) in zip(got, expected):
        torch.testing.assert_close(plain(gp), ep.detach())
        if et is None:
            assert gt is None
        else:
            torch.testing.assert_close(plain(gt), et)
    assert got[2][1] is None and got[3][1] is None  # no dual dependence: no tangent, as torch
    assert got[4][1] is None  # the level is over


def test_forward_ad_two_duals_and_the_result_type():
    with nfw.dual_level():
        a, b = nfw.make_dual(nxt(Y), nxt(W)), nfw.make_dual(nxt(W), nxt(Y))
        unpacked = nfw.unpack_dual(a * b)
    assert type(unpacked).__name__ == "UnpackedDualTensor" and unpacked._fields == ("primal", "tangent")
    torch.testing.assert_close(unpacked.tangent.data, W * W + Y * Y)


def test_forward_ad_keeps_the_sign_of_zero():
    x = torch.tensor([-0.0, 0.0], dtype=torch.float64)
    with nfw.dual_level():
        d = nfw.make_dual(nxt(x), nxt(torch.ones(2, dtype=torch.float64)))
        assert torch.equal(torch.signbit(d.data), torch.tensor([True, False]))


def test_reverse_mode_over_forward_mode_matches_torch():
    x_t, v_t = X[0].clone().requires_grad_(), W.clone().requires_grad_()
    with tfw.dual_level():
        tangent = tfw.unpack_dual(tfw.make_dual(x_t, v_t).sin().exp()).tangent
    tangent.sum().backward()
    x_n, v_n = nx.Tensor(X[0].clone(), requires_grad=True), nx.Tensor(W.clone(), requires_grad=True)
    with nfw.dual_level():
        tangent = nfw.unpack_dual(nfw.make_dual(x_n, v_n).sin().exp()).tangent
    tangent.sum().backward()
    torch.testing.assert_close(x_n.grad.data, x_t.grad)
    torch.testing.assert_close(v_n.grad.data, v_t.grad)


def test_forward_ad_errors_as_torch():
    with pytest.raises(RuntimeError, match="no level exists"):
        nfw.make_dual(nxt(Y), nxt(W))
    with nfw.dual_level():
        with pytest.raises(RuntimeError, match="different size"):
            nfw.make_dual(nxt(Y), nxt(W[:2]))
        with pytest.raises(ValueError, match="floating point"):
            nfw.make_dual(nx.arange(3), nx.arange(3))
        with pytest.raises(RuntimeError, match="Nested forward mode AD"):
            with nfw.dual_level():
                pass
    with nfw.dual_level():  # the failed nesting left the outer level usable and closed it properly
        assert nfw.unpack_dual(nfw.make_dual(nxt(Y), nxt(W)) * 3).tangent is not None


def test_a_level_opened_under_no_grad_still_carries_tangents():
    with nx.no_grad():
        with nfw.dual_level():
            tangent = nfw.unpack_dual(nfw.make_dual(nxt(Y), nxt(W)).exp()).tangent
        assert not nx.is_grad_enabled()  # the mode of the caller comes back
    torch.testing.assert_close(tangent.data, Y.exp() * W)
