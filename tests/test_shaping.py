"""Shape-and-indexing reach (neuronix/ops/shaping*.py): what the mirrors do not cover.

Errors (type and what they name), the documented torch defects (neuronix's answer is the true
derivative there), ties and zeros of the reductions checked directly against torch, and the
aliasing choices (which results are views, which may be written in place).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import neuronix as nx


def _leaf(t: torch.Tensor) -> nx.Tensor:
    return nx.Tensor(t.detach().clone(), requires_grad=True)


def _torch_leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def _grads_agree(fn_name: str, args: list, upstream_seed: int = 0, **kwargs) -> None:
    """``nx.<fn>`` and ``torch.<fn>`` on the same values: outputs and every float input's gradient equal."""
    t_args = [_torch_leaf(a) if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
    n_args = [_leaf(a) if isinstance(a, torch.Tensor) and a.is_floating_point() else
              nx.Tensor(a) if isinstance(a, torch.Tensor) else a for a in args]
    t_out = getattr(torch, fn_name)(*t_args, **kwargs)
    n_out = getattr(nx, fn_name)(*n_args, **kwargs)
    torch.testing.assert_close(n_out.data, t_out.detach(), equal_nan=True)
    g = torch.randn(t_out.shape, dtype=t_out.dtype, generator=torch.Generator().manual_seed(upstream_seed))
    t_out.backward(g)
    n_out.backward(nx.Tensor(g))
    for t, n in zip(t_args, n_args):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            torch.testing.assert_close(n.grad.data, t.grad, equal_nan=True)


# ----- errors: torch's type, the op named --------------------------------------------------------------
@pytest.mark.parametrize("call, error", [
    (lambda lib, x: lib.rot90(x, 1, [0]), RuntimeError),
    (lambda lib, x: lib.rot90(x, 1, [1, 1]), RuntimeError),
    (lambda lib, x: lib.rot90(x[0, 0], 1), RuntimeError),
    (lambda lib, x: lib.diag(x.unsqueeze(0)), RuntimeError),
    (lambda lib, x: lib.diag_embed(x, 0, 1, 1), RuntimeError),
    (lambda lib, x: lib.meshgrid(x[0], x[1], indexing="yx"), RuntimeError),
    (lambda lib, x: lib.meshgrid(x, indexing="ij"), RuntimeError),
    (lambda lib, x: lib.tensordot(x, x, ([0], [0, 1])), RuntimeError),
    (lambda lib, x: lib.tensordot(x, x[:2], ([1], [0])), RuntimeError),
    (lambda lib, x: lib.inner(x, x[:, :2]), RuntimeError),
    (lambda lib, x: lib.take_along_dim(x, torch.zeros(3, dtype=torch.long), 0), RuntimeError),
    (lambda lib, x: lib.index_fill(x, 0, torch.tensor([0]), x[0]), RuntimeError),
    (lambda lib, x: lib.scatter_reduce(x, 0, torch.zeros(3, 3, dtype=torch.long), x, "add"), RuntimeError),
    (lambda lib, x: lib.scatter_reduce(x * 1, 0, torch.zeros(3, 3, dtype=torch.long), x, "max").sum().backward(),
     RuntimeError),  # torch's forward takes "max" for amax, its backward does not
    (lambda lib, x: lib.index_reduce(x, 0, torch.tensor([0]), x[:1], "sum"), RuntimeError),
    (lambda lib, x: lib.combinations(x), RuntimeError),
    (lambda lib, x: lib.cartesian_prod(x, x[0]), RuntimeError),
    (lambda lib, x: lib.hsplit(x, 2), RuntimeError),
    (lambda lib, x: lib.dsplit(x, 1), RuntimeError),
    (lambda lib, x: lib.tensor_split(x, 0), RuntimeError),
    (lambda lib, x: lib.split_with_sizes(x, [1, 1]), RuntimeError),
    (lambda lib, x: lib.masked_scatter(x, torch.ones(3, 3), x), RuntimeError),
    (lambda lib, x: lib.broadcast_tensors(x, x[:2]), RuntimeError),
])
def test_errors_as_torch(call, error):
    x = torch.randn(3, 3)
    with pytest.raises(error):
        call(torch, x)
    with pytest.raises(error):
        call(nx, _leaf(x))


def test_errors_name_the_op():
    with pytest.raises(RuntimeError, match="neuronix.hsplit"):
        nx.hsplit(_leaf(torch.randn(3, 3)), 2)
    with pytest.raises(RuntimeError, match="neuronix.tensordot.*size 3 in dim 1.*size 2 in dim 0"):
        nx.tensordot(_leaf(torch.randn(3, 3)), _leaf(torch.randn(2, 3)), ([1], [0]))


def test_meshgrid_without_indexing_warns_and_uses_ij():
    a, b = torch.randn(2), torch.randn(3)
    with pytest.warns(UserWarning, match="indexing"):
        grids = nx.meshgrid(_leaf(a), _leaf(b))
    assert [tuple(g.shape) for g in grids] == [(2, 3), (2, 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(nx.meshgrid(_leaf(a), _leaf(b), indexing="xy")[0].shape) == (3, 2)


# ----- torch defects: neuronix gives the true derivative ------------------------------------------------
def test_block_diag_empty_vector_block_keeps_later_blocks_gradients():
    """torch 2.13's backward skips a 1-d empty block without moving past the row it takes in the forward."""
    empty, a, b = _leaf(torch.zeros(0)), _leaf(torch.tensor(3.0)), _leaf(torch.tensor(4.0))
    out = nx.block_diag(empty, a, b)
    assert tuple(out.shape) == (3, 2)
    g = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    out.backward(nx.Tensor(g))
    assert a.grad.item() == 30.0 and b.grad.item() == 60.0  # their own entries, (1, 0) and (2, 1)
    assert tuple(empty.grad.shape) == (0,)


def test_narrow_copy_negative_start_gradient_reaches_the_wrapped_position():
    x = _leaf(torch.arange(5.0))
    nx.narrow_copy(x, 0, -1, 1).backward(nx.Tensor(torch.ones(1)))
    assert x.grad.data.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]


def test_scatter_reduce_prod_forward_mode_is_the_true_derivative():
    """torch's forward AD of prod is zero; neuronix's forward mode matches its (torch's) backward."""
    index, src = torch.tensor([0, 0]), torch.tensor([2.0, 3.0])

    def f(x):
        return nx.scatter_reduce(x, 0, nx.Tensor(index), nx.Tensor(src), "prod")

    _, tangent = nx.func.jvp(f, (nx.Tensor(torch.tensor([1.5, 2.0])),), (nx.Tensor(torch.ones(2)),))
    assert tangent.data.tolist() == [6.0, 1.0]


def test_kron_and_take_along_dim_take_transposed_inputs():
    """torch 2.13 raises on these layouts (its _unsafe_view / view(-1)); the values are those of contiguous copies."""
    a, b = torch.randn(1, 2, 2).transpose(-1, -2), torch.randn(3, 1)
    torch.testing.assert_close(nx.kron(_leaf(a), _leaf(b)).data, torch.kron(a.contiguous(), b))
    m, index = torch.randn(3, 3).t(), torch.tensor([0, 4])
    torch.testing.assert_close(nx.take_along_dim(_leaf(m), nx.Tensor(index)).data,
                               torch.take_along_dim(m.contiguous(), index))


def test_scatter_reduce_prod_two_zeros_in_one_place_refuse_double_backward_as_torch():
    x, src, index = torch.tensor([2.0, 3.0]), torch.tensor([0.0, 0.0, 4.0]), torch.tensor([0, 0, 1])
    for lib, leaf in ((torch, _torch_leaf), (nx, _leaf)):
        xs, ss = leaf(x), leaf(src)
        (g,) = lib.autograd.grad(lib.scatter_reduce(xs, 0, index if lib is torch else nx.Tensor(index), ss,
                                                    "prod").sum(), ss, create_graph=True)
        assert (g.data if lib is nx else g).tolist() == [0.0, 0.0, 3.0]
        with pytest.raises(RuntimeError, match="Double backward is unsupported for src"):
            lib.autograd.grad(g.sum(), (xs, ss))


# ----- reductions at ties and zeros, against torch ------------------------------------------------------
@pytest.mark.parametrize("reduce", ["amax", "amin"])
@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_reduce_ties_split_evenly(reduce, include_self):
    x = torch.tensor([1.0, 2.0, 2.0, 5.0])
    index = torch.tensor([0, 0, 1, 1, 2])
    src = torch.tensor([1.0, 1.0, 2.0, 2.0, 7.0])
    _grads_agree("scatter_reduce", [x, 0, index, src, reduce], include_self=include_self)


@pytest.mark.parametrize("include_self", [True, False])
@pytest.mark.parametrize("src", [[0.0, 3.0, 2.0, 0.0], [0.0, 0.0, 2.0, 5.0], [1.0, 3.0, 2.0, 4.0]])
def test_scatter_reduce_prod_at_zeros(include_self, src):
    x = torch.tensor([2.0, 0.0, 3.0])
    _grads_agree("scatter_reduce", [x, 0, torch.tensor([0, 0, 1, 1]), torch.tensor(src), "prod"],
                 include_self=include_self)


@pytest.mark.parametrize("reduce", ["prod", "mean", "amax", "amin"])
def test_index_reduce_with_zeros_and_ties(reduce):
    x = torch.tensor([[2.0, 0.0], [1.0, 1.0], [3.0, 3.0]])
    source = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 3.0]])
    for include_self in (True, False):
        _grads_agree("index_reduce", [x, 0, torch.tensor([0, 0, 2]), source, reduce], include_self=include_self)


