"""torch's tensor predicates as functions (``torch.is_complex(x)``, ``torch.numel(x)``, ...): Python results.

They read the wrapped tensor's metadata (or, for ``is_nonzero``, its one value); nothing is recorded.
``is_floating_point`` and ``numel`` are ``nx.Tensor`` methods already (``tensor.py``), so only their
function spellings are added here.
"""

from __future__ import annotations

import torch

from neuronix.ops.compare import nondiff
from neuronix.ops.registry import public
from neuronix.tensor import unwrap

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
