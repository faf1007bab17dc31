"""softmax and log_softmax along one dim: the primitives ``nn.functional`` reuses.

Both save only their output: ``softmax``'s VJP is ``y * (g - sum(g * y))`` and
``log_softmax``'s is ``g - exp(y) * sum(g)``, written in neuronix ops so higher
derivatives come from recording them.
"""

from __future__ import annotations

import torch

from neuronix.autograd import mode
from neuronix.ops.reduce import _dims, sum
from neuronix.ops.registry import apply, defop, public
from neuronix.tensor import Tensor

# A plain backward runs torch's fused kernels (one kernel instead of four); recording
# (create_graph) runs the formulas in neuronix ops, so higher derivatives are recorded.


def _softmax_vjp(g, out, x, dim, dtype):
    if not mode.is_grad_enabled():
        return Tensor._make(torch._softmax_backward_data(g.data, out.data, dim, out.data.dtype), None)
    return out * (g - sum(g * out, dim, keepdim=True))


def _log_softmax_vjp(g, out, x, dim, dtype):
    if not mode.is_grad_enabled():
        return Tensor._make(torch._log_softmax_backward_data(g.data, out.data, dim, out.data.dtype), None)
    return g - out.exp() * sum(g, dim, keepdim=True)


_SOFTMAX = defop(
    "softmax",
    lambda x, dim, dtype: torch.softmax(x, dim, dtype=dtype),
    _softmax_vjp,
    saves=(),
    saves_out=True,
)
_LOG_SOFTMAX = defop(
    "log_softmax",
    lambda x, dim, dtype: torch.log_softmax(x, dim, dtype=dtype),
    _log_softmax_vjp,
    saves=(),
    saves_out=True,
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