def test_scatter_reduce_second_derivative_matches_torch():
    x, src = torch.tensor([1.5, -2.0, 0.7]), torch.tensor([0.5, 1.2, -0.8, 2.0])
    index = torch.tensor([0, 0, 2, 1])
    for reduce in ("prod", "mean", "amax", "sum"):
        tx, ts = _torch_leaf(x), _torch_leaf(src)
        nxx, ns = _leaf(x), _leaf(src)
        (tg,) = torch.autograd.grad(torch.scatter_reduce(tx, 0, index, ts, reduce).pow(2).sum(), ts, create_graph=True)
        (ng,) = nx.autograd.grad(nx.scatter_reduce(nxx, 0, nx.Tensor(index), ns, reduce).pow(2).sum(), ns,
                                 create_graph=True)
        t2 = torch.autograd.grad(tg.sum(), (tx, ts))
        n2 = nx.autograd.grad(ng.sum(), (nxx, ns))
        for a, b in zip(n2, t2):
            torch.testing.assert_close(a.data, b)


def test_index_put_and_put_accumulate_repeated_positions():
    x = torch.randn(4, 3)
    rows = torch.tensor([1, 1, 3])
    _grads_agree("index_put", [x, (rows,), torch.randn(3, 3)], accumulate=True)
    _grads_agree("put", [x, torch.tensor([0, 0, -1, 5]), torch.randn(4)], accumulate=True)


