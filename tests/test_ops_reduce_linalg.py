"""Reductions, softmax and linear algebra: what the conformance mirrors cannot express easily.

Named-tuple results, error messages, a list of einsum equations against torch, and
third derivatives (the harness stops at second) against torch autograd in float64.
"""

from __future__ import annotations

import pytest
import torch

import neuronix as nx


def _pair(*tensors):
    """The same values as torch leaves and neuronix leaves (float64)."""
    t = [x.double().clone().requires_grad_(True) for x in tensors]
    n = [nx.Tensor(x.double().clone(), requires_grad=True) for x in tensors]
    return t, n


def _derivatives(f_nx, f_torch, inputs, order: int, seed: int = 0):
    """Value and derivatives up to ``order`` with random cotangents at every level, both libraries."""
    gen = torch.Generator().manual_seed(seed)
    t_in, n_in = _pair(*inputs)
    t_out, n_out = [f_torch(*t_in)], [f_nx(*n_in)]
    results = [(n_out[0].data, t_out[0].detach())]
    for _ in range(order):
        seeds = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in t_out]
        t_g = torch.autograd.grad(t_out, t_in, seeds, create_graph=True)
        n_g = nx.autograd.grad(n_out, n_in, [nx.Tensor(s) for s in seeds], create_graph=True)
        results += [(a.data, e.detach()) for a, e in zip(n_g, t_g)]
        t_out, n_out = list(t_g), list(n_g)
    return results


def _assert_close(results):
    for level, (actual, expected) in enumerate(results):
        torch.testing.assert_close(actual, expected, rtol=1e-7, atol=1e-12, msg=lambda m, k=level: f"term {k}: {m}")


# ----- max / min named tuples ------------------------------------------------------------
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_with_dim_return_named_tuple(name, keepdim):
    data = torch.tensor([[1.0, 5.0, 2.0], [7.0, 0.5, 3.0]])
    x = nx.Tensor(data.clone(), requires_grad=True)
    result = getattr(x, name)(1, keepdim=keepdim)
    expected = getattr(data, name)(1, keepdim=keepdim)
    values, indices = result  # unpacks like torch.return_types.max
    assert result.values is values and result.indices is indices
    assert type(result).__name__ == name and result._fields == ("values", "indices")
    assert isinstance(values, nx.Tensor) and values.requires_grad
    assert isinstance(indices, nx.Tensor) and not indices.requires_grad and indices.dtype == torch.int64
    assert torch.equal(values.data, expected.values) and torch.equal(indices.data, expected.indices)
    upstream = torch.tensor([[2.0], [3.0]]) if keepdim else torch.tensor([2.0, 3.0])
    values.backward(upstream)
    want = torch.zeros(2, 3).scatter(1, expected.indices.reshape(2, 1), upstream.reshape(2, 1))
    torch.testing.assert_close(x.grad.data, want)


def test_max_with_dim_sends_the_whole_gradient_to_one_tied_element_and_full_max_splits_it():
    data = torch.tensor([[4.0, 4.0, 1.0]])
    x, t = nx.Tensor(data.clone(), requires_grad=True), data.clone().requires_grad_(True)
    x.max(1).values.sum().backward()
    t.max(1).values.sum().backward()
    assert torch.equal(x.grad.data, t.grad)
    x.grad = None
    t.grad = None
    x.max().backward()
    t.max().backward()
    assert torch.equal(x.grad.data, t.grad) and torch.equal(t.grad, torch.tensor([[0.5, 0.5, 0.0]]))


def test_max_with_tensor_argument_is_maximum():
    a, b = torch.randn(3, 1, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    assert torch.equal(nx.max(nx.Tensor(a), nx.Tensor(b)).data, torch.max(a, b))


def test_integer_result_dtype_is_outside_the_graph():
    x = nx.Tensor(torch.randn(3, 4), requires_grad=True)
    s = nx.sum(x, 1, dtype=torch.int64)
    assert s.dtype == torch.int64 and not s.requires_grad
    assert nx.sum(nx.Tensor(torch.arange(6))).dtype == torch.int64


# ----- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "a", "b", "words"),
    [
        ("matmul", (2, 3), (4, 5), ["matmul", "(2, 3)", "(4, 5)", "last dim of input (3)", "second-to-last dim of other (4)"]),
        ("matmul", (2, 2, 3), (3, 3, 4), ["matmul", "batch dims (2,) and (3,)", "not broadcastable"]),
        ("matmul", (2, 3), (4,), ["matmul", "size of other (4)"]),
        ("matmul", (), (3,), ["matmul", "at least 1 dimension"]),
        ("mm", (2, 3, 3), (3, 4), ["mm", "(2, 3, 3)", "two matrices (2-D)", "3-D and 2-D"]),
        ("bmm", (2, 3, 3), (4, 3, 4), ["bmm", "batch sizes must be equal, got 2 and 4"]),
        ("mv", (2, 3), (4,), ["mv", "(2, 3)", "(4,)"]),
        ("dot", (3,), (4,), ["dot", "same size, got 3 and 4"]),
        ("outer", (3, 1), (4,), ["outer", "two 1-D tensors"]),
    ],
)
def test_bad_matmul_shapes_raise_clear_errors(op, a, b, words):
    with pytest.raises(RuntimeError) as info:
        getattr(nx, op)(nx.Tensor(torch.randn(a)), nx.Tensor(torch.randn(b)))
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_matmul_dtype_mismatch_names_op_and_dtypes():
    with pytest.raises(RuntimeError, match=r"neuronix\.matmul.*float32.*float64"):
        nx.matmul(nx.Tensor(torch.randn(2, 3)), nx.Tensor(torch.randn(3, 2, dtype=torch.float64)))


