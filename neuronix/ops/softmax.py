"""softmax and log_softmax along one dim: the primitives ``nn.functional`` reuses.

Both save only their output: ``softmax``'s VJP is ``y * (g - sum(g * y))`` and
``log_softmax``'s is ``g - exp(y) * sum(g)``, written in neuronix ops so higher
derivatives come from recording them.
"""

from __future__ import annotations

import torch

from neuronix.ops.reduce import _dims, sum
from neuronix.ops.registry import apply, defop, public


# A plain backward runs torch's fused kernels (one kernel instead of four: the registry's
# ``fused``); the rules are the formulas in neuronix ops, recorded under create_graph.
def _softmax_kernel(g, out, x, needs, dim, dtype):
    return (torch._softmax_backward_data(g, out, dim, out.dtype),)


def _log_softmax_kernel(g, out, x, needs, dim, dtype):
    return (torch._log_softmax_backward_data(g, out, dim, out.dtype),)


_SOFTMAX = defop(
    "softmax",
    lambda x, dim, dtype: torch.softmax(x, dim, dtype=dtype),
    lambda g, out, x, dim, dtype: out * (g - sum(g * out, dim, keepdim=True)),
    saves=(),
    saves_out=True,
    fused=_softmax_kernel,
)
_LOG_SOFTMAX = defop(
    "log_softmax",
    lambda x, dim, dtype: torch.log_softmax(x, dim, dtype=dtype),
    lambda g, out, x, dim, dtype: g - out.exp() * sum(g, dim, keepdim=True),
    saves=(),
    saves_out=True,
    fused=_log_softmax_kernel,
)


def _dim(name: str, input, dim) -> int:
    if not isinstance(dim, int):
        raise TypeError(f"{name}: dim must be an int (the dim to normalise over), got {dim!r}")
    dims = _dims(dim, input.ndim)
    return dims[0] if dims else 0


@public
def softmax(input, dim: int, dtype=None):
    """``exp(x) / sum(exp(x), dim)``, as ``torch.softmax``; ``dtype`` casts the input first."""
    return apply(_SOFTMAX, input, dim=_dim("softmax", input, dim), dtype=dtype)


@public
def log_softmax(input, dim: int, dtype=None):
    """``x - logsumexp(x, dim)``, as ``torch.log_softmax``; ``dtype`` casts the input first."""
    return apply(_LOG_SOFTMAX, input, dim=_dim("log_softmax", input, dim), dtype=dtype)
