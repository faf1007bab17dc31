"""nn.functional activations beyond activation.py: celu, rrelu, prelu, hardsigmoid, softsign, the shrinks,
threshold, logsigmoid, softmin, glu, gumbel_softmax, the ``F.<name>_`` in-place forms and torch's top-level
twins (``torch.celu``, ``torch.threshold``, ``torch.prelu``, ...). Torch's signatures and argument checks over
the primitives of ``ops/activation_more.py``, or compositions where torch's own function is one
(softsign, tanhshrink, softmin, glu, gumbel_softmax: their derivatives are the composition's, as torch's).
"""

from __future__ import annotations

import math
import warnings

import torch

from neuronix.nn.functional.activation import _activation, _cast, _softmax_dim, elu, hardtanh, leaky_relu, relu
from neuronix.nn.functional.arguments import as_nx
from neuronix.ops import activation as _act
from neuronix.ops import activation_more as _more
from neuronix.ops.inplace import in_place
from neuronix.ops.public import public
from neuronix.ops.registry import apply
from neuronix.tensor import Tensor, unwrap

_F = "nn.functional"


# ----- celu, selu --------------------------------------------------------------------------------------
def _celu(input, alpha, inplace):
    if alpha == 0:
        raise RuntimeError("celu: ZeroDivisionError: alpha must be nonzero (celu divides the input by alpha)")
    return _activation(_more.CELU, input, inplace, alpha=float(alpha))


@public(namespace=_F)
def celu(input, alpha=1.0, inplace=False):
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    return _celu(input, alpha, inplace)


@public(namespace=_F, name="celu_")
@public(method=False, name="celu_")
def celu_(input, alpha=1.0):
    """In-place ``celu``."""
    return _celu(input, alpha, True)


@public(method=False, name="celu")
def _celu_top(input, alpha=1.0):
    """``torch.celu``."""
    return _celu(input, alpha, False)


@public(method=False, name="selu")
def _selu_top(input):
    """``torch.selu``: ``scale * elu(x, alpha)`` with the self-normalising constants."""
    return apply(_act.SELU, input)


@public(namespace=_F, name="selu_")
@public(method=False, name="selu_")
def selu_(input):
    """In-place ``selu``."""
    return _activation(_act.SELU, input, True)


# ----- in-place forms of activation.py's functions ------------------------------------------------------
@public(namespace=_F, name="relu_")
@public(method=False, name="relu_")
def relu_(input):
    """In-place ``relu``."""
    return relu(input, inplace=True)


@public(namespace=_F)
def elu_(input, alpha=1.0):
    """In-place ``elu``."""
    return elu(input, alpha, inplace=True)


@public(namespace=_F)
def leaky_relu_(input, negative_slope=0.01):
    """In-place ``leaky_relu``."""
    return leaky_relu(input, negative_slope, inplace=True)


@public(namespace=_F)
def hardtanh_(input, min_val=-1.0, max_val=1.0):
    """In-place ``hardtanh``."""
    return hardtanh(input, min_val, max_val, inplace=True)


# ----- threshold ----------------------------------------------------------------------------------------
def _threshold(input, threshold, value, inplace):
    return _activation(_more.THRESHOLD, input, inplace, threshold=threshold, value=value)


@public(namespace=_F, name="threshold")
def threshold(input, threshold, value, inplace=False):
    """``value`` where ``input <= threshold``, else ``input``."""
    return _threshold(input, threshold, value, inplace)


@public(method=False, name="threshold")
def _threshold_top(input, threshold, value):
    """``torch.threshold``."""
    return _threshold(input, threshold, value, False)


@public(namespace=_F, name="threshold_")
@public(method=False, name="threshold_")
def threshold_(input, threshold, value):
    """In-place ``threshold``."""
    return _threshold(input, threshold, value, True)


# ----- rrelu --------------------------------------------------------------------------------------------
def _rrelu(input, lower, upper, training, inplace):
    lower, upper = float(lower), float(upper)
    if lower > upper:
        raise RuntimeError(f"rrelu: lower bound {lower} must be less than or equal to upper bound {upper}")
    if not training:  # torch's eval mode: leaky_relu with the mean slope, and its gradient
        return _activation(_act.LEAKY_RELU, input, inplace, "rrelu", negative_slope=(lower + upper) / 2)

    def draw(x, lower, upper):
        return apply(_more.RRELU_TRAIN, x, lower=lower, upper=upper)[0]

    if inplace:
        return in_place(input, "rrelu_", draw, lower=lower, upper=upper)
    return draw(input, lower, upper)