@pytest.mark.parametrize(
    ("equation", "shapes", "pattern"),
    [
        ("ij,jk->ik", [(2, 3)], "2 operand subscripts for 1 operands"),
        ("ij,jk->ikk", [(2, 3), (3, 4)], "output subscript 'k'"),
        ("ij->q", [(2, 3)], "output subscript 'q'"),
        ("ijk->i", [(2, 3)], "name 3 dims but the operand has shape"),
        ("i1->i", [(2, 3)], "invalid subscript '1'"),
    ],
)
def test_bad_einsum_equations_raise(equation, shapes, pattern):
    with pytest.raises(ValueError, match=pattern):
        nx.einsum(equation, *[nx.Tensor(torch.randn(s)) for s in shapes])


def test_norm_matrix_norms_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="nuc"):
        nx.norm(nx.Tensor(torch.randn(3, 3)), "nuc")


# ----- einsum equations vs torch ------------------------------------------------------------
EINSUM_CASES = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("ij->ji", [(2, 3)]),
    ("ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("i,j->ij", [(2,), (3,)]),
    ("bij,bjk->bik", [(5, 2, 3), (5, 3, 4)]),
    ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]),
    ("...ij,...jk", [(2, 1, 2, 3), (5, 3, 4)]),
    ("b...i,...i->b...", [(2, 5, 3), (1, 3)]),
    ("ii->i", [(3, 3)]),
    ("ii", [(3, 3)]),
    ("iij->j", [(3, 3, 2)]),
    ("ii,i->i", [(3, 3), (3,)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]),
    ("ij,kl->", [(2, 3), (4, 5)]),
    ("ij,j->i", [(3, 1), (4,)]),  # a size-1 label broadcasts
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("Ab,bC->AC", [(2, 3), (3, 4)]),
]


@pytest.mark.parametrize(("equation", "shapes"), EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_matches_torch_to_second_order(equation, shapes):
    inputs = [torch.randn(s) for s in shapes]
    order = 1 if len(shapes) == 1 else 2  # one operand: linear, no second derivative
    results = _derivatives(lambda *xs: nx.einsum(equation, *xs), lambda *xs: torch.einsum(equation, *xs), inputs, order)
    _assert_close(results)


def test_einsum_list_and_sublist_forms():
    a, b = torch.randn(2, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    na, nb = nx.Tensor(a), nx.Tensor(b)
    torch.testing.assert_close(nx.einsum("ij,jk", [na, nb]).data, torch.einsum("ij,jk", [a, b]))
    torch.testing.assert_close(nx.einsum(na, [0, 1], nb, [1, 2], [0, 2]).data, torch.einsum(a, [0, 1], b, [1, 2], [0, 2]))
    torch.testing.assert_close(nx.einsum(na, [0, 1], nb, [1, 2]).data, torch.einsum(a, [0, 1], b, [1, 2]))


# ----- third derivatives -------------------------------------------------------------------
THIRD_ORDER = [
    ("logsumexp", lambda x: nx.logsumexp(x, 1), lambda x: torch.logsumexp(x, 1)),
    ("logsumexp keepdim tuple", lambda x: x.logsumexp((0, 2), keepdim=True), lambda x: x.logsumexp((0, 2), keepdim=True)),
    ("softmax", lambda x: nx.softmax(x, -1), lambda x: torch.softmax(x, -1)),
    ("log_softmax", lambda x: x.log_softmax(0), lambda x: x.log_softmax(0)),
    ("std", lambda x: x.std(1), lambda x: x.std(1)),
    ("norm", lambda x: x.norm(dim=2), lambda x: x.norm(dim=2)),
    ("prod", lambda x: x.prod(1), lambda x: x.prod(1)),
]


@pytest.mark.parametrize(("name", "f_nx", "f_torch"), THIRD_ORDER, ids=[c[0] for c in THIRD_ORDER])
def test_third_derivatives_match_torch(name, f_nx, f_torch):
    x = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(7))
    _assert_close(_derivatives(f_nx, f_torch, [x], order=3))


@pytest.mark.parametrize("dim", [None, 0, 1])
def test_prod_with_zeros_matches_torch_to_second_order(dim):
    x = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x[1, 2] = 0.0
    x[2, 0] = 0.0
    x[2, 3] = 0.0  # row 2 has two zeros: its whole gradient is zero
    f_nx = (lambda t: t.prod()) if dim is None else (lambda t: t.prod(dim))
    f_torch = (lambda t: t.prod()) if dim is None else (lambda t: t.prod(dim))
    _assert_close(_derivatives(f_nx, f_torch, [x], order=2))


@pytest.mark.parametrize(
    ("sa", "sb"),
    [((3,), (3,)), ((2, 3), (3,)), ((3,), (4, 3, 2)), ((4, 1, 2, 3), (5, 3, 2)), ((4, 2, 3), (3, 2))],
)
def test_matmul_third_derivative(sa, sb):
    # matmul is bilinear: its third derivative is zero, but only if the second-order graph is right
    inputs = [torch.randn(sa), torch.randn(sb)]
    f = lambda a, b: (a @ b).sin()  # noqa: E731  (sin keeps every order non-trivial)
    _assert_close(_derivatives(f, lambda a, b: (a @ b).sin(), inputs, order=3))
