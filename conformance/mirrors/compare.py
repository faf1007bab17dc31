"""Mirrors of the non-differentiable ops: comparisons, logical and bitwise ops, tests, arg-ops.

Named, as the other op families here, after its family in ``neuronix/ops/`` (``compare.py``).

Their results are bool or integer tensors (or Python bools): compared exactly. Inputs are
rounded to halves so ties, equalities and repeated values actually occur.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import Domain, broadcast_shapes, method, nonempty_shape, shape, tensor

TIES = Domain(-2.0, 2.0)


def _halves(draw, s, dtype, device):
    return (tensor(draw, s, dtype, device, TIES) * 2).round() / 2


def _pair(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample((_halves(draw, sa, dtype, device), _halves(draw, sb, dtype, device)))


def _bool_pair(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample((tensor(draw, sa, dtype, device) > 0, tensor(draw, sb, dtype, device) > 0))


def _int_pair(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample(((tensor(draw, sa, dtype, device) * 20).long(), (tensor(draw, sb, dtype, device) * 20).long()))


def _one(draw, dtype, device):
    return Sample((_halves(draw, shape(draw), dtype, device),))


def _bool_one(draw, dtype, device):
    return Sample((tensor(draw, shape(draw), dtype, device) > 0,))


def _int_one(draw, dtype, device):
    return Sample(((tensor(draw, shape(draw), dtype, device) * 20).long(),))


def _specials(draw, dtype, device):
    """Finite values with NaN, +inf and -inf sprinkled in."""
    x = tensor(draw, shape(draw), dtype, device).clone(memory_format=torch.contiguous_format)
    if x.numel():
        flat = x.view(-1)
        picks = draw(st.lists(st.integers(0, x.numel() - 1), max_size=3))
        for i, value in zip(picks, (float("nan"), float("inf"), float("-inf"))):
            flat[i] = value
    return Sample((x,))


def _close(draw, dtype, device):
    """Pairs that are equal, within 1e-7, within 1e-3, or far apart, with NaN sometimes."""
    a = tensor(draw, shape(draw), dtype, device)
    b = a * (1 + draw(st.sampled_from([0.0, 1e-7, 1e-3, 1.0])))
    if a.numel() and draw(st.booleans()):
        a, b = a.contiguous().clone(), b.contiguous().clone()
        a.view(-1)[0] = b.view(-1)[0] = float("nan")
    kwargs = draw(st.sampled_from([{}, {"rtol": 1e-3}, {"atol": 0.5}, {"equal_nan": True}]))
    return Sample((a, b), kwargs)


def _equal(draw, dtype, device):
    a = _halves(draw, shape(draw), dtype, device)
    b = a.clone() if draw(st.booleans()) else _halves(draw, a.shape, dtype, device)
    return Sample((a, b))


def _reduce_dim(draw, dtype, device):
    """An arg-reduction over all elements or one dim (keepdim drawn)."""
    s = nonempty_shape(draw)
    x = _halves(draw, s, dtype, device)
    if draw(st.booleans()):
        return Sample((x,))
    return Sample((x,), {"dim": draw(st.integers(-len(s), len(s) - 1)), "keepdim": draw(st.booleans())})


def _sort_dim(draw, dtype, device):
    s = nonempty_shape(draw)
    # distinct values: argsort of ties is not specified (torch's stable=False)
    x = tensor(draw, s, dtype, device)
    return Sample((x,), {"dim": draw(st.integers(-len(s), len(s) - 1)), "descending": draw(st.booleans())})


def _any_all(draw, dtype, device):
    s = shape(draw)
    x = tensor(draw, s, dtype, device) > draw(st.sampled_from([-3.0, 0.0, 3.0]))
    if s and draw(st.booleans()):
        return Sample((x,), {"dim": draw(st.integers(-len(s), len(s) - 1)), "keepdim": draw(st.booleans())})
    return Sample((x,))


def _nonzero(draw, dtype, device):
    return Sample((_halves(draw, shape(draw), dtype, device),), {"as_tuple": draw(st.booleans())})


def _count(draw, dtype, device):
    s = shape(draw)
    x = _halves(draw, s, dtype, device)
    if s and draw(st.booleans()):
        return Sample((x,), {"dim": draw(st.integers(-len(s), len(s) - 1))})
    return Sample((x,))


SAMPLES = {
    "eq": _pair, "ne": _pair, "lt": _pair, "le": _pair, "gt": _pair, "ge": _pair,
    "logical_and": _pair, "logical_or": _pair, "logical_xor": _pair, "logical_not": _one,
    "bitwise_and": _bool_pair, "bitwise_or": _bool_pair, "bitwise_xor": _bool_pair, "bitwise_not": _bool_one,
    "isnan": _specials, "isinf": _specials, "isfinite": _specials,
    "isclose": _close, "allclose": _close, "equal": _equal,
    "argmax": _reduce_dim, "argmin": _reduce_dim, "argsort": _sort_dim, "nonzero": _nonzero,
    "count_nonzero": _count, "any": _any_all, "all": _any_all,
}

for _name, _sample in SAMPLES.items():
    register(
        OpMirror(_name, getattr(nx, _name), getattr(torch, _name), _sample, grad=False),
        OpMirror(f"Tensor.{_name}", method(_name), method(_name), _sample, grad=False),
    )
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
    register(OpMirror(f"{_name}[int]", getattr(nx, _name), getattr(torch, _name), _int_pair, grad=False))
register(OpMirror("bitwise_not[int]", nx.bitwise_not, torch.bitwise_not, _int_one, grad=False))
