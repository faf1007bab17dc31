"""``nx.nn.Parameter``: a leaf tensor that a ``Module`` registers as a parameter."""

from __future__ import annotations

import torch

from neuronix.tensor import Tensor


class Parameter(Tensor):
    """A ``Tensor`` that requires grad by default and is picked up by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = torch.empty(0)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
