"""The layers of ``nx.nn``, one file per family; ``nx.nn`` re-exports every public class."""

from neuronix.nn.modules.containers import ModuleDict, ModuleList, Sequential

__all__ = ["ModuleDict", "ModuleList", "Sequential"]
