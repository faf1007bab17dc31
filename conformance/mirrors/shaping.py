"""Mirrors of the shape-and-indexing reach (``neuronix/ops/shaping*.py``).

Samplers draw every dim, index and size from the drawn shapes so the call is valid (0-d, size-0
and size-1 dims and non-contiguous layouts included), and cover the argument forms users call:
one tensor, several or a list (atleast_*, meshgrid), sections or indices (tensor_split), int or
tensor repeats, each reduction with and without ``include_self``. Writes whose winner torch leaves
unspecified (a position written twice without accumulation) draw distinct positions.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.mirrors.movement import (
    _diagonal,
    _dim,
    _expand,
    _index_1d,
    _matrix_or_less,
    _narrow,
    _permute,
    _seed_tensor,
    _select,
    _squeeze,
    _transpose,
    _unbind,
    _unsqueeze,
    _view,
    _x,
)
from conformance.strategies import Domain, broadcast_shapes, index_tensor, method, nonempty_shape, shape, tensor

# factors of a product kept away from 0 (finite differences; the special-value sweep meets the zeros)
AWAY_FROM_ZERO = Domain(-2.0, 2.0, kinks=(0.0,), away=0.3)


def _both(name: str, sample, **kw) -> list[OpMirror]:
    """``nx.<name>`` vs ``torch.<name>``, and ``Tensor.<name>`` when torch has that method."""
    mirrors = [OpMirror(name, getattr(nx, name), getattr(torch, name), sample, **kw)]
    if hasattr(torch.Tensor, name):
        mirrors.append(OpMirror(f"Tensor.{name}", method(name), method(name), sample, **kw))
    return mirrors


def _t(draw, s, dtype, device, domain=None):
    return tensor(draw, s, dtype, device) if domain is None else tensor(draw, s, dtype, device, domain)


def _mask(draw, s, device):
    return _seed_tensor(draw, lambda g: torch.rand(tuple(s), generator=g) > 0.5).to(device)


def _perm_prefix(draw, n: int, k: int, device) -> torch.Tensor:
    """``k`` distinct positions among ``n`` (a permutation's prefix)."""
    return _seed_tensor(draw, lambda g: torch.randperm(n, generator=g)[:k]).to(device)


# ----- atleast_* and stacks --------------------------------------------------------------------------
def _atleast(draw, dtype, device):
    xs = [_x(draw, dtype, device, max_dims=4, max_side=3) for _ in range(draw(st.integers(1, 3)))]
    form = draw(st.sampled_from(["args", "list"]))
    return Sample((xs,) if form == "list" else tuple(xs))


def _parts(draw, dtype, device, shapes):
    return [tensor(draw, s, dtype, device) for s in shapes]


def _hstack(draw, dtype, device):
    k = draw(st.integers(1, 3))
    rank = draw(st.integers(0, 3))
    if rank <= 1:
        shapes = [draw(st.sampled_from([(), (draw(st.integers(0, 3)),)])) for _ in range(k)]
    else:
        base = list(nonempty_shape(draw, rank, rank, 3))
        shapes = [tuple(base[:1] + [draw(st.integers(0, 3))] + base[2:]) for _ in range(k)]
    return Sample((_parts(draw, dtype, device, shapes),))


def _vstack(draw, dtype, device):
    k = draw(st.integers(1, 3))
    n = draw(st.integers(0, 3))
    rank = draw(st.integers(1, 3))
    rest = list(shape(draw, rank - 1, rank - 1, 0, 3)) if rank > 1 else []
    shapes = []
    for _ in range(k):
        if rank <= 2 and draw(st.booleans()):
            shapes.append((n,) if rank == 2 else draw(st.sampled_from([(), (1,)])) if n == 1 else (n,))
        else:
            shapes.append(tuple([draw(st.integers(0, 3))] + ([n] if rank == 2 else rest)))
    if rank == 1:
        shapes = [draw(st.sampled_from([(n,), (1, n)])) for _ in range(k)]
    return Sample((_parts(draw, dtype, device, shapes),))


def _dstack(draw, dtype, device):
    k = draw(st.integers(1, 3))
    rank = draw(st.integers(0, 3))
    base = list(shape(draw, rank, rank, 0, 3))
    shapes = []
    for _ in range(k):
        if rank == 3:
            shapes.append(tuple(base[:2] + [draw(st.integers(0, 3))]))
        else:
            shapes.append(tuple(base))
    return Sample((_parts(draw, dtype, device, shapes),))


def _column_stack(draw, dtype, device):
    n = draw(st.integers(0, 3))
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["vector", "matrix", "scalar"] if n == 1 else ["vector", "matrix"]))
        shapes.append({"vector": (n,), "matrix": (n, draw(st.integers(0, 3))), "scalar": ()}[kind])
    return Sample((_parts(draw, dtype, device, shapes),))


