"""``nx.nn.Parameter`` and ``nx.nn.Buffer``: leaf tensors that a ``Module`` registers when assigned as attributes."""

from __future__ import annotations

import torch

from neuronix.tensor import Tensor


class Parameter(Tensor):
    """A ``Tensor`` that requires grad by default and is picked up by ``Module.parameters()``.

    ``Parameter(t)`` shares ``t``'s storage (a ``torch.Tensor`` or an ``nx.Tensor``), as torch does.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True) -> None:
        if data is None:
            data = torch.empty(0)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        # copy.deepcopy / pickle keep the Parameter type (Tensor's reduce would return a plain Tensor)
        return (Parameter, (self.data, self.requires_grad))


class Buffer(Tensor):
    """A ``Tensor`` that a ``Module`` registers as a buffer when assigned (``self.x = nn.Buffer(t)``), as torch >= 2.5.

    ``persistent=False`` keeps it out of the ``state_dict``. Like torch's, it is ``data`` detached (sharing
    storage) with ``data``'s ``requires_grad``.
    """

    __slots__ = ("persistent",)

    def __init__(self, data=None, *, persistent: bool = True) -> None:
        if data is None:
            data = torch.empty(0)
        super().__init__(data, requires_grad=bool(getattr(data, "requires_grad", False)))
        self.persistent = persistent
