"""Mirrors of the shape, movement and indexing ops (``neuronix/ops/movement.py``, ``indexing.py``).

Every sampler draws its dims, sizes and indices from the drawn shape so the call is valid
(0-d tensors, size-0 and size-1 dims and non-contiguous layouts included); torch and
neuronix must then agree on values, gradients and second derivatives.
"""

from __future__ import annotations

import operator

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import broadcast_shapes, index_tensor, method, nonempty_shape, shape, tensor


# ----- drawing helpers ----------------------------------------------------------------------
def _dim(draw, ndim: int, extra: int = 0) -> int:
    """A valid dim for ``ndim`` dims (+``extra`` for ops that add one), negative half the time."""
    rank = max(ndim + extra, 1)
    return draw(st.integers(-rank, rank - 1))


def _dims(draw, ndim: int) -> tuple[int, ...]:
    """Distinct dims, each possibly negative."""
    picked = draw(st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim)) if ndim else []
    return tuple(d - ndim if draw(st.booleans()) else d for d in picked)


def _x(draw, dtype, device, **shape_kw):
    return tensor(draw, shape(draw, **shape_kw), dtype, device)


def _seed_tensor(draw, fn):
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return fn(gen)


def _fn(name: str, sample, **kw):
    """``nx.<name>`` vs ``torch.<name>`` and ``Tensor.<name>`` on both, with the same sampler."""
    return [OpMirror(name, getattr(nx, name), getattr(torch, name), sample, **kw),
            OpMirror(f"Tensor.{name}", method(name), method(name), sample, **kw)]


def _method(name: str, sample, **kw):
    return [OpMirror(f"Tensor.{name}", method(name), method(name), sample, **kw)]


# ----- reshapes ----------------------------------------------------------------------------
def _reshape_targets(s: tuple[int, ...]) -> list[tuple[int, ...]]:
    n = 1
    for v in s:
        n *= v
    targets = [(n,), tuple(reversed(s)), s + (1,), (1,) + s]
    if len(s) >= 2:
        targets.append(s[:-2] + (s[-2] * s[-1],))
    if n > 0:
        targets += [(-1,), (1, -1), s[:-1] + (-1,) if s else (-1,)]
    return targets


def _reshape(draw, dtype, device):
    x = _x(draw, dtype, device)
    return Sample((x, draw(st.sampled_from(_reshape_targets(tuple(x.shape))))))


def _view(draw, dtype, device):
    s = shape(draw)
    return Sample((tensor(draw, s, dtype, device, contiguous=True), draw(st.sampled_from(_reshape_targets(s)))))


def _as(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device, contiguous=True)
    target = torch.empty(x.shape).reshape(draw(st.sampled_from(_reshape_targets(tuple(x.shape))))).shape
    return Sample((x, torch.zeros(target, dtype=dtype, device=device)), grad_args=(0,))


def _squeeze(draw, dtype, device):
    s = tuple(draw(st.sampled_from([1, 1, 0, 2, 3])) for _ in range(draw(st.integers(0, 4))))
    x = tensor(draw, s, dtype, device)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return Sample((x,))
    if kind == "int":
        return Sample((x, _dim(draw, x.ndim)))
    return Sample((x, _dims(draw, x.ndim)))


def _unsqueeze(draw, dtype, device):
    x = _x(draw, dtype, device)
    return Sample((x, _dim(draw, x.ndim, extra=1)))


def _flatten(draw, dtype, device):
    x = _x(draw, dtype, device)
    if x.ndim == 0:
        return Sample((x,), {"start_dim": draw(st.sampled_from([0, -1]))})
    a, b = sorted(draw(st.integers(0, x.ndim - 1)) for _ in range(2))
    return Sample((x, a - x.ndim if draw(st.booleans()) else a, b - x.ndim if draw(st.booleans()) else b))