@public(namespace=_F)
def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Randomized leaky ReLU: in training each negative input's slope is drawn uniformly from
    ``[lower, upper]`` with torch's global generator (a seeded run draws what torch draws); otherwise
    the slope is ``(lower + upper) / 2``."""
    return _rrelu(input, lower, upper, training, inplace)


@public(namespace=_F, name="rrelu_")
@public(method=False, name="rrelu_")
def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    """In-place ``rrelu``."""
    return _rrelu(input, lower, upper, training, True)


@public(method=False, name="rrelu")
def _rrelu_top(input, lower=1.0 / 8, upper=1.0 / 3, training=False, generator=None):
    """``torch.rrelu``; only torch's default generator is supported."""
    if generator is not None:
        raise NotImplementedError("rrelu: a generator argument is not supported; seed the global one with "
                                  "nx.manual_seed (or torch.manual_seed)")
    return _rrelu(input, lower, upper, training, False)


# ----- prelu --------------------------------------------------------------------------------------------
@public(namespace=_F)
def prelu(input, weight):
    """``F.prelu``: ``torch.prelu`` (``nx.prelu``, the primitive's public name) under nn.functional's name."""
    return _more.prelu(input, weight)


# ----- hardsigmoid, shrinks, softsign, tanhshrink, logsigmoid -----------------------------------------------
@public(namespace=_F)
def hardsigmoid(input, inplace=False):
    """``relu6(x + 3) / 6``."""
    return _activation(_more.HARDSIGMOID, input, inplace)


def _lambd(op, lambd):
    if lambd < 0:
        raise RuntimeError(f"{op}: lambda must be greater or equal to 0, but found to be {lambd}.")
    return float(lambd)


@public(namespace=_F)
def softshrink(input, lambd=0.5):
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, 0 between."""
    return apply(_more.SOFTSHRINK, input, lambd=_lambd("softshrink", lambd))


@public(namespace=_F)
def hardshrink(input, lambd=0.5):
    """``F.hardshrink``: ``torch.hardshrink`` (``nx.hardshrink``) under nn.functional's name."""
    return _more.hardshrink(input, lambd)


@public(namespace=_F)
def softsign(input):
    """``x / (1 + |x|)`` (torch's own composition, so its gradient too)."""
    return input / (input.abs() + 1)


@public(namespace=_F)
def tanhshrink(input):
    """``x - tanh(x)`` (torch's own composition)."""
    return input - input.tanh()


@public(namespace=_F)
def logsigmoid(input):
    """``log(sigmoid(x))``, computed stably (torch's kernel)."""
    return apply(_act.LOG_SIGMOID, input)


@public(namespace=_F)
def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """``softmax(-x)`` along ``dim`` (optionally computed in ``dtype``)."""
    return _cast(-as_nx(input), dtype).softmax(_softmax_dim(input, dim))


@public(namespace=_F)
def glu(input, dim=-1):
    """Gated linear unit: ``a * sigmoid(b)`` for the two halves ``a``, ``b`` of ``input`` along ``dim``."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    wrapped = dim + input.ndim if dim < 0 else dim
    if not 0 <= wrapped < input.ndim:
        raise IndexError(f"glu: Dimension out of range (expected to be in range of [{-input.ndim}, "
                         f"{input.ndim - 1}], but got {dim})")
    size = input.shape[wrapped]
    if size % 2:
        raise RuntimeError(f"glu: Halving dimension must be even, but dimension {wrapped} is size {size}")
    a = input.narrow(wrapped, 0, size // 2)
    b = input.narrow(wrapped, size // 2, size // 2)
    return a * b.sigmoid()


@public(namespace=_F)
def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Softmax of ``(logits + gumbel noise) / tau``; the noise is drawn as torch draws it (``exponential_``
    on torch's global generator), so a seeded run draws what torch draws. ``hard=True`` returns the one-hot
    argmax with the soft sample's gradient (straight-through)."""
    raw = unwrap(logits)
    gumbels = -torch.empty_like(raw, memory_format=torch.legacy_contiguous_format).exponential_().log()
    y_soft = ((as_nx(logits) + gumbels) / tau).softmax(dim)
    if not hard:
        return y_soft
    index = y_soft.data.max(dim, keepdim=True)[1]
    y_hard = torch.zeros_like(raw, memory_format=torch.legacy_contiguous_format).scatter_(dim, index, 1.0)
    return Tensor(y_hard) - y_soft.detach() + y_soft


# ----- alpha and feature (channel) dropout --------------------------------------------------------------------------
# ATen's _dropout_impl, step for step: the noise is drawn by ``bernoulli_(1 - p)`` on torch's global generator (a
# seeded run draws torch's mask), one value per (sample, channel) for feature dropout; alpha dropout maps the kept and
# dropped values to keep the self-normalising mean and variance. The result is ``input * noise (+ b)``, whose gradient
# is torch's (a product with the noise).
_ALPHA = 1.7580993408473766


