"""nn.functional activations beyond activation.py: celu, rrelu, prelu, hardsigmoid, softsign, the shrinks,
threshold, logsigmoid, softmin, glu, gumbel_softmax, the ``F.<name>_`` in-place forms and torch's top-level
twins (``torch.celu``, ``torch.threshold``, ``torch.prelu``, ...). Torch's signatures and argument checks over
the primitives of ``ops/activation_more.py``, or compositions where torch's own function is one
(softsign, tanhshrink, softmin, glu, gumbel_softmax: their derivatives are the composition's, as torch's).
"""

from __future__ import annotations

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
prelu = public(_more.prelu, namespace=_F)


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


hardshrink = public(_more.hardshrink, namespace=_F)


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
