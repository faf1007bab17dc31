"""Indexing and splitting behaviour the conformance mirrors cannot express on their own:
accumulation of repeated indices, ``__setitem__`` semantics and errors, multi-output ops
returning tuples of independent nodes, and round trips through several ops.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import neuronix as nx


def _pair(shape, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(shape, generator=gen, dtype=dtype)
    return nx.Tensor(base.clone(), requires_grad=True), base.clone().requires_grad_(True)


def _close(a, b):
    a = a.data if isinstance(a, nx.Tensor) else a
    torch.testing.assert_close(a, b.detach(), rtol=1e-7, atol=1e-12)


# ----- getitem: repeated indices accumulate ------------------------------------------------------
@pytest.mark.parametrize(
    "index",
    [
        lambda: torch.tensor([0, 2, 0, 0, -1]),
        lambda: [1, 1, 1],
        lambda: (torch.tensor([[0, 0], [3, 3]]), slice(None), torch.tensor([1, 1])),
        lambda: (slice(1, None), torch.tensor([2, 2, 0])),
        lambda: (None, Ellipsis, torch.tensor([0, 0])),
    ],
    ids=["tensor", "list", "separated", "after-slice", "none-ellipsis"],
)
def test_repeated_indices_accumulate_like_torch(index):
    xn, xt = _pair((4, 3, 2))
    idx = index()
    yn, yt = xn[idx], xt[idx]
    _close(yn, yt)
    upstream = torch.randn(yt.shape, dtype=torch.float64)
    (gn,) = nx.autograd.grad(yn, xn, upstream)
    (gt,) = torch.autograd.grad(yt, xt, upstream)
    _close(gn, gt)
    assert (gt.abs() > 0).sum() < gt.numel(), "the index must leave some elements without gradient"


def test_repeated_index_gradient_counts_each_use():
    x = nx.zeros(3, requires_grad=True)
    x[nx.tensor([1, 1, 1, 2])].sum().backward()
    assert x.grad.tolist() == [0.0, 3.0, 1.0]


def test_getitem_third_derivative_matches_torch():
    xn, xt = _pair((5,))
    idx = torch.tensor([4, 0, 4, 2])
    weights = torch.linspace(1, 2, 5, dtype=torch.float64)
    yn, yt = (xn[idx] ** 3).sum(), (xt[idx] ** 3).sum()
    for _ in range(3):
        (gn,) = nx.autograd.grad(yn, xn, create_graph=True)
        (gt,) = torch.autograd.grad(yt, xt, create_graph=True)
        _close(gn, gt)
        yn, yt = (gn * weights).sum(), (gt * weights).sum()


def test_bool_mask_gradient_is_the_mask():
    xn, xt = _pair((3, 4))
    mask = xt.detach() > 0
    upstream = torch.randn(int(mask.sum()), dtype=torch.float64)
    (gn,) = nx.autograd.grad(xn[nx.Tensor(mask)], xn, upstream)
    (gt,) = torch.autograd.grad(xt[mask], xt, upstream)
    _close(gn, gt)


def test_getitem_on_non_contiguous_input_and_under_torch_no_grad():
    xn, xt = _pair((4, 6))
    with torch.no_grad():  # neuronix never uses torch autograd
        yn = xn.T[1:, ::2][torch.tensor([0, 0, 2])]
        (gn,) = nx.autograd.grad(yn, xn, torch.ones(yn.shape, dtype=torch.float64))
    yt = xt.T[1:, ::2][torch.tensor([0, 0, 2])]
    (gt,) = torch.autograd.grad(yt, xt, torch.ones(yt.shape, dtype=torch.float64))
    _close(gn, gt)


# ----- __setitem__ ------------------------------------------------------------------------------------
def test_setitem_matches_torch_with_nx_values_and_indices():
    xt = torch.zeros(3, 4)
    xn = nx.zeros(3, 4)
    steps = [
        (lambda lib: 0, lambda lib: 1.5),
        (lambda lib: (lib.tensor([0, 2]), slice(1, None)), lambda lib: lib.ones(3)),
        (lambda lib: (Ellipsis, -1), lambda lib: lib.tensor(-2.0)),
        (lambda lib: (lib.tensor([1, 2]), [0, 3]), lambda lib: 4.0),
        (lambda lib: slice(None, None, 2), lambda lib: lib.arange(4.0)),
    ]
    for index, value in steps:
        xt[index(torch)] = value(torch)
        xn[index(nx)] = value(nx)
        assert torch.equal(xn.data, xt)
    xt[xt > 1] = 7.0
    xn[xn > 1] = 7.0
    assert torch.equal(xn.data, xt)


def test_setitem_writes_through_views_like_torch():
    base = nx.zeros(2, 3)
    view = base[1]
    view[0] = 5.0
    assert base.data[1, 0] == 5.0


def test_setitem_under_grad_is_recorded_as_torch_records_it():
    w = nx.ones(4, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"__setitem__: a leaf Variable that requires grad.*\(4,\)"):
        w[0] = 2.0
    y = w * 2
    y[0] = 1.0  # a non-leaf: its history moves onto the write
    plain = nx.zeros(4)
    plain[1:] = w[:3] * 3  # a plain buffer takes the value's history
    (y * plain).sum().backward()
    tw = torch.ones(4, requires_grad=True)
    ty = tw * 2
    ty[0] = 1.0
    tplain = torch.zeros(4)
    tplain[1:] = tw[:3] * 3
    (ty * tplain).sum().backward()
    assert w.grad.tolist() == tw.grad.tolist()
    assert not plain.is_leaf and plain.requires_grad
    with nx.no_grad():
        w[0] = 2.0
    assert w.data.tolist() == [2.0, 1.0, 1.0, 1.0]


# ----- multi-output ops ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "op",
    [
        lambda lib, x: lib.split(x, 2, 1),
        lambda lib, x: x.split([1, 0, 4], dim=-1),
        lambda lib, x: lib.chunk(x, 3, 1),
        lambda lib, x: x.unbind(1),
    ],
    ids=["split-int", "split-sizes", "chunk", "unbind"],
)
def test_multi_output_ops_return_tuples_of_independent_nodes(op):
    xn, xt = _pair((3, 5))
    pn, pt = op(nx, xn), op(torch, xt)
    assert isinstance(pn, tuple) and len(pn) == len(pt)
    assert len({id(p.grad_fn) for p in pn}) == len(pn)
    for a, b in zip(pn, pt):
        _close(a, b)
    used = [k for k in range(len(pt)) if k % 2 == 0]  # leave some pieces out: their slots get zero
    ups = [torch.randn(pt[k].shape, dtype=torch.float64) for k in used]
    (gn,) = nx.autograd.grad([pn[k] for k in used], xn, ups)
    (gt,) = torch.autograd.grad([pt[k] for k in used], xt, ups)
    _close(gn, gt)


def test_unbind_stack_roundtrip_gradient_and_second_derivative():
    xn, xt = _pair((4, 3))
    yn = nx.stack(xn.unbind(1), dim=0)
    yt = torch.stack(xt.unbind(1), dim=0)
    _close(yn, yt)
    upstream = torch.randn(yt.shape, dtype=torch.float64)
    (gn,) = nx.autograd.grad((yn**2 * upstream).sum(), xn, create_graph=True)
    (gt,) = torch.autograd.grad((yt**2 * upstream).sum(), xt, create_graph=True)
    _close(gn, gt)
    v = torch.randn(4, 3, dtype=torch.float64)
    (ggn,) = nx.autograd.grad((gn * v).sum(), xn)
    (ggt,) = torch.autograd.grad((gt * v).sum(), xt)
    _close(ggn, ggt)


def test_cat_split_roundtrip_is_identity_for_gradients():
    xn = nx.randn(6, 2, requires_grad=True)
    parts = xn.split(2)
    back = nx.cat(parts[::-1], 0).flip(0)
    upstream = torch.randn(6, 2)
    back.backward(upstream)
    expected = torch.cat([upstream.flip(0)[4:], upstream.flip(0)[2:4], upstream.flip(0)[:2]])
    assert torch.equal(xn.grad.data, expected)


# ----- properties and errors ----------------------------------------------------------------------------
def test_T_warns_like_torch_on_other_ranks_and_mT_needs_matrices():
    x = nx.randn(2, 3, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert x.T.shape == (4, 3, 2)
    assert any("deprecated" in str(w.message) for w in caught)
    assert x.mT.shape == (2, 4, 3)
    with pytest.raises(RuntimeError, match=r"mT.*1-D"):
        _ = nx.randn(3).mT
    with pytest.raises(RuntimeError, match=r"neuronix.t: .*3-D"):
        x.t()


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda x: x.reshape(2, 5), r"neuronix\.reshape.*shape=\(3, 4\).*invalid for input of size 12"),
        (lambda x: x.permute(0, 0), r"neuronix\.permute.*shape=\(3, 4\)"),
        (lambda x: nx.cat([x, nx.zeros(2, 5)]), r"neuronix\.cat.*Sizes of tensors must match"),
        (lambda x: nx.cat(x), r"neuronix\.cat: expects a list or tuple of tensors"),
        (lambda x: x[5], r"neuronix\.getitem.*index 5 is out of bounds"),
        (lambda x: x.gather(1, nx.tensor([[7]])), r"neuronix\.gather"),
        (lambda x: x.split([1, 1]), r"neuronix\.split.*sum exactly to 3"),
        (lambda x: nx.zeros(()).unbind(), r"neuronix\.unbind"),
        (lambda x: x.expand(2, 3, 5), r"neuronix\.expand.*shape=\(3, 4\)"),
    ],
)
def test_errors_name_the_op_and_shape(call, pattern):
    with pytest.raises((RuntimeError, IndexError, ValueError, TypeError), match=pattern):
        call(nx.randn(3, 4))
