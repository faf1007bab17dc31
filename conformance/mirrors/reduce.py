"""Mirrors of the reductions, scans and softmax/log_softmax.

Samples cover ``dim`` as None / int / negative int / tuple, ``keepdim`` both ways, 0-d
inputs, size-0 and size-1 dims where torch allows them (sum and prod over an empty dim;
max/amax/logsumexp/norm/var over one raise or give NaN in torch, so those reduced dims are
kept non-empty) and non-contiguous inputs (``strategies.tensor``).
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import NONZERO, REAL, Domain, broadcast_shapes, index_tensor, method, shape, tensor

# |x| in [0.6, 1.4]: products of hundreds of elements stay representable and no factor is near 0
PROD = Domain(-1.4, 1.4, kinks=(0.0,), away=0.6)


def _dim(draw, ndim: int, tuple_ok: bool = True, none_ok: bool = True):
    """A ``dim`` argument: None, an int, a negative int or a tuple of distinct dims."""
    rank = max(ndim, 1)
    kinds = ["int", "negative"] + (["tuple"] if tuple_ok else []) + (["none"] if none_ok else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(0, rank - 1))
    if kind == "negative":
        return draw(st.integers(-rank, -1))
    dims = draw(st.permutations(range(rank)))[: draw(st.integers(1, rank))]
    return tuple(d - rank if draw(st.booleans()) else d for d in dims)


def _reduced(ndim: int, dim) -> list[int]:
    if ndim == 0:
        return []
    if dim is None:
        return list(range(ndim))
    dims = (dim,) if isinstance(dim, int) else dim
    return sorted(d % ndim for d in dims)


def _grow(sizes: list[int], dims: list[int], count: int) -> list[int]:
    """``sizes`` with every reduced dim non-empty and at least ``count`` elements reduced."""
    for d in dims:
        sizes[d] = max(sizes[d], 1)
    if dims and math.prod(sizes[d] for d in dims) < count:
        sizes[dims[0]] = count
    return sizes


def reduction(domain: Domain = REAL, *, tuple_ok: bool = True, none_ok: bool = True, nonempty: bool = False,
              count: int = 1, keepdim: bool = True, min_side: int = 0, **fixed):
    """``f(x, dim=..., keepdim=...)``; ``fixed`` kwargs are passed as drawn lists (one is picked)."""

    def sample(draw, dtype, device):
        sizes = list(shape(draw, min_side=min_side))
        if count > 1 and not sizes:
            sizes = [count]
        dim = _dim(draw, len(sizes), tuple_ok, none_ok)
        if nonempty or count > 1:
            sizes = _grow(sizes, _reduced(len(sizes), dim), count)
        kwargs = {k: draw(st.sampled_from(v)) for k, v in fixed.items()}
        if dim is not None:
            kwargs["dim"] = dim
            if keepdim:
                kwargs["keepdim"] = draw(st.booleans())
        return Sample((tensor(draw, sizes, dtype, device, domain),), kwargs)

    return sample


def _pair(name: str, sample, **kw) -> list[OpMirror]:
    """``nx.<name>`` vs ``torch.<name>`` and ``Tensor.<name>`` on the same samples."""
    fn = OpMirror(name, getattr(nx, name), getattr(torch, name), sample, **kw)
    return [fn, OpMirror(f"Tensor.{name}", method(name), method(name), sample, **kw)]


def _variant(name: str, variant: str, sample, **kw) -> OpMirror:
    return OpMirror(f"{name}[{variant}]", getattr(nx, name), getattr(torch, name), sample, **kw)


# ----- sum, mean, prod ----------------------------------------------------------------
def _int_sum(draw, dtype, device):
    x = index_tensor(draw, shape(draw), 7, device) - 3
    return Sample((x,), {"dtype": draw(st.sampled_from([None, torch.float64, torch.int32]))})


def _prod(draw, dtype, device):
    sizes = list(shape(draw))
    if draw(st.booleans()) or not sizes:
        return Sample((tensor(draw, sizes, dtype, device, PROD),))
    dim = draw(st.integers(-len(sizes), len(sizes) - 1))
    return Sample((tensor(draw, sizes, dtype, device, PROD), dim, draw(st.booleans())))


def _prod_zeros(draw, dtype, device):
    """One or two exact zeros: the gradient is the product of the others (torch's zero-safe rule)."""
    sizes = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3)))]
    x = tensor(draw, sizes, dtype, device, PROD).clone()
    for _ in range(draw(st.integers(1, 2))):
        x[tuple(draw(st.integers(0, n - 1)) for n in sizes)] = 0
    if draw(st.booleans()):
        return Sample((x,))
    return Sample((x, draw(st.integers(-len(sizes), len(sizes) - 1)), draw(st.booleans())))


register(
    *_pair("sum", reduction()),
    _variant("sum", "dtype", reduction(dtype=[torch.float64])),
    OpMirror("sum[int]", nx.sum, torch.sum, _int_sum, grad=False),
    *_pair("mean", reduction(nonempty=True)),
    _variant("mean", "dtype", reduction(nonempty=True, dtype=[torch.float64])),
    *_pair("prod", _prod),
    _variant("prod", "zeros", _prod_zeros),
)


# ----- max / min / amax / amin --------------------------------------------------------
def _full(draw, dtype, device):
    return Sample((tensor(draw, shape(draw, min_side=1), dtype, device),))


