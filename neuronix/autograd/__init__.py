"""``nx.autograd``: ``backward``, ``grad``, grad modes and the scoped ``AutogradGraph``."""

from neuronix.autograd.engine import backward, grad
from neuronix.autograd.graph import AutogradGraph, Node
from neuronix.autograd.mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

# isort: off
from neuronix.autograd import forward_ad  # after engine and mode, which it uses
from neuronix.autograd import function  # users' own ops (nx.autograd.Function)
from neuronix.autograd.function import Function, once_differentiable
from neuronix.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
# isort: on

__all__ = ["AutogradGraph", "Function", "GradcheckError", "Node", "backward", "enable_grad", "forward_ad", "function", "grad",
           "gradcheck", "gradgradcheck", "is_grad_enabled", "no_grad", "once_differentiable", "set_grad_enabled"]