def _dropout_impl(input, p, train, *, feature: bool, alpha: bool, inplace: bool, name: str):
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = as_nx(input)
    if p == 0 or not train or x.numel() == 0:
        return x
    if feature and x.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")

    def apply_noise(t):
        if p == 1:
            return t * torch.zeros((), dtype=t.dtype, device=t.device)
        raw = unwrap(t)
        shape = tuple(raw.shape[:2]) + (1,) * (raw.ndim - 2) if feature else None
        # empty_like keeps the input's strides, as ATen's: the draws fill the noise in memory order
        noise = raw.new_empty(shape) if feature else torch.empty_like(raw)
        noise.bernoulli_(1 - p)
        if not alpha:
            return t * noise.div_(1 - p)
        a = 1.0 / math.sqrt((_ALPHA * _ALPHA * p + 1) * (1 - p))
        b = noise.add(-1).mul_(_ALPHA * a).add_(_ALPHA * a * p)
        return t * noise.mul_(a) + b

    return in_place(x, name + "_", apply_noise) if inplace else apply_noise(x)


def _checked_p(p):
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


@public(namespace=_F)
def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout that keeps the mean and variance of self-normalising (selu) activations."""
    _checked_p(p)
    return _dropout_impl(input, p, training, feature=False, alpha=True, inplace=inplace, name="alpha_dropout")


@public(namespace=_F)
def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Alpha dropout of whole channels (dim 1)."""
    _checked_p(p)
    return _dropout_impl(input, p, training, feature=True, alpha=True, inplace=inplace, name="feature_alpha_dropout")


def _channel_dropout(op, input, p, training, inplace, batched_dims, dims, stacklevel=3):
    _checked_p(p)
    x = as_nx(input)
    if x.ndim not in dims:
        if op == "dropout1d":
            raise RuntimeError(
                f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input. Note that dropout1d exists to "
                "provide channel-wise dropout on inputs with 1 spatial dimension, a channel dimension, and an optional "
                "batch dimension (i.e. 2D or 3D inputs).")
        warnings.warn(f"{op}: Received a {x.ndim}-D input to {op}, which is deprecated and will result in an error in a "
                      f"future release. To retain the behavior and silence this warning, please use dropout instead.",
                      stacklevel=stacklevel)
    unbatched = batched_dims is not None and x.ndim == batched_dims - 1
    if unbatched:
        x = x.unsqueeze_(0) if inplace else x.unsqueeze(0)
    out = _dropout_impl(x, p, training, feature=True, alpha=False, inplace=inplace, name="feature_dropout")
    if unbatched:
        out = out.squeeze_(0) if inplace else out.squeeze(0)
    return out


@public(namespace=_F)
def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability ``p``, scaling the rest by ``1 / (1 - p)``."""
    return _channel_dropout("dropout1d", input, p, training, inplace, 3, (2, 3))


@public(namespace=_F)
def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels (dim 1) of (N, C, H, W) inputs (a 3-D input is taken as (N, C, L), as torch)."""
    if as_nx(input).ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior "
                      "will change in a future release to interpret the input as one without a batch dimension, i.e. "
                      "shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using "
                      "dropout1d instead.", stacklevel=2)
    return _channel_dropout("dropout2d", input, p, training, inplace, None, (3, 4))


@public(namespace=_F)
def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs."""
    return _channel_dropout("dropout3d", input, p, training, inplace, 5, (4, 5))


def _top_dropout(name: str, feature: bool, alpha: bool, inplace: bool):
    def fn(input, p, train):
        if not feature and not alpha:  # torch.dropout: nn.functional.dropout's kernel (its own mask draw)
            from neuronix.nn.functional.dropout_embedding import dropout

            if not 0.0 <= p <= 1.0:
                raise RuntimeError(f"dropout probability has to be between 0 and 1, but got {p}")
            return dropout(input, p, train, inplace) if train and p > 0 else as_nx(input)
        return _dropout_impl(input, p, train, feature=feature, alpha=alpha, inplace=inplace, name=name)

    fn.__name__ = fn.__qualname__ = name + ("_" if inplace else "")
    fn.__doc__ = f"``torch.{fn.__name__}(input, p, train)``."
    return public(fn, method=False)


for _name, _feature, _alpha in (("dropout", False, False), ("alpha_dropout", False, True),
                                ("feature_dropout", True, False), ("feature_alpha_dropout", True, True)):
    _top_dropout(_name, _feature, _alpha, False)
    _top_dropout(_name, _feature, _alpha, True)