def test_take_along_dim_broadcasts_input_and_index():
    x = torch.randn(1, 4, 3)
    index = torch.tensor([[[0, 2], [1, 1], [2, 0], [0, 0]]]).expand(2, 4, 2)
    _grads_agree("take_along_dim", [x, index, 2])


def test_repeat_interleave_tensor_repeats_and_output_size():
    x = torch.randn(3, 2)
    _grads_agree("repeat_interleave", [x, torch.tensor([2, 0, 3]), 0], output_size=5)
    counts = nx.repeat_interleave(nx.Tensor(torch.tensor([1, 0, 2])))
    assert counts.data.tolist() == [0, 2, 2] and not counts.requires_grad


# ----- aliasing: views, copies and in-place writes ---------------------------------------------------------
def test_unsafe_split_pieces_may_be_written_and_reach_the_input():
    base = torch.arange(6.0)
    t_pieces = torch.unsafe_split(base.clone().requires_grad_(True) * 1, 4)
    x = _leaf(base) * 1
    pieces = nx.unsafe_split(x, 4)
    piece = pieces[1]
    piece += 1  # no error: not a view to autograd (torch's too)
    t_pieces[1].add_(1)
    assert x.data.tolist() == [0.0, 1.0, 2.0, 3.0, 5.0, 6.0]
    assert [p.data.tolist() for p in pieces] == [p.tolist() for p in t_pieces]