def _along(draw, dtype, device):
    sizes = list(shape(draw))
    dim = _dim(draw, len(sizes), tuple_ok=False, none_ok=False)
    sizes = _grow(sizes, _reduced(len(sizes), dim), 1)
    return Sample((tensor(draw, sizes, dtype, device), dim, draw(st.booleans())))


def _binary(draw, dtype, device):
    (sa, sb), _ = broadcast_shapes(draw, 2)
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)))


def _ties(draw, dtype, device):
    """Values on a coarse grid, so maxima tie: amax/amin and full max/min share the gradient evenly."""
    sizes = list(shape(draw, min_side=1))
    dim = _dim(draw, len(sizes))
    x = torch.round(tensor(draw, sizes, torch.float64, device) * 1.5).to(dtype)
    kwargs = {} if dim is None else {"dim": dim, "keepdim": draw(st.booleans())}
    return Sample((x,), kwargs)


TIES = "ties are kinks: finite differences see one side; torch's even split is the convention compared"
for _name in ("max", "min"):
    register(
        *_pair(_name, _full),
        OpMirror(f"{_name}[dim]", getattr(nx, _name), getattr(torch, _name), _along),
        OpMirror(f"Tensor.{_name}[dim]", method(_name), method(_name), _along),
        _variant(_name, "other", _binary),
        _variant(_name, "ties", lambda d, t, v: Sample(_ties(d, t, v).args), fd=False, note=TIES),
    )
for _name in ("amax", "amin"):
    register(*_pair(_name, reduction(nonempty=True)), _variant(_name, "ties", _ties, fd=False, note=TIES))


# ----- var / std ----------------------------------------------------------------------
def _spread(min_count: int):
    def sample(draw, dtype, device):
        correction = draw(st.sampled_from([0, 1, 2]))
        # no empty dims at all: torch warns about "degrees of freedom <= 0" for an empty output
        s = reduction(nonempty=True, count=max(min_count, correction + 1), min_side=1)(draw, dtype, device)
        s.kwargs["correction"] = correction
        return s

    return sample


def _unbiased(min_count: int):
    """The legacy overloads: ``var(x, unbiased)`` and ``var(x, dim, unbiased, keepdim)``."""

    def sample(draw, dtype, device):
        unbiased = draw(st.booleans())
        if draw(st.booleans()):
            sizes = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3)))]
            sizes[0] = max(sizes[0], min_count)
            return Sample((tensor(draw, sizes, dtype, device), unbiased))
        s = reduction(nonempty=True, count=min_count, tuple_ok=False, none_ok=False, min_side=1)(draw, dtype, device)
        return Sample(s.args + (s.kwargs["dim"], unbiased, s.kwargs["keepdim"]))

    return sample


for _name, _count in (("var", 1), ("std", 2)):  # std: a zero deviation has no derivative
    register(*_pair(_name, _spread(_count)), _variant(_name, "unbiased", _unbiased(max(_count, 2))))


# ----- logsumexp, norm ----------------------------------------------------------------
def _norm(draw, dtype, device):
    p = draw(st.sampled_from([2, 1, math.inf, -math.inf, 3, 0.5, 0, "fro"]))
    s = reduction(NONZERO, nonempty=True)(draw, dtype, device)
    dim = s.kwargs.get("dim")
    if p == "fro" and isinstance(dim, tuple) and len(dim) > 2:
        s.kwargs["dim"] = dim[:2]
    s.kwargs["p"] = p
    return s


register(
    *_pair("logsumexp", reduction(nonempty=True, none_ok=False)),
    *_pair("norm", _norm),
)


# ----- cumsum -------------------------------------------------------------------------
def _cumsum(with_dtype: bool):
    def sample(draw, dtype, device):
        sizes = shape(draw)
        dim = _dim(draw, len(sizes), tuple_ok=False, none_ok=False)
        kwargs = {"dtype": torch.float64} if with_dtype else {}
        return Sample((tensor(draw, sizes, dtype, device), dim), kwargs)

    return sample


def _cumprod(zeros: bool):
    def sample(draw, dtype, device):
        sizes = shape(draw, min_side=1 if zeros else 0)
        x = tensor(draw, sizes, dtype, device, PROD).clone()
        if zeros and sizes:
            for _ in range(draw(st.integers(1, 2))):
                x[tuple(draw(st.integers(0, n - 1)) for n in sizes)] = 0
        return Sample((x, _dim(draw, len(sizes), tuple_ok=False, none_ok=False)))

    return sample


register(
    *_pair("cumsum", _cumsum(False)),
    _variant("cumsum", "dtype", _cumsum(True)),
    *_pair("cumprod", _cumprod(False)),
    _variant("cumprod", "zeros", _cumprod(True)),
)


# ----- softmax / log_softmax ----------------------------------------------------------
def _softmax(with_dtype: bool):
    def sample(draw, dtype, device):
        sizes = shape(draw)
        dim = _dim(draw, len(sizes), tuple_ok=False, none_ok=False)
        args = (tensor(draw, sizes, dtype, device, Domain(-4.0, 4.0)), dim)
        return Sample(args, {"dtype": torch.float64} if with_dtype else {})

    return sample


for _name in ("softmax", "log_softmax"):
    register(*_pair(_name, _softmax(False)), _variant(_name, "dtype", _softmax(True)))
