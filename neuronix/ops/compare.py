"""Non-differentiable ops: comparisons, logical ops, tests. Results never require grad."""

from __future__ import annotations

import torch

from neuronix.ops.registry import op_error, public
from neuronix.tensor import Tensor


def nondiff(name: str, torch_fn, namespace: str = ""):
    """A public op whose result is outside the graph (bool/integer results, as torch), in ``namespace``."""

    def fn(*args, **kwargs):
        raws = [a.data if isinstance(a, Tensor) else a for a in args]
        try:
            out = torch_fn(*raws, **kwargs)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            raise op_error(name, args, kwargs, err) from err
        if isinstance(out, tuple):  # nonzero(as_tuple=True)
            return tuple(Tensor._make(o, None) for o in out)
        return Tensor._make(out, None) if isinstance(out, torch.Tensor) else out

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``torch.{namespace + '.' if namespace else ''}{name}`` (not differentiable: the result never requires grad)."
    return public(fn, namespace=namespace)


eq = nondiff("eq", torch.eq)
ne = nondiff("ne", torch.ne)
lt = nondiff("lt", torch.lt)
le = nondiff("le", torch.le)
gt = nondiff("gt", torch.gt)
ge = nondiff("ge", torch.ge)
logical_and = nondiff("logical_and", torch.logical_and)
logical_or = nondiff("logical_or", torch.logical_or)
logical_xor = nondiff("logical_xor", torch.logical_xor)
logical_not = nondiff("logical_not", torch.logical_not)
bitwise_and = nondiff("bitwise_and", torch.bitwise_and)
bitwise_or = nondiff("bitwise_or", torch.bitwise_or)
bitwise_xor = nondiff("bitwise_xor", torch.bitwise_xor)
bitwise_not = nondiff("bitwise_not", torch.bitwise_not)
isnan = nondiff("isnan", torch.isnan)
isinf = nondiff("isinf", torch.isinf)
isfinite = nondiff("isfinite", torch.isfinite)
isclose = nondiff("isclose", torch.isclose)
allclose = nondiff("allclose", torch.allclose)
equal = nondiff("equal", torch.equal)
argmax = nondiff("argmax", torch.argmax)
argmin = nondiff("argmin", torch.argmin)
argsort = nondiff("argsort", torch.argsort)
nonzero = nondiff("nonzero", torch.nonzero)
count_nonzero = nondiff("count_nonzero", torch.count_nonzero)
any = nondiff("any", torch.any)
all = nondiff("all", torch.all)
