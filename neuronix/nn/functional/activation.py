"""``nn.functional`` activations: torch's signatures and argument checks over the primitives of
``ops/activation.py`` (and the core ``relu``, ``tanh``, ``sigmoid``, ``softmax`` ops)."""

from __future__ import annotations

import warnings
from functools import partial

from neuronix.nn.functional.arguments import as_nx
from neuronix.ops import activation as _act
from neuronix.ops import elementwise as _ew
from neuronix.ops.inplace import in_place
from neuronix.ops.public import public
from neuronix.ops.registry import OpSpec, apply


def _activation(spec: OpSpec, input, inplace: bool = False, name: str | None = None, **attrs):
    """``spec`` applied to ``input``; ``inplace`` writes the result into ``input``, recorded as torch's
    in-place ``<name>_`` (``name`` defaults to the op's)."""
    if inplace:
        return in_place(input, f"{name or spec.name}_", partial(apply, spec), **attrs)
    return apply(spec, input, **attrs)


def _public_activation(spec: OpSpec, doc: str):
    """The public ``nn.functional.<op>(input, inplace=False)`` of an activation without options."""

    def fn(input, inplace=False):
        return _activation(spec, input, inplace)

    fn.__name__ = fn.__qualname__ = spec.name
    fn.__doc__ = doc
    return public(fn, namespace="nn.functional")


silu = _public_activation(_act.SILU, "``x * sigmoid(x)`` (also called swish).")
selu = _public_activation(_act.SELU, "``scale * elu(x, alpha)`` with the self-normalising constants.")
hardswish = _public_activation(_act.HARDSWISH, "``x * relu6(x + 3) / 6``.")
mish = _public_activation(_act.MISH, "``x * tanh(softplus(x))``.")


@public(namespace="nn.functional")
def relu(input, inplace=False):
    """``max(input, 0)``."""
    return in_place(input, "relu_", _ew.relu) if inplace else _ew.relu(input)


@public(namespace="nn.functional")
def relu6(input, inplace=False):
    """``min(max(input, 0), 6)``."""
    return _activation(_act.HARDTANH, input, inplace, "relu6", min_val=0.0, max_val=6.0)


@public(namespace="nn.functional")
def gelu(input, approximate="none"):
    """Gaussian error linear unit: ``x * Phi(x)``, or its tanh approximation with ``approximate='tanh'``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _activation(_act.GELU, input, approximate=approximate)


@public(namespace="nn.functional")
def tanh(input):
    """Hyperbolic tangent."""
    return _ew.tanh(input)


@public(namespace="nn.functional")
def sigmoid(input):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return _ew.sigmoid(input)


@public(namespace="nn.functional")
def elu(input, alpha=1.0, inplace=False):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _activation(_act.ELU, input, inplace, alpha=float(alpha))


@public(namespace="nn.functional")
def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    return _activation(_act.LEAKY_RELU, input, inplace, negative_slope=float(negative_slope))


@public(namespace="nn.functional")
def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold``."""
    return _activation(_act.SOFTPLUS, input, beta=float(beta), threshold=float(threshold))


@public(namespace="nn.functional")
def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``clamp(x, min_val, max_val)``."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    return _activation(_act.HARDTANH, input, inplace, min_val=float(min_val), max_val=float(max_val))


def _softmax_dim(input, dim):
    if dim is not None:
        return dim
    warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to include dim=X as an "
                  "argument.", stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1


def _cast(input, dtype):
    return as_nx(input) if dtype is None else as_nx(input).to(dtype)


@public(namespace="nn.functional")
def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (optionally computed in ``dtype``)."""
    return _cast(input, dtype).softmax(_softmax_dim(input, dim))


@public(namespace="nn.functional")
def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``x - logsumexp(x)`` along ``dim`` (optionally computed in ``dtype``)."""
    return _cast(input, dtype).log_softmax(_softmax_dim(input, dim))