def test_kron_input_written_after_forward_keeps_the_forward_gradient():
    a, b = _leaf(torch.tensor([1.0, 2.0])), _leaf(torch.tensor([3.0, 4.0]))
    a1 = a * 1
    out = nx.kron(a1, b)
    a1 += 10  # torch accepts this too (its kron reshapes with _unsafe_view)
    out.backward(nx.Tensor(torch.ones(4)))
    assert b.grad.data.tolist() == [3.0, 3.0]  # a's values at the forward, not the written ones


def test_take_with_a_scalar_index_is_a_copy():
    x = _leaf(torch.randn(2, 3))
    out = nx.take(x, nx.Tensor(torch.tensor(4)))
    assert out.shape == () and out.data._base is None or out.data.data_ptr() != x.data.data_ptr()
    out += 1  # a view of the leaf would be refused here
    out.backward()
    assert x.grad.data.reshape(-1).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_diag_of_a_matrix_is_a_copy_and_ravel_copies_non_contiguous():
    x = _leaf(torch.randn(3, 3))
    d = nx.diag(x)
    d += 1  # torch.diag copies: writing it leaves x alone
    assert not torch.equal(d.data, torch.diagonal(x.data))
    wide = _leaf(torch.randn(2, 8))
    flat = nx.ravel(wide[:, ::2])
    assert flat.data.is_contiguous() and flat.data.data_ptr() != wide.data.data_ptr()


def test_new_factories_and_nelement():
    x = nx.Tensor(torch.randn(2, 3, dtype=torch.float64))
    z = x.new_zeros(4, 5)
    assert z.dtype == torch.float64 and tuple(z.shape) == (4, 5) and not z.requires_grad
    f = x.new_full((2,), 7.0, dtype=torch.float32, requires_grad=True)
    assert f.dtype == torch.float32 and f.requires_grad and f.is_leaf
    t = x.new_tensor([[1, 2]])
    assert t.dtype == torch.float64 and t.data.tolist() == [[1.0, 2.0]]
    assert x.nelement() == 6 and nx.Tensor(torch.zeros(0, 4)).nelement() == 0


def test_conjugate_transposes_of_other_ranks_as_torch():
    scalar = _leaf(torch.tensor(2.0))
    with pytest.warns(UserWarning, match="deprecated on 0-D"):
        assert nx.adjoint(scalar) is scalar
    with pytest.warns(UserWarning, match="deprecated on 0-D"):
        assert scalar.mH is scalar and scalar.H is scalar
    with pytest.raises(RuntimeError, match="only supported on matrices or batches"):
        _ = _leaf(torch.randn(3)).mH
    with pytest.raises(RuntimeError, match=r"only supported on matrices \(2-D"):
        _ = _leaf(torch.randn(2, 2, 3)).H
    batch = _leaf(torch.randn(2, 2, 3))
    assert tuple(batch.mH.shape) == (2, 3, 2) and tuple(nx.adjoint(batch).shape) == (2, 3, 2)


def test_split_keywords_as_torch():
    x = torch.randn(4, 6, 2)
    cases = [("tensor_split", dict(sections=3)), ("tensor_split", dict(indices=[1, 4], dim=1)),
             ("tensor_split", dict(tensor_indices_or_sections=torch.tensor(2))), ("hsplit", dict(sections=2)),
             ("vsplit", dict(indices=[1])), ("dsplit", dict(sections=2))]
    for name, kwargs in cases:
        got = getattr(nx, name)(nx.Tensor(x), **kwargs)
        expected = getattr(torch, name)(x, **kwargs)
        assert [g.data.tolist() for g in got] == [e.tolist() for e in expected], (name, kwargs)
    with pytest.raises(TypeError, match="once"):
        nx.tensor_split(nx.Tensor(x), 2, sections=2)
    assert nx.Tensor(x).sum_to_size(size=(4, 1, 2)).data.tolist() == x.sum_to_size(size=(4, 1, 2)).tolist()