# ----- splits ----------------------------------------------------------------------------------------------
def _indices(draw, n: int) -> list[int]:
    """Cut points as users pass them: sorted usually, sometimes unsorted, past the end or negative."""
    cuts = draw(st.lists(st.integers(-n - 1, n + 2), max_size=4))
    return sorted(cuts) if draw(st.booleans()) else cuts


def _tensor_split(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    form = draw(st.sampled_from(["sections", "indices", "tensor sections", "tensor indices"]))
    if form.endswith("sections"):
        sections = draw(st.integers(1, 6))
        arg = torch.tensor(sections) if form.startswith("tensor") else sections
    else:
        cuts = _indices(draw, x.shape[d])
        arg = torch.tensor(cuts, dtype=torch.long) if form.startswith("tensor") else cuts
    return Sample((x, arg), {"dim": d} if draw(st.booleans()) else {}) if d >= 0 else Sample((x, arg, d))


def _directional(min_rank: int, dim_of):
    def sample(draw, dtype, device):
        x = _x(draw, dtype, device, min_dims=min_rank, max_dims=max(min_rank, 3), max_side=4)
        n = x.shape[dim_of(x.ndim)]
        if draw(st.booleans()):
            divisors = [k for k in range(1, 5) if n % k == 0] if n else [1, 2, 3]
            return Sample((x, draw(st.sampled_from(divisors))))
        return Sample((x, _indices(draw, n)))

    return sample


def _sizes_summing(draw, n: int) -> list[int]:
    sizes, left = [], n
    while left > 0:
        k = draw(st.integers(0, left))
        sizes.append(k)
        left -= k
    return sizes + ([0] if draw(st.booleans()) else [])


def _split_with_sizes(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    return Sample((x, _sizes_summing(draw, x.shape[d]) or [0], d))


def _split_int(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    return Sample((x, draw(st.integers(1, max(x.shape[d], 1) + 1)), d))


def _chunk(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    return Sample((x, draw(st.integers(1, 6)), _dim(draw, x.ndim)))


def _sum_to_size(draw, dtype, device):
    x = _x(draw, dtype, device)
    target = tuple(draw(st.sampled_from([1, v])) for v in x.shape[draw(st.integers(0, x.ndim)):])
    return Sample((x, target) if draw(st.booleans()) or not target else (x, *target))


def _unary(draw, dtype, device):
    return Sample((_x(draw, dtype, device),))


# ----- rotations and diagonals ------------------------------------------------------------------------------
def _two_dims(draw, ndim: int) -> tuple[int, int]:
    d1 = _dim(draw, ndim)
    d2 = draw(st.sampled_from([d for d in range(ndim) if d != d1 % ndim]))
    return d1, d2 - ndim if draw(st.booleans()) else d2


def _rot90(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=2)
    kwargs = {}
    if draw(st.booleans()):
        kwargs["k"] = draw(st.integers(-5, 5))
    if draw(st.booleans()) or x.ndim > 2:
        kwargs["dims"] = list(_two_dims(draw, x.ndim))
    return Sample((x,), kwargs)


def _diag(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1, max_dims=2)
    return Sample((x, draw(st.integers(-3, 3))) if draw(st.booleans()) else (x,))


def _diag_embed(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1, max_dims=3, max_side=4)
    if draw(st.booleans()):
        return Sample((x,))
    d1, d2 = _two_dims(draw, x.ndim + 1)
    return Sample((x, draw(st.integers(-3, 3)), d1, d2))


def _diagflat(draw, dtype, device):
    x = _x(draw, dtype, device, max_dims=2, max_side=4)
    return Sample((x, draw(st.integers(-3, 3))) if draw(st.booleans()) else (x,))


def _diagonal_scatter(draw, dtype, device):
    x, offset, d1, d2 = _diagonal(draw, dtype, device).args
    src = tensor(draw, torch.diagonal(x, offset, d1, d2).shape, dtype, device)
    return Sample((x, src, offset, d1, d2))


def _select_scatter(draw, dtype, device):
    x, d, i = _select(draw, dtype, device).args
    return Sample((x, tensor(draw, x.select(d, i).shape, dtype, device), d, i))


def _slice_scatter(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    n = x.shape[d]
    start = draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
    end = draw(st.one_of(st.none(), st.integers(-n - 1, n + 1)))
    step = draw(st.integers(1, 3))
    region = x[(slice(None),) * (d % x.ndim) + (slice(start, end, step),)]
    return Sample((x, tensor(draw, region.shape, dtype, device)), {"dim": d, "start": start, "end": end, "step": step})


def _block_diag(draw, dtype, device):
    """0-, 1- and 2-d blocks, empty ones too, but no 1-d empty block: torch 2.13's backward skips it without
    moving down the row it takes in the forward (shape (1, 0)), so every later block gets the gradient of
    the row above its own: torch.block_diag(torch.zeros(0, requires_grad=True), a, b) with a, b 0-d and an
    upstream gradient g of shape (3, 2) gives a.grad == g[0, 0] (should be g[1, 0]) and b.grad == g[1, 1]
    (should be g[2, 1]). neuronix gives each block its own region (tests/test_shaping.py checks it)."""
    shapes = [shape(draw, 0, 2, 0, 3) for _ in range(draw(st.integers(1, 4)))]
    shapes = [(1,) if s == (0,) else s for s in shapes]
    return Sample(tuple(tensor(draw, s, dtype, device) for s in shapes))


# ----- broadcasting, grids, products over index sets ---------------------------------------------------------
def _broadcast_tensors(draw, dtype, device):
    shapes, _ = broadcast_shapes(draw, draw(st.integers(1, 3)))
    return Sample(tuple(tensor(draw, s, dtype, device) for s in shapes))


def _broadcast_shapes(draw, dtype, device):
    shapes, _ = broadcast_shapes(draw, draw(st.integers(1, 3)))
    return Sample(tuple(s[0] if len(s) == 1 and draw(st.booleans()) else s for s in shapes))


def _vectors(draw, dtype, device, k: int, allow_scalar: bool):
    sizes = [draw(st.sampled_from([(), (0,), (1,), (2,), (3,)] if allow_scalar else [(0,), (1,), (2,), (3,)]))
             for _ in range(k)]
    return [tensor(draw, s, dtype, device) for s in sizes]


def _meshgrid(draw, dtype, device):
    xs = _vectors(draw, dtype, device, draw(st.integers(1, 3)), True)
    form = draw(st.sampled_from(["args", "list"]))
    return Sample((xs,) if form == "list" else tuple(xs), {"indexing": draw(st.sampled_from(["ij", "xy"]))})


def _cartesian_prod(draw, dtype, device):
    return Sample(tuple(_vectors(draw, dtype, device, draw(st.integers(1, 3)), False)))


def _combinations(draw, dtype, device):
    x = tensor(draw, (draw(st.integers(0, 5)),), dtype, device)
    kwargs = {}
    if draw(st.booleans()):
        kwargs["r"] = draw(st.integers(0, 4))
    if draw(st.booleans()):
        kwargs["with_replacement"] = draw(st.booleans())
    return Sample((x,), kwargs)


def _kron(draw, dtype, device):
    """Contiguous operands: torch 2.13's kron reshapes its broadcast product with ``_unsafe_view``, which refuses
    the product's layout when an operand is transposed: torch.kron(torch.randn(1, 2, 2).transpose(-1, -2),
    torch.randn(3, 1)) raises "view size is not compatible with input tensor's size and stride"; neuronix
    reshapes (tests/test_shaping.py)."""
    a = tensor(draw, shape(draw, 0, 3, 0, 3), dtype, device, contiguous=True)
    b = tensor(draw, shape(draw, 0, 3, 0, 3), dtype, device, contiguous=True)
    return Sample((a, b))


def _tensordot(draw, dtype, device):
    k = draw(st.integers(0, 2))
    shared = list(shape(draw, k, k, 0, 3))
    free_a = list(shape(draw, 0, 2, 0, 3))
    free_b = list(shape(draw, 0, 2, 0, 3))
    if draw(st.booleans()):  # dims as an int: a's last k with b's first k
        a = tensor(draw, free_a + shared, dtype, device)
        b = tensor(draw, shared + free_b, dtype, device)
        return Sample((a, b), {"dims": k} if k != 2 or draw(st.booleans()) else {})
    order_a = draw(st.permutations(range(len(free_a) + k)))
    order_b = draw(st.permutations(range(len(free_b) + k)))
    sa, sb = [0] * len(order_a), [0] * len(order_b)
    dims_a, dims_b = [], []
    for i, size in enumerate(shared):  # contracted dim i sits at order_a[i] in a and order_b[i] in b
        sa[order_a[i]], sb[order_b[i]] = size, size
        dims_a.append(order_a[i])
        dims_b.append(order_b[i])
    for j, size in enumerate(free_a):
        sa[order_a[k + j]] = size
    for j, size in enumerate(free_b):
        sb[order_b[k + j]] = size
    a, b = tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)
    return Sample((a, b), {"dims": (dims_a, dims_b)})


def _inner(draw, dtype, device):
    if draw(st.integers(0, 4)) == 0:
        return Sample((_x(draw, dtype, device, max_dims=2), tensor(draw, (), dtype, device)))
    n = draw(st.integers(0, 3))
    a = tensor(draw, shape(draw, 0, 2, 0, 3) + (n,), dtype, device)
    b = tensor(draw, shape(draw, 0, 2, 0, 3) + (n,), dtype, device)
    return Sample((a, b))


# ----- reads by index ----------------------------------------------------------------------------------------
def _take(draw, dtype, device):
    x = _x(draw, dtype, device)
    n = x.numel()
    ishape = shape(draw, 0, 2, 0, 4)
    if n == 0:
        return Sample((x, torch.zeros((0,), dtype=torch.long, device=device)))
    return Sample((x, index_tensor(draw, ishape, 2 * n, device) - n))


def _take_along_dim(draw, dtype, device):
    """Without ``dim`` the input is contiguous: torch 2.13 flattens it with ``view(-1)``, which refuses a
    transposed input: torch.take_along_dim(torch.randn(3, 3).t(), torch.tensor([0, 4])) raises "view size is not
    compatible with input tensor's size and stride" (torch.take flattens it); neuronix reshapes (tests/test_shaping.py)."""
    x = _x(draw, dtype, device, max_side=4)
    if x.ndim == 0 or draw(st.integers(0, 3)) == 0:
        x = x.contiguous()
        n = x.numel()
        if n == 0:
            return Sample((x, torch.zeros((0,), dtype=torch.long, device=device)))
        return Sample((x, index_tensor(draw, shape(draw, 0, 2, 0, 4), n, device)))
    d = _dim(draw, x.ndim)
    dd = d % x.ndim
    if x.shape[dd] == 0:
        x = tensor(draw, tuple(3 if i == dd else s for i, s in enumerate(x.shape)), dtype, device)
    ishape = [draw(st.sampled_from([1, s])) for s in x.shape]  # broadcast either way in the other dims
    ishape[dd] = draw(st.integers(0, 4))
    if draw(st.booleans()):  # x broadcast against the index instead
        x = x[tuple(slice(0, 1) if i != dd and draw(st.booleans()) else slice(None) for i in range(x.ndim))]
        ishape = [s if i == dd else max(s, x.shape[i], 1) for i, s in enumerate(ishape)]
        ishape = [s if i == dd or x.shape[i] in (1, s) else x.shape[i] for i, s in enumerate(ishape)]
    return Sample((x, index_tensor(draw, ishape, x.shape[dd], device), d))


# ----- writes by index ---------------------------------------------------------------------------------------
def _put(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=4)
    n = x.numel()
    accumulate = draw(st.booleans())
    k = draw(st.integers(0, min(n, 6)))
    index = index_tensor(draw, (k,), n, device) if accumulate else _perm_prefix(draw, n, k, device)
    index = index - n * (index % 2 == 0).long() if n and draw(st.booleans()) else index  # negative positions too
    src_shape = draw(st.sampled_from([(k,), (1, k)] + ([(k // 2, 2)] if k % 2 == 0 and k else [])))
    index = index.reshape(draw(st.sampled_from([(k,), src_shape])))
    kwargs = {"accumulate": accumulate} if accumulate or draw(st.booleans()) else {}
    return Sample((x, index, tensor(draw, src_shape, dtype, device)), kwargs)


def _index_put(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1, max_side=4)
    accumulate = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:  # a bool mask over the leading dims
        k = draw(st.integers(1, x.ndim))
        indices = (_mask(draw, x.shape[:k], device),)
    else:
        k = draw(st.integers(1, x.ndim))
        count = draw(st.integers(0, 4))
        lead = math.prod(x.shape[:k])
        if lead == 0:
            count = 0
        flat = index_tensor(draw, (count,), lead, device) if accumulate else _perm_prefix(draw, lead, min(count, lead), device)
        coords = torch.unravel_index(flat, tuple(x.shape[:k])) if k > 1 else (flat,)
        indices = tuple(c - x.shape[i] * draw(st.booleans()) if x.shape[i] else c for i, c in enumerate(coords))
    target = x[indices].shape
    j = draw(st.integers(0, len(target)))
    vshape = tuple(draw(st.sampled_from([1, v])) for v in target[len(target) - j:])
    kwargs = {"accumulate": accumulate} if accumulate or draw(st.booleans()) else {}
    return Sample((x, indices, tensor(draw, vshape, dtype, device)), kwargs)


def _index_copy(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1, max_side=4)
    d = _dim(draw, x.ndim)
    n = x.shape[d]
    index = _perm_prefix(draw, n, draw(st.integers(0, n)), device)
    src_shape = list(x.shape)
    src_shape[d] = index.numel()
    return Sample((x, d, index, tensor(draw, src_shape, dtype, device)))


def _index_fill(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=4)
    d = _dim(draw, x.ndim)
    if x.ndim == 0:
        index = torch.zeros(draw(st.sampled_from([(), (1,)])), dtype=torch.long, device=device)
    else:
        index = _index_1d(draw, x.shape[d], device)
    value = draw(st.sampled_from([-1.5, 0.0, 2.0])) if draw(st.booleans()) else tensor(draw, (), dtype, device)
    return Sample((x, d, index, value))


def _masked_scatter(draw, dtype, device):
    (xs, ms), out = broadcast_shapes(draw, 2, max_side=4)
    mask = _mask(draw, ms, device)
    count = int(mask.expand(out).sum())
    src_n = count + draw(st.integers(0, 3))
    src_shape = draw(st.sampled_from([(src_n,)] + ([(1, src_n)] if src_n else [])))
    return Sample((tensor(draw, xs, dtype, device), mask, tensor(draw, src_shape, dtype, device)))


def _masked_scatter_method(draw, dtype, device):
    """``x.masked_scatter(mask, src)``: torch's method broadcasts the mask to ``x`` only."""
    x = _x(draw, dtype, device, max_side=4)
    k = draw(st.integers(0, x.ndim))
    mask = _mask(draw, tuple(draw(st.sampled_from([1, v])) for v in x.shape[x.ndim - k:]), device)
    count = int(mask.expand(x.shape).sum())
    return Sample((x, mask, tensor(draw, (count + draw(st.integers(0, 2)),), dtype, device)))


def _reduce_sample(reduce_names, per_element: bool):
    def sample(draw, dtype, device):
        reduce = draw(st.sampled_from(reduce_names))
        domain = AWAY_FROM_ZERO if reduce == "prod" else None
        x = _t(draw, shape(draw, 1, 3, 1, 4), dtype, device, domain)
        d = _dim(draw, x.ndim)
        dd = d % x.ndim
        if per_element:
            ishape = [draw(st.integers(1, v)) for v in x.shape]
            ishape[dd] = draw(st.integers(0, 5))
            index = index_tensor(draw, ishape, x.shape[dd], device)
            src = _t(draw, ishape, dtype, device, domain)
        else:
            index = index_tensor(draw, (draw(st.integers(0, 5)),), x.shape[dd], device)
            src_shape = list(x.shape)
            src_shape[dd] = index.numel()
            src = _t(draw, src_shape, dtype, device, domain)
        kwargs = {"include_self": draw(st.booleans())} if draw(st.booleans()) else {}
        return Sample((x, d, index, src, reduce), kwargs)

    return sample


def _repeat_interleave(draw, dtype, device):
    x = _x(draw, dtype, device, max_dims=3, max_side=4)
    dim = _dim(draw, x.ndim) if x.ndim and draw(st.booleans()) else None
    n = x.numel() if dim is None else x.shape[dim]
    form = draw(st.sampled_from(["int", "0-d", "one", "each"]))
    if form == "int":
        repeats = draw(st.integers(0, 3))
    elif form == "0-d":
        repeats = torch.tensor(draw(st.integers(0, 3)), device=device)
    elif form == "one":
        repeats = torch.tensor([draw(st.integers(0, 3))], device=device)
    else:
        repeats = index_tensor(draw, (n,), 4, device)
    kwargs = {} if dim is None else {"dim": dim}
    if draw(st.booleans()):  # the result's length, given (torch then skips a sync)
        total = repeats * n if isinstance(repeats, int) else int(repeats.expand(n).sum()) if repeats.numel() == 1 \
            else int(repeats.sum())
        kwargs["output_size"] = total
    return Sample((x, repeats), kwargs)


def _repeat_counts(draw, dtype, device):
    return Sample((index_tensor(draw, (draw(st.integers(0, 5)),), 4, device),))


def _halves(draw, dtype, device):
    return Sample(((tensor(draw, shape(draw), dtype, device) * 2).round() / 2,))


def _nonzero_static(draw, dtype, device):
    (x,) = _halves(draw, dtype, device).args
    kwargs = {"size": draw(st.integers(0, 6))}
    if draw(st.booleans()):
        kwargs["fill_value"] = draw(st.sampled_from([-1, 0, 7]))
    return Sample((x,), kwargs)


def _narrow_copy(draw, dtype, device):
    """``narrow``'s samples with a non-negative start: torch 2.13's narrow_copy accepts a negative start in the
    forward but its backward does not wrap it, giving a zero gradient: x = torch.arange(5.0, requires_grad=True);
    torch.narrow_copy(x, 0, -1, 1).backward(torch.ones(1)) leaves x.grad all zeros (should be 1 at index 4);
    neuronix wraps it (tests/test_shaping.py)."""
    x, d, start, length = _narrow(draw, dtype, device).args
    return Sample((x, d, start % x.shape[d] if start < 0 else start, length))


# ----- *_copy ------------------------------------------------------------------------------------------------
def _slice_copy(draw, dtype, device):
    s = _slice_scatter(draw, dtype, device)
    return Sample((s.args[0],), s.kwargs)


def _view_size(draw, dtype, device):
    x, size = _view(draw, dtype, device).args
    return Sample((x, size))


def _unfold(draw, dtype, device):
    x = _x(draw, dtype, device)
    d = _dim(draw, x.ndim)
    n = x.shape[d] if x.ndim else 1
    return Sample((x, d, draw(st.integers(0, n)), draw(st.integers(1, 3))))


def _adjoint(draw, dtype, device):
    return Sample((_x(draw, dtype, device, min_dims=2),))


def _mH(x):
    return x.mH


def _H(x):
    return x.H


def _triangle_indices(draw, dtype, device):
    row, col = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    kwargs = {"device": device}
    if draw(st.booleans()):
        kwargs["dtype"] = draw(st.sampled_from([torch.long, torch.int32]))
    return Sample((row, col, draw(st.integers(-6, 6))) if draw(st.booleans()) else (row, col), kwargs)


def _new_strided(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=3)
    s = shape(draw, 0, 3, 0, 3)
    stride = tuple(draw(st.integers(0, 4)) for _ in s)
    return Sample((x, s, stride), draw(st.sampled_from([{}, {"dtype": torch.float64}])), grad_args=())


# ----- new_* and nelement -----------------------------------------------------------------------------------
def _metadata(result):
    return tuple(result.shape), result.dtype, result.device, result.requires_grad


def _with_grad(result):
    return result, result.requires_grad


def _new_sized(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=3)
    s = shape(draw, 0, 3, 0, 3)
    args = (x, s) if draw(st.booleans()) or not s else (x, *s)
    kwargs = draw(st.sampled_from([{}, {"dtype": torch.float64}, {"requires_grad": True},
                                   {"dtype": torch.float32, "requires_grad": True}]))
    return Sample(args, kwargs, grad_args=())


def _new_full(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=3)
    kwargs = draw(st.sampled_from([{}, {"dtype": torch.float64}, {"requires_grad": True}]))
    return Sample((x, shape(draw, 0, 3, 0, 3), draw(st.sampled_from([0.5, -2.0, 3]))), kwargs, grad_args=())


def _new_tensor(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=3)
    data = draw(st.sampled_from([[1.0, 2.0], [[1, 2], [3, 4]], 3.5, []]))
    kwargs = draw(st.sampled_from([{}, {"dtype": torch.float64}, {"requires_grad": True}]))
    return Sample((x, data), kwargs, grad_args=())


def _new_method(name: str, sample, output) -> OpMirror:
    return OpMirror(f"Tensor.{name}", method(name), method(name), sample, grad=False, output=output)


def _on_a_copy(name: str, as_method: bool):
    """``<name>`` applied to a clone of its input: the pieces share their input's storage (as torch's, without
    being views), so the guard checks' in-place writes into them would otherwise reach the example's own tensors."""

    def call(x, *args, **kwargs):
        x = x.clone()
        return getattr(x, name)(*args, **kwargs) if as_method else getattr(nx if isinstance(x, nx.Tensor) else torch,
                                                                          name)(x, *args, **kwargs)

    call.__name__ = name
    return call


def _unsafe(name: str, sample) -> list[OpMirror]:
    note = "split on a clone of the input: the pieces alias it without being views (see _on_a_copy)"
    return [OpMirror(name, _on_a_copy(name, False), _on_a_copy(name, False), sample, note=note),
            OpMirror(f"Tensor.{name}", _on_a_copy(name, True), _on_a_copy(name, True), sample, note=note)]


# ----- registration ------------------------------------------------------------------------------------------
def _reduction_mirrors(name: str, reduces: tuple[str, ...], per_element: bool) -> list[OpMirror]:
    mirrors = []
    for reduce in reduces:
        sample = _reduce_sample((reduce,), per_element)
        mirrors.append(OpMirror(f"{name}[{reduce}]", getattr(nx, name), getattr(torch, name), sample))
    # prod has its own variant only: torch's forward AD of scatter_reduce(reduce='prod') is zero (kinds/forward_mode.py)
    everything = _reduce_sample(tuple(r for r in reduces if r != "prod"), per_element)
    return mirrors + _both(name, everything)


_COPIES = {
    "alias_copy": _unary, "diagonal_copy": _diagonal, "expand_copy": _expand, "permute_copy": _permute,
    "select_copy": _select, "slice_copy": _slice_copy, "split_copy": _split_int, "split_with_sizes_copy": _split_with_sizes,
    "squeeze_copy": _squeeze, "t_copy": _matrix_or_less, "transpose_copy": _transpose, "unbind_copy": _unbind,
    "unsqueeze_copy": _unsqueeze, "view_copy": _view_size,
}

register(
    *_both("atleast_1d", _atleast), *_both("atleast_2d", _atleast), *_both("atleast_3d", _atleast),
    *_both("hstack", _hstack), *_both("vstack", _vstack), *_both("row_stack", _vstack),
    *_both("dstack", _dstack), *_both("column_stack", _column_stack),
    *_both("tensor_split", _tensor_split),
    *_both("hsplit", _directional(1, lambda n: 1 if n > 1 else 0)),
    *_both("vsplit", _directional(2, lambda n: 0)),
    *_both("dsplit", _directional(3, lambda n: 2)),
    *_both("split_with_sizes", _split_with_sizes),
    *_unsafe("unsafe_split", _split_int), *_unsafe("unsafe_chunk", _chunk),
    *_unsafe("unsafe_split_with_sizes", _split_with_sizes),
    OpMirror("Tensor.sum_to_size", method("sum_to_size"), method("sum_to_size"), _sum_to_size),
    *_both("ravel", _unary), *_both("rot90", _rot90),
    *_both("diag", _diag), *_both("diag_embed", _diag_embed), *_both("diagflat", _diagflat),
    *_both("diagonal_scatter", _diagonal_scatter), *_both("select_scatter", _select_scatter),
    *_both("slice_scatter", _slice_scatter), *_both("block_diag", _block_diag),
    *_both("broadcast_tensors", _broadcast_tensors),
    OpMirror("broadcast_shapes", nx.broadcast_shapes, torch.broadcast_shapes, _broadcast_shapes, grad=False,
             dtypes=(torch.float64,), note="shapes in, a torch.Size out: no tensor, so one dtype"),
    *_both("meshgrid", _meshgrid), *_both("cartesian_prod", _cartesian_prod), *_both("combinations", _combinations),
    *_both("kron", _kron), *_both("tensordot", _tensordot), *_both("inner", _inner),
    *_both("take", _take), *_both("take_along_dim", _take_along_dim),
    *_both("put", _put), *_both("index_put", _index_put), *_both("index_copy", _index_copy),
    *_both("index_fill", _index_fill),
    OpMirror("masked_scatter", nx.masked_scatter, torch.masked_scatter, _masked_scatter),
    OpMirror("Tensor.masked_scatter", method("masked_scatter"), method("masked_scatter"), _masked_scatter_method),
    *_reduction_mirrors("scatter_reduce", ("sum", "prod", "mean", "amax", "amin"), True),
    *_reduction_mirrors("index_reduce", ("prod", "mean", "amax", "amin"), False),
    *_both("repeat_interleave", _repeat_interleave),
    OpMirror("repeat_interleave[counts]", nx.repeat_interleave, torch.repeat_interleave, _repeat_counts, grad=False,
             dtypes=(torch.float64,), note="an int tensor of counts alone: the repeated positions (integers)"),
    *_both("argwhere", _halves, grad=False), *_both("nonzero_static", _nonzero_static, grad=False),
    *_both("narrow_copy", _narrow_copy),
    *(m for name, sample in _COPIES.items() for m in _both(name, sample)),
    OpMirror("detach_copy", nx.detach_copy, torch.detach_copy, _unary, grad=False, output=_with_grad,
             note="a copy outside the graph: the value and requires_grad=False are compared"),
    _new_method("new_zeros", _new_sized, _with_grad), _new_method("new_ones", _new_sized, _with_grad),
    _new_method("new_empty", _new_sized, _metadata), _new_method("new_full", _new_full, _with_grad),
    _new_method("new_tensor", _new_tensor, _with_grad), _new_method("new_empty_strided", _new_strided, _metadata),
    OpMirror("Tensor.unfold", method("unfold"), method("unfold"), _unfold),
    OpMirror("unfold_copy", nx.unfold_copy, torch.unfold_copy, _unfold),
    *_both("adjoint", _adjoint),
    OpMirror("Tensor.mH", _mH, _mH, _adjoint),
    OpMirror("Tensor.H", _H, _H, lambda d, t, v: Sample((_x(d, t, v, min_dims=2, max_dims=2),)),
             note="matrices: torch refuses .H on other ranks but 0-d (tests/test_shaping.py checks those)"),
    *(OpMirror(name, getattr(nx, name), getattr(torch, name), _triangle_indices, grad=False, dtypes=(torch.float64,),
               note="integer positions from sizes: no tensor input, so one dtype")
      for name in ("tril_indices", "triu_indices")),
    OpMirror("Tensor.nelement", method("nelement"), method("nelement"), _unary, grad=False),
)
