"""Hypothesis strategies for mirror inputs: shapes, broadcast shapes, tensors in a domain.

Every tensor strategy takes ``draw`` and returns a *torch* tensor; mirrors compose them in
plain functions ``sample(draw, dtype, device) -> Sample``. Shapes include 0-d tensors and
size-0 / size-1 dims; tensors are sometimes non-contiguous (a transposed or strided view
of a larger buffer) so ops cannot assume a layout.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from conformance.mirror import Sample


@dataclass(frozen=True)
class Domain:
    """Values are drawn uniformly from ``[low, high]``; ``away`` keeps ``|x - k| >= away`` for kinks ``k``."""

    low: float
    high: float
    kinks: tuple[float, ...] = ()
    away: float = 0.0


REAL = Domain(-2.0, 2.0)
POSITIVE = Domain(0.2, 2.0)
NONZERO = Domain(-2.0, 2.0, kinks=(0.0,), away=0.2)  # abs, sign, relu, division by it
PROB = Domain(0.05, 0.95)


def shape(draw, min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 5) -> tuple[int, ...]:
    """A shape with 0-d, size-0 and size-1 dims all possible."""
    return tuple(draw(st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims)))


def nonempty_shape(draw, min_dims: int = 1, max_dims: int = 4, max_side: int = 5) -> tuple[int, ...]:
    return shape(draw, min_dims, max_dims, 1, max_side)


def broadcast_shapes(draw, n: int, min_dims: int = 0, max_dims: int = 4, min_side: int = 0, max_side: int = 5):
    """``n`` mutually broadcastable input shapes (and their broadcast result shape)."""
    shapes = draw(
        mutually_broadcastable_shapes(
            num_shapes=n, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
        )
    )
    return list(shapes.input_shapes), shapes.result_shape


_salt = [0]  # see ``_values``


def reset_salt() -> None:
    """Start an example's value draws afresh: they then depend on that example's own draws alone,
    so an example replayed on its own (``repro --example K``) gets the values it got in the run."""
    _salt[0] = 0

# Points where ops are easiest to get wrong: zeros of both signs, the kinks of the common
# activations (0, +-1, +-3, 6, 20: relu, hardtanh, hardswish, relu6, softplus's threshold), rounding
# ties (+-0.5, 1.5, 2.5), the infinities and NaN. ``special_values`` draws tensors from these.
SPECIAL_POINTS = (0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.0, -2.0, 2.5, 3.0, -3.0, 6.0, 20.0,
                  math.inf, -math.inf, math.nan)
@dataclass
class SpecialDraw:
    """What a ``special_values`` block drew from: its points plus the kinks of every domain met."""

    points: tuple[float, ...]
    kinks: set = field(default_factory=set)

    def all_points(self) -> tuple[float, ...]:
        """The block's points and the drawn domains' kinks, each once (-0.0 kept apart from 0.0)."""
        every = self.points + tuple(sorted(self.kinks))
        return tuple({repr(float(p)): float(p) for p in every}.values())


_special: list[SpecialDraw] = []  # the innermost ``special_values`` block


@contextmanager
def special_values(points: tuple[float, ...] = SPECIAL_POINTS):
    """Inside this block every ``tensor`` a mirror's sample draws holds special values, not uniform ones.

    Each element is one of ``points`` or of the drawn domain's kinks (so every op also meets its own
    kinks: hardswish's +-3, floor's half-integers), in a cyclic order from a drawn start, so that
    a tensor with as many elements as points holds each of them, tensors drawn with the same start
    tie elementwise (``maximum(x, y)`` at ``x == y``) and long tensors repeat values (tied maxima).
    Yields a ``SpecialDraw`` naming the points used, kinks included, so a caller can cycle a drawn
    sample through all of them. The samples stay the mirrors' own, shapes and options included: the
    special-value sweep (``tests/test_special_values.py``) reuses every mirror instead of listing ops again.
    """
    drawn = SpecialDraw(tuple(points), set())
    _special.append(drawn)
    try:
        yield drawn
    finally:
        _special.pop()


def _special_values(draw, shape, dtype, device, domain: Domain) -> torch.Tensor:
    drawn = _special[-1]
    drawn.kinks.update(domain.kinks)
    points = list(SpecialDraw(drawn.points, set(domain.kinks)).all_points())
    start = draw(st.integers(0, len(points) - 1))
    step = draw(st.sampled_from([1, 1, 1, 2, 3, 5]))  # other steps pair other neighbours in binary ops
    n = math.prod(shape)
    index = (start + step * torch.arange(n)) % len(points)
    return torch.tensor(points, dtype=torch.float64)[index].reshape(shape).to(dtype=dtype, device=device)


def _values(draw, shape, dtype, device, domain: Domain) -> torch.Tensor:
    if _special:
        return _special_values(draw, shape, dtype, device, domain)
    # Hypothesis likes to draw the same small seed for every tensor of an example; a running
    # salt keeps two inputs from being identical (x / x is exactly 1: on a jump of floor).
    _salt[0] += 1
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed * 7919 + _salt[0] % 7919)
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    x = domain.low + (domain.high - domain.low) * u
    for k in domain.kinks:
        near = (x - k).abs() < domain.away
        x = torch.where(near, k + torch.where(x >= k, domain.away, -domain.away) * (1 + u), x)
    if dtype.is_complex:  # an independent imaginary part from the same domain (a cast real draw would have none)
        x = torch.complex(x, _values(draw, shape, torch.float64, "cpu", domain))
    return x.to(dtype=dtype, device=device)


def tensor(draw, shape, dtype, device, domain: Domain = REAL, contiguous: bool | None = None) -> torch.Tensor:
    """A tensor of ``shape`` with values in ``domain``; non-contiguous (transposed, strided, channels-last)
    when drawn so (or asked)."""
    shape = tuple(shape)
    layout = "contiguous" if contiguous else draw(st.sampled_from(["contiguous", "transposed", "strided", "channels_last"]))
    if layout == "channels_last" and len(shape) != 4:
        layout = "contiguous"  # NHWC needs four dims
    if contiguous is False and layout == "contiguous":
        layout = "strided"
    if layout == "channels_last":  # the values of a contiguous draw, NHWC in memory
        return _values(draw, shape, dtype, device, domain).contiguous(memory_format=torch.channels_last)
    # (stride-0 expanded inputs: conformance/kinds/layouts.py reruns each example with them, since the
    # special-value and in-place guard checks write into the sample's tensors, which stride 0 forbids)
    if layout == "transposed" and len(shape) >= 2:
        flipped = shape[:-2] + (shape[-1], shape[-2])
        return _values(draw, flipped, dtype, device, domain).transpose(-1, -2)
    if layout == "strided" and len(shape) >= 1:
        wide = shape[:-1] + (shape[-1] * 2,)
        return _values(draw, wide, dtype, device, domain)[..., ::2]
    return _values(draw, shape, dtype, device, domain)


def index_tensor(draw, shape, high: int, device) -> torch.Tensor:
    """An int64 tensor of ``shape`` with values in ``[0, high)``."""
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, max(high, 1), tuple(shape), generator=gen).to(device)


# ----- ready-made samplers for the common op shapes -------------------------------------
def unary(domain: Domain = REAL, **kwargs):
    """``f(x)`` for any shape."""

    def sample(draw, dtype, device):
        return Sample((tensor(draw, shape(draw), dtype, device, domain),), dict(kwargs))

    return sample


def binary(a: Domain = REAL, b: Domain = REAL, **kwargs):
    """``f(x, y)`` with mutually broadcastable shapes."""

    def sample(draw, dtype, device):
        (sa, sb), _ = broadcast_shapes(draw, 2)
        return Sample((tensor(draw, sa, dtype, device, a), tensor(draw, sb, dtype, device, b)), dict(kwargs))

    return sample


def ternary(a: Domain = REAL, b: Domain = REAL, c: Domain = REAL, **kwargs):
    """``f(x, y, z)`` with mutually broadcastable shapes."""

    def sample(draw, dtype, device):
        shapes, _ = broadcast_shapes(draw, 3)
        doms = (a, b, c)
        return Sample(tuple(tensor(draw, s, dtype, device, d) for s, d in zip(shapes, doms)), dict(kwargs))

    return sample


def method(name: str):
    """``lambda x, *a, **k: x.<name>(*a, **k)``: call a Tensor method on either library's tensor."""

    def call(x, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)

    call.__name__ = f"Tensor.{name}"
    return call
