"""torch's tensor predicates as functions (``torch.is_complex(x)``, ``torch.numel(x)``, ...): Python results.

They read the wrapped tensor's metadata (or, for ``is_nonzero``, its one value); nothing is recorded.
``is_floating_point`` and ``numel`` are ``nx.Tensor`` methods already (``tensor.py``), so only their
function spellings are added here.
"""

from __future__ import annotations

import torch

from neuronix.ops.compare import nondiff
from neuronix.ops.registry import public
from neuronix.tensor import Tensor, unwrap

is_complex = nondiff("is_complex", torch.is_complex)
is_conj = nondiff("is_conj", torch.is_conj)
is_neg = nondiff("is_neg", torch.is_neg)
is_signed = nondiff("is_signed", torch.is_signed)
is_nonzero = nondiff("is_nonzero", torch.is_nonzero)  # a one-element tensor's truth value (raises otherwise)
is_same_size = nondiff("is_same_size", torch.is_same_size)


@public(method=False)
def is_floating_point(input) -> bool:
    """``torch.is_floating_point``: whether ``input``'s dtype is a floating-point one."""
    return torch.is_floating_point(unwrap(input))


@public(method=False)
def numel(input) -> int:
    """``torch.numel``: the number of elements of ``input``."""
    return torch.numel(unwrap(input))


@public(method=False)
def is_tensor(obj) -> bool:
    """``torch.is_tensor``'s question asked of Neuronix: whether ``obj`` is an ``nx.Tensor``."""
    return isinstance(obj, Tensor)


@public
def resolve_neg(input):
    """``torch.resolve_neg``: ``input`` itself unless its data carries torch's negative bit (a lazily negated
    view, which only torch's complex conjugation views create), which is then made physical."""
    data = unwrap(input)
    return input if not data.is_neg() else Tensor._make(data.resolve_neg(), None)


# type promotion, as torch's (the dtypes of nx.Tensor arguments are their data's)
@public(method=False)
def result_type(tensor1, tensor2):
    """``torch.result_type``: the dtype an arithmetic op on the two (tensors or numbers) would give."""
    return torch.result_type(unwrap(tensor1), unwrap(tensor2))


@public(method=False)
def promote_types(type1, type2):
    """``torch.promote_types``: the smallest dtype both promote to."""
    return torch.promote_types(type1, type2)


@public(method=False)
def can_cast(from_, to):
    """``torch.can_cast``: whether torch's casting rules allow ``from_`` to ``to``. A Python function (torch's is a
    builtin without a signature) so that signature checks and ``help()`` see torch's parameter names."""
    return torch.can_cast(from_, to)


@public(method=False)
def detach(input):
    """``torch.detach(input)``: the function spelling of ``Tensor.detach`` (a new tensor outside the graph)."""
    return input.detach()


@public(method=False)
def unravel_index(indices, shape):
    """``torch.unravel_index``: flat indices into ``shape`` as a tuple of coordinate tensors (no gradient)."""
    return tuple(Tensor._make(t, None) for t in torch.unravel_index(unwrap(indices), shape))
