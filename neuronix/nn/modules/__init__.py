"""The layers of ``nx.nn``, one file per family; ``nx.nn`` re-exports every name in a family's ``__all__``.

A family lists its public classes in its own ``__all__``; this package only names the
families, so adding a layer never touches a second list.
"""

from __future__ import annotations

import importlib

FAMILIES = (
    "activation", "attention", "containers", "conv", "distance", "dropout", "lazy", "linear", "loss", "loss_more",
    "normalization", "padding", "pooling", "rnn", "sparse", "spatial", "transformer",
)

__all__: list[str] = []
for _family in FAMILIES:
    _module = importlib.import_module(f"neuronix.nn.modules.{_family}")
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
    __all__ += _module.__all__
__all__ = sorted(set(__all__))
del _family, _module, _name
