"""``nx.nn``: modules, layers, losses, ``functional`` and ``init`` (mirrors ``torch.nn``)."""

from neuronix.nn import functional, init, utils
from neuronix.nn.module import Module
from neuronix.nn.modules import *  # noqa: F403
from neuronix.nn.modules import __all__ as _modules_all
from neuronix.nn.parameter import Parameter

__all__ = ["Module", "Parameter", "functional", "init", "utils", *_modules_all]
