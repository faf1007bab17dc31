"""Mirrors of the nn.functional activations, distances, normalisations, attention and losses that
``nn_functional.py`` does not hold (issue 13), with their torch top-level twins and ``F.<name>_`` forms.

Inputs stay away from each op's kinks for the finite differences (the special-value check probes
them); the in-place forms run on a non-leaf copy of the input, so the gradient reaches the leaf.
Random ops (rrelu in training, gumbel_softmax) run after the same ``manual_seed`` on both sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import neuronix as nx
import neuronix.nn.functional as F
from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.strategies import NONZERO, REAL, Domain, method, nonempty_shape, shape, tensor, unary

WIDE = Domain(-4.0, 4.0)


def _name(name: str, variant: str = "") -> str:
    return f"nn.functional.{name}" + (f"[{variant}]" if variant else "")


def _mirror(name: str, sample, variant: str = "", **kw) -> OpMirror:
    return OpMirror(_name(name, variant), getattr(F, name), getattr(TF, name), sample, **kw)


def _top(name: str, sample, variant: str = "", **kw) -> OpMirror:
    """``nx.<name>`` against ``torch.<name>``."""
    return OpMirror(name + (f"[{variant}]" if variant else ""), getattr(nx, name), getattr(torch, name), sample, **kw)


def _on_copy(fn):
    """``fn`` (an in-place function) applied to a non-leaf copy of the first input: a leaf that requires
    grad cannot change in place, and the copy carries the gradient to it."""

    def call(x, *args, **kwargs):
        return fn(x.clone(), *args, **kwargs)

    call.__name__ = getattr(fn, "__name__", "in_place")
    return call


def _in_place(name: str, sample, namespace=(F, TF), prefix: str = "nn.functional.", **kw) -> OpMirror:
    nx_ns, torch_ns = namespace
    return OpMirror(prefix + name, _on_copy(getattr(nx_ns, name)), _on_copy(getattr(torch_ns, name)), sample, **kw)


def _seeded(fn):
    """``fn`` after ``manual_seed(seed)`` in a forked RNG: both libraries must draw the same numbers."""

    def call(*args, seed, **kwargs):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return fn(*args, **kwargs)

    return call


def _seed(draw) -> int:
    return draw(st.integers(0, 2**31 - 1))


# ----- activations ----------------------------------------------------------------------------------------
ELU_LIKE = Domain(-3.0, 3.0, kinks=(0.0,), away=0.2)
HARDSIGMOID = Domain(-5.0, 5.0, kinks=(-3.0, 3.0), away=0.2)
SHRINK = Domain(-2.0, 2.0, kinks=(-0.5, 0.5), away=0.15)
SHRINK_1 = Domain(-2.0, 2.0, kinks=(-1.0, 1.0), away=0.15)
THRESHOLD = Domain(-2.0, 2.0, kinks=(0.5,), away=0.15)

register(
    _mirror("celu", unary(ELU_LIKE)),
    _mirror("celu", unary(ELU_LIKE, alpha=0.5), "alpha"),
    _top("celu", unary(ELU_LIKE, alpha=2.0)),
    _top("selu", unary(ELU_LIKE)),
    _mirror("hardsigmoid", unary(HARDSIGMOID), gradgrad=False,
            note="torch has no second derivative (derivative for aten::hardsigmoid_backward is not implemented)"),
    _mirror("softshrink", unary(SHRINK)),
    _mirror("softshrink", unary(SHRINK_1, lambd=1.0), "lambd"),
    _mirror("hardshrink", unary(SHRINK)),
    _mirror("hardshrink", unary(SHRINK_1, lambd=1.0), "lambd"),
    _top("hardshrink", unary(SHRINK)),
    OpMirror("Tensor.hardshrink", method("hardshrink"), method("hardshrink"), unary(SHRINK_1, lambd=1.0)),
    _mirror("threshold", unary(THRESHOLD, threshold=0.5, value=-3.0)),
    _top("threshold", unary(THRESHOLD, threshold=0.5, value=2.0)),
    _mirror("softsign", unary(NONZERO)),
    _mirror("tanhshrink", unary(WIDE)),
    _mirror("logsigmoid", unary(WIDE)),
    _mirror("rrelu", unary(NONZERO)),
    _mirror("rrelu", unary(NONZERO, lower=0.2, upper=0.6, training=False), "lower,upper"),
    _top("rrelu", unary(NONZERO, lower=0.05, upper=0.5)),
)

# the F.<name>_ in-place forms and torch's top-level in-place twins
register(
    _in_place("celu_", unary(ELU_LIKE, alpha=0.7)),
    _in_place("selu_", unary(ELU_LIKE)),
    _in_place("relu_", unary(NONZERO)),
    _in_place("elu_", unary(ELU_LIKE, alpha=0.4)),
    _in_place("leaky_relu_", unary(NONZERO, negative_slope=0.2)),
    _in_place("hardtanh_", unary(Domain(-2.0, 2.0, kinks=(-0.5, 1.5), away=0.2), min_val=-0.5, max_val=1.5)),
    _in_place("threshold_", unary(THRESHOLD, threshold=0.5, value=1.0)),
    _in_place("rrelu_", unary(NONZERO, lower=0.1, upper=0.3)),
    *(_in_place(n, s, (nx, torch), prefix="") for n, s in (
        ("celu_", unary(ELU_LIKE)), ("selu_", unary(ELU_LIKE)), ("relu_", unary(NONZERO)),
        ("threshold_", unary(THRESHOLD, threshold=0.5, value=-1.0)), ("rrelu_", unary(NONZERO)))),
)


def _rrelu_train(draw, dtype, device):
    x = tensor(draw, shape(draw), dtype, device, NONZERO)
    lower, upper = draw(st.sampled_from(((1.0 / 8, 1.0 / 3), (0.1, 0.9), (0.3, 0.3))))
    return Sample((x, lower, upper, True), {"seed": _seed(draw)})


_NO_HALF_RRELU = "torch's CPU rrelu_with_noise kernel has no float16"
register(
    OpMirror(_name("rrelu", "training"), _seeded(F.rrelu), _seeded(TF.rrelu), _rrelu_train,
             dtypes=FLOATS + (torch.bfloat16,),
             note="same seed on both sides: each negative input's slope must be torch's draw; " + _NO_HALF_RRELU),
    OpMirror(_name("rrelu_", "training"), _seeded(_on_copy(F.rrelu_)), _seeded(_on_copy(TF.rrelu_)), _rrelu_train,
             dtypes=FLOATS + (torch.bfloat16,), note="same seed on both sides; " + _NO_HALF_RRELU),
)


def _prelu(draw, dtype, device):
    per_channel = draw(st.booleans())
    rank = draw(st.integers(2, 4)) if per_channel else draw(st.integers(0, 4))
    sizes = nonempty_shape(draw, rank, rank, 4) if rank else ()
    x = tensor(draw, sizes, dtype, device, NONZERO)
    w = tensor(draw, (sizes[1],) if per_channel else (1,), dtype, device, Domain(-1.0, 1.0))
    return Sample((x, w))


register(
    _mirror("prelu", _prelu),
    _top("prelu", _prelu),
    OpMirror("Tensor.prelu", method("prelu"), method("prelu"), _prelu),
)


def _softmin(dtype_arg: bool):
    def sample(draw, dtype, device):
        sizes = nonempty_shape(draw, 1, 4)
        kwargs = {"dim": draw(st.integers(-len(sizes), len(sizes) - 1))}
        if dtype_arg:
            kwargs["dtype"] = torch.float64
        return Sample((tensor(draw, sizes, dtype, device, WIDE),), kwargs)

    return sample


def _glu(draw, dtype, device):
    sizes = list(nonempty_shape(draw, 1, 4))
    dim = draw(st.integers(-len(sizes), len(sizes) - 1))
    sizes[dim] = 2 * draw(st.integers(1, 3))
    x = tensor(draw, sizes, dtype, device, WIDE)
    return Sample((x,), {"dim": dim} if draw(st.booleans()) or dim != -1 else {})


def _gumbel(hard: bool):
    def sample(draw, dtype, device):
        sizes = nonempty_shape(draw, 1, 3)
        kwargs = {"tau": draw(st.sampled_from((1.0, 0.5, 2.0))), "hard": hard,
                  "dim": draw(st.integers(-len(sizes), len(sizes) - 1)), "seed": _seed(draw)}
        return Sample((tensor(draw, sizes, dtype, device, REAL),), kwargs)

    return sample


register(
    _mirror("softmin", _softmin(False)),
    _mirror("softmin", _softmin(True), "dtype"),
    _mirror("glu", _glu),
    OpMirror(_name("gumbel_softmax"), _seeded(F.gumbel_softmax), _seeded(TF.gumbel_softmax), _gumbel(False),
             note="same seed on both sides: the Gumbel noise must be torch's draw"),
    OpMirror(_name("gumbel_softmax", "hard"), _seeded(F.gumbel_softmax), _seeded(TF.gumbel_softmax), _gumbel(True), fd=False,
             note="no finite differences: the value is the piecewise-constant one-hot, the gradient the soft sample's "
                  "(straight-through, by definition); same seed on both sides"),
)
