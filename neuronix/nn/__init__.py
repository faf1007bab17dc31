"""``nx.nn``: modules, layers, losses, ``functional`` and ``init`` (mirrors ``torch.nn``)."""

from neuronix.nn.parameter import Parameter

__all__ = ["Parameter"]