def _unflatten(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    n = x.shape[d]
    options = [(n,), (1, n), (n, 1)]
    options += [(k, n // k) for k in range(2, n + 1) if n % k == 0]
    if n > 0:
        options += [(-1, 1), (1, -1)]
    return Sample((x, d, draw(st.sampled_from(options))))


# ----- permutations -----------------------------------------------------------------------------
def _permute(draw, dtype, device):
    x = _x(draw, dtype, device)
    perm = draw(st.permutations(range(x.ndim)))
    return Sample((x, tuple(d - x.ndim if draw(st.booleans()) else d for d in perm)))


def _transpose(draw, dtype, device):
    x = _x(draw, dtype, device)
    return Sample((x, _dim(draw, x.ndim), _dim(draw, x.ndim)))


def _matrix_or_less(draw, dtype, device):
    return Sample((_x(draw, dtype, device, max_dims=2),))


def _batched_matrix(draw, dtype, device):
    return Sample((_x(draw, dtype, device, min_dims=2),))


def _movedim(draw, dtype, device):
    x = _x(draw, dtype, device)
    if x.ndim == 0 or draw(st.booleans()):
        return Sample((x, _dim(draw, x.ndim), _dim(draw, x.ndim)))
    k = draw(st.integers(1, x.ndim))
    src = draw(st.permutations(range(x.ndim)))[:k]
    dst = draw(st.permutations(range(x.ndim)))[:k]
    return Sample((x, tuple(src), tuple(dst)))


# ----- broadcasting and repetition ------------------------------------------------------------
def _expand_target(draw, s, allow_keep: bool):
    lead = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    body = []
    for v in s:
        if v == 1:
            body.append(draw(st.sampled_from([0, 1, 2, 3] + ([-1] if allow_keep else []))))
        else:
            body.append(draw(st.sampled_from([v, -1])) if allow_keep else v)
    return lead + tuple(body)


def _expand(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=3)
    return Sample((x, _expand_target(draw, tuple(x.shape), True)))


def _expand_as(draw, dtype, device):
    x = _x(draw, dtype, device, max_side=3)
    target = _expand_target(draw, tuple(x.shape), False)
    return Sample((x, torch.zeros(target, dtype=dtype, device=device)), grad_args=(0,))


def _repeat(draw, dtype, device):
    x = _x(draw, dtype, device, max_dims=3, max_side=3)
    return Sample((x, tuple(draw(st.lists(st.integers(0, 3), min_size=x.ndim, max_size=x.ndim + 2)))))


def _tile(draw, dtype, device):
    x = _x(draw, dtype, device, max_dims=3, max_side=3)
    return Sample((x, tuple(draw(st.lists(st.integers(0, 3), max_size=x.ndim + 1)))))


# ----- joins and splits ----------------------------------------------------------------------------
def _cat(draw, dtype, device):
    s = shape(draw, min_dims=1)
    d = _dim(draw, len(s))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        ps = list(s)
        ps[d] = draw(st.integers(0, 4))
        parts.append(tensor(draw, ps, dtype, device))
    if draw(st.integers(0, 4)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), torch.zeros(0, dtype=dtype, device=device))  # skipped by cat
    return Sample((parts,), {"dim": d})


def _stack(draw, dtype, device):
    s = shape(draw, max_dims=3)
    parts = [tensor(draw, s, dtype, device) for _ in range(draw(st.integers(1, 3)))]
    return Sample((parts,), {"dim": _dim(draw, len(s), extra=1)})


def _split(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    n = x.shape[d]
    if draw(st.booleans()):
        return Sample((x, draw(st.integers(1, max(n, 1) + 1)), d))
    sizes, left = [], n
    while left > 0:
        k = draw(st.integers(0, left))
        sizes.append(k)
        left -= k
    if draw(st.booleans()):
        sizes.append(0)
    return Sample((x, sizes or [0], d))


def _chunk(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    return Sample((x, draw(st.integers(1, 6)), _dim(draw, x.ndim)))


def _unbind(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    return Sample((x, _dim(draw, x.ndim)))


def _narrow(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    n = x.shape[d]
    start = draw(st.integers(0, n))
    length = draw(st.integers(0, n - start))
    if start < n and draw(st.booleans()):
        start -= n
    return Sample((x, d, start, length))


def _select(draw, dtype, device):
    x = tensor(draw, nonempty_shape(draw), dtype, device)
    d = _dim(draw, x.ndim)
    return Sample((x, d, draw(st.integers(-x.shape[d], x.shape[d] - 1))))


# ----- gather / scatter / index_select -------------------------------------------------------------
def _gather_index(draw, s, d, device):
    """An index for gather/scatter_add along ``d``: no larger than ``s`` in every other dim."""
    if not s:
        return index_tensor(draw, (), 1, device)
    ishape = [draw(st.integers(0, v)) for v in s]
    ishape[d] = draw(st.integers(0, 4)) if s[d] else 0
    return index_tensor(draw, ishape, s[d], device)


def _gather(draw, dtype, device):
    x = _x(draw, dtype, device)
    d = _dim(draw, x.ndim)
    return Sample((x, d, _gather_index(draw, tuple(x.shape), d % max(x.ndim, 1), device)))


def _scatter_add(draw, dtype, device):
    x = _x(draw, dtype, device)
    d = _dim(draw, x.ndim)
    index = _gather_index(draw, tuple(x.shape), d % max(x.ndim, 1), device)
    return Sample((x, d, index, tensor(draw, index.shape, dtype, device)))


def _unique_index(draw, s, d, device):
    """A scatter index with distinct positions along ``d`` (a repeat makes the winner unspecified)."""
    if not s:
        return torch.zeros((), dtype=torch.long, device=device)
    ishape = [draw(st.integers(0, v)) for v in s]
    ishape[d] = draw(st.integers(0, s[d]))
    full = list(ishape)
    full[d] = s[d]
    order = _seed_tensor(draw, lambda g: torch.rand(full, generator=g).argsort(d))
    return order.narrow(d, 0, ishape[d]).contiguous().to(device)


def _scatter(draw, dtype, device):
    x = _x(draw, dtype, device)
    d = _dim(draw, x.ndim)
    index = _unique_index(draw, tuple(x.shape), d % max(x.ndim, 1), device)
    return Sample((x, d, index, tensor(draw, index.shape, dtype, device)))


def _scatter_value(draw, dtype, device):
    s = _scatter(draw, dtype, device)
    return Sample(s.args[:3], {"value": draw(st.sampled_from([0.0, 1.5, -2.0]))})


def _index_1d(draw, n, device):
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    return index_tensor(draw, (draw(st.integers(0, 5)),), n, device)


def _index_select(draw, dtype, device):
    x = _x(draw, dtype, device)
    d = _dim(draw, x.ndim)
    if x.ndim == 0:  # a scalar takes exactly one index: 0
        return Sample((x, d, torch.zeros(draw(st.sampled_from([(), (1,)])), dtype=torch.long, device=device)))
    return Sample((x, d, _index_1d(draw, x.shape[d], device)))


def _index_add(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    d = _dim(draw, x.ndim)
    index = _index_1d(draw, x.shape[d], device)
    src_shape = list(x.shape)
    src_shape[d] = index.numel()
    kwargs = {"alpha": draw(st.sampled_from([1, 2.0, -0.5]))}
    return Sample((x, d, index, tensor(draw, src_shape, dtype, device)), kwargs)


def _masked_fill(draw, dtype, device):
    s = shape(draw)
    x = tensor(draw, s, dtype, device)
    k = draw(st.integers(0, len(s)))
    mask_shape = tuple(draw(st.sampled_from([1, v])) for v in s[len(s) - k:])
    mask = _seed_tensor(draw, lambda g: torch.rand(mask_shape, generator=g) > 0.5).to(device)
    if draw(st.booleans()):
        return Sample((x, mask, draw(st.sampled_from([0.0, -1.5, 3.0]))))
    return Sample((x, mask, tensor(draw, (), dtype, device)))


def _masked_select(draw, dtype, device):
    (xs, ms), _ = broadcast_shapes(draw, 2)
    mask = _seed_tensor(draw, lambda g: torch.rand(ms, generator=g) > 0.5).to(device)
    return Sample((tensor(draw, xs, dtype, device), mask))


# ----- reorderings, copies, triangles ----------------------------------------------------------------
def _flip(draw, dtype, device):
    x = _x(draw, dtype, device)
    return Sample((x, _dims(draw, x.ndim)))


def _roll(draw, dtype, device):
    x = _x(draw, dtype, device)
    if x.ndim == 0 or draw(st.booleans()):
        return Sample((x, draw(st.integers(-7, 7))))
    dims = _dims(draw, x.ndim) or (0,)
    return Sample((x, tuple(draw(st.integers(-7, 7)) for _ in dims), dims))


def _unary(draw, dtype, device):
    return Sample((_x(draw, dtype, device),))


def _triangle(draw, dtype, device):
    return Sample((_x(draw, dtype, device, min_dims=2), draw(st.integers(-3, 3))))


def _diagonal(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=2)
    d1 = _dim(draw, x.ndim)
    d2 = draw(st.sampled_from([d for d in range(x.ndim) if d != d1 % x.ndim]))
    return Sample((x, draw(st.integers(-3, 3)), d1, d2))


# ----- __getitem__ -----------------------------------------------------------------------------------
def _basic_item(draw, n: int):
    if n > 0 and draw(st.booleans()):
        return draw(st.integers(-n, n - 1))
    bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
    return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, 3])))


def _with_nones(draw, items: list) -> list:
    for _ in range(draw(st.integers(0, 2))):
        items.insert(draw(st.integers(0, len(items))), None)
    return items


def _basic_index(draw, s):
    k = draw(st.integers(0, len(s)))
    if draw(st.booleans()):
        lead = draw(st.integers(0, k))
        items = [_basic_item(draw, n) for n in s[:lead]] + [Ellipsis] + [_basic_item(draw, n) for n in s[len(s) - (k - lead):]]
    else:
        items = [_basic_item(draw, n) for n in s[:k]]
    items = _with_nones(draw, items)
    return items[0] if len(items) == 1 and draw(st.booleans()) else tuple(items)


def _getitem_basic(draw, dtype, device):
    x = _x(draw, dtype, device)
    return Sample((x, _basic_index(draw, tuple(x.shape))))


def _int_index(draw, n: int, ishape, device):
    """An int64 index into a dim of size ``n``, negative entries included (repeats likely)."""
    if n == 0:
        return torch.zeros([0] + list(ishape[1:]), dtype=torch.long, device=device)
    return index_tensor(draw, ishape, 2 * n, device) - n


def _getitem_tensor(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    ishape = shape(draw, max_dims=2, max_side=4)
    return Sample((x, _int_index(draw, x.shape[0], ishape, device)))


def _getitem_list(draw, dtype, device):
    x = _x(draw, dtype, device, min_dims=1)
    n = x.shape[0]
    items = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5)) if n else []
    return Sample((x, items))


def _getitem_mask(draw, dtype, device):
    x = _x(draw, dtype, device)
    k = draw(st.integers(min(1, x.ndim), x.ndim))
    start = draw(st.integers(0, x.ndim - k))
    mask = _seed_tensor(draw, lambda g: torch.rand(tuple(x.shape[start:start + k]), generator=g) > 0.5).to(device)
    if start == 0 and draw(st.booleans()):
        return Sample((x, mask))
    return Sample((x, (slice(None),) * start + (mask,)))


def _getitem_mixed(draw, dtype, device):
    """Advanced indices mixed with slices, ints, None and Ellipsis (adjacent or separated)."""
    x = _x(draw, dtype, device, min_dims=2)
    s = tuple(x.shape)
    ishape = draw(st.sampled_from([(), (3,), (1,), (2, 3), (2, 1)]))
    items = []
    for n in s[: draw(st.integers(2, len(s)))]:
        kind = draw(st.sampled_from(["tensor", "slice", "int", "list"])) if n else "slice"
        if kind == "tensor" or (kind == "list" and len(ishape) != 1):
            items.append(_int_index(draw, n, ishape, device))
        elif kind == "list":
            items.append([draw(st.integers(-n, n - 1)) for _ in range(ishape[0])])
        elif kind == "int":
            items.append(draw(st.integers(-n, n - 1)))
        else:
            items.append(_basic_item(draw, n) if n else slice(None))
    if draw(st.booleans()):
        items.append(Ellipsis)
    return Sample((x, tuple(_with_nones(draw, items))))


def _setitem_call(x, index, value):
    y = x.clone()  # a tensor in the graph: the write is recorded (torch's index_put_ / CopySlices)
    y[index] = value
    return y


def _setitem(draw, dtype, device):
    kind = draw(st.sampled_from([_getitem_basic, _getitem_mask, _getitem_tensor]))
    x, idx = kind(draw, dtype, device).args
    if isinstance(idx, torch.Tensor) and idx.dtype != torch.bool and x.ndim:
        # torch leaves the winner of a duplicated index unspecified: only distinct positions are comparable
        n = x.shape[0]
        if idx.remainder(max(n, 1)).unique().numel() != idx.numel():
            idx = torch.randperm(n, device=idx.device)[: min(n, idx.numel())]
    target = x[idx].shape
    if draw(st.booleans()):
        return Sample((x, idx, draw(st.sampled_from([0.0, 2.5]))))
    k = draw(st.integers(0, len(target)))
    value_shape = tuple(draw(st.sampled_from([1, v])) for v in target[len(target) - k:])
    return Sample((x, idx, tensor(draw, value_shape, dtype, device)))


def _T(x):
    return x.T


def _mT(x):
    return x.mT


# ----- registration --------------------------------------------------------------------------------------
register(
    *_fn("reshape", _reshape),
    *_method("view", _view),
    *_method("view_as", _as),
    *_method("reshape_as", _as),
    *_fn("squeeze", _squeeze),
    *_fn("unsqueeze", _unsqueeze),
    *_fn("flatten", _flatten),
    *_fn("unflatten", _unflatten),
    *_fn("permute", _permute),
    *_fn("transpose", _transpose),
    *_fn("swapaxes", _transpose),
    *_fn("swapdims", _transpose),
    *_fn("t", _matrix_or_less),
    *_fn("movedim", _movedim),
    *_fn("moveaxis", _movedim),
    OpMirror("Tensor.T", _T, _T, lambda d, t, v: Sample((_x(d, t, v, min_dims=2, max_dims=2),)),
             note="matrices: torch deprecates .T on other ranks (tests/test_indexing.py checks those)"),
    OpMirror("Tensor.mT", _mT, _mT, _batched_matrix),
    *_method("expand", _expand),
    *_method("expand_as", _expand_as),
    *_fn("broadcast_to", _expand),
    *_method("repeat", _repeat),
    *_fn("tile", _tile),
    OpMirror("cat", nx.cat, torch.cat, _cat),
    OpMirror("concat", nx.concat, torch.concat, _cat),
    OpMirror("concatenate", nx.concatenate, torch.concatenate, _cat),
    OpMirror("stack", nx.stack, torch.stack, _stack),
    *_fn("split", _split),
    *_fn("chunk", _chunk),
    *_fn("unbind", _unbind),
    *_fn("narrow", _narrow),
    *_fn("select", _select),
    *_fn("gather", _gather),
    *_fn("scatter_add", _scatter_add),
    *_fn("scatter", _scatter),
    OpMirror("scatter[value]", nx.scatter, torch.scatter, _scatter_value),
    *_fn("index_select", _index_select),
    *_fn("index_add", _index_add),
    *_fn("masked_fill", _masked_fill),
    *_fn("masked_select", _masked_select),
    *_fn("flip", _flip),
    *_fn("fliplr", _batched_matrix),
    *_fn("flipud", lambda d, t, v: Sample((_x(d, t, v, min_dims=1),))),
    *_fn("roll", _roll),
    *_method("contiguous", _unary),
    *_fn("clone", _unary),
    *_fn("tril", _triangle),
    *_fn("triu", _triangle),
    *_fn("diagonal", _diagonal),
    OpMirror("Tensor.__getitem__", operator.getitem, operator.getitem, _getitem_basic,
             note="ints, slices with steps, None, Ellipsis"),
    OpMirror("Tensor.__getitem__[int tensor]", operator.getitem, operator.getitem, _getitem_tensor,
             note="negative and repeated indices: gradients accumulate"),
    OpMirror("Tensor.__getitem__[list]", operator.getitem, operator.getitem, _getitem_list),
    OpMirror("Tensor.__getitem__[bool mask]", operator.getitem, operator.getitem, _getitem_mask),
    OpMirror("Tensor.__getitem__[mixed]", operator.getitem, operator.getitem, _getitem_mixed,
             note="advanced indices with slices, ints, None and Ellipsis"),
    OpMirror("Tensor.__setitem__", _setitem_call, _setitem_call, _setitem,
             note="written into a clone of the input, so both the input and the value get gradients"),
)
