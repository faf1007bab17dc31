"""``nx.autograd``: ``backward``, ``grad``, grad modes and the scoped ``AutogradGraph``."""

from neuronix.autograd.engine import backward, grad
from neuronix.autograd.graph import AutogradGraph, Node
from neuronix.autograd.mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

# isort: off
from neuronix.autograd import forward_ad  # after engine and mode, which it uses
# isort: on

__all__ = ["AutogradGraph", "Node", "backward", "enable_grad", "forward_ad", "grad", "is_grad_enabled", "no_grad",
           "set_grad_enabled"]
