"""``nx.autograd.Function``: a user's own op with its own backward, torch's interface.

::

    class Cube(nx.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            x, = ctx.saved_tensors
            return grad * 3 * x ** 2   # neuronix ops: recorded under create_graph

    y = Cube.apply(x)

As torch: ``forward`` runs under no-grad and gets the caller's tensors (``nx.Tensor``s);
``setup_context(ctx, inputs, output)`` with a ctx-less ``forward`` is the newer spelling;
``backward`` gets one gradient per output and returns one per positional input (``None`` where
there is none) and runs with recording on exactly when the pass has ``create_graph``, so a
backward written in neuronix ops is differentiable again (``once_differentiable`` says it is
not). The ctx offers ``save_for_backward``/``saved_tensors`` (version-checked, freed after a pass
without ``retain_graph``), ``needs_input_grad``, ``mark_non_differentiable``, ``mark_dirty``,
``set_materialize_grads`` and any attribute.

How it is recorded (the engine knows nothing of it; ``function_graph.py`` holds the nodes): one
*call* node per application whose single rule calls the user's backward once per backward step.
Its first edge leads to the inputs (to the only one that requires grad, or to a *pack* node whose
rules hand each input its part of one flat gradient); its other edges are the saved tensors, so
the engine checks their versions, frees them and, under ``create_graph``, hands them over in the
graph. An engine node has one output: with several differentiable outputs each gets a *pick* node
whose rule places its gradient into one flat gradient of the call node (plus a flag saying it
arrived, so ``set_materialize_grads(False)`` sees ``None`` for an output that got none).
"""

from __future__ import annotations

import functools
import warnings

import torch

from neuronix.autograd import function_graph as graph
from neuronix.autograd import mode
from neuronix.tensor import Tensor

__all__ = ["Function", "FunctionCtx", "InplaceFunction", "once_differentiable"]


class FunctionCtx:
    """The ``ctx`` of one application: what ``forward`` leaves for ``backward``."""

    def __init__(self, needs_input_grad: tuple) -> None:
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self.to_save: tuple | None = None
        self.non_differentiable: tuple = ()
        self.dirty_tensors: tuple = ()
        self._saved: tuple | None = None  # what ``saved_tensors`` gives while backward runs
        self._in_forward = True

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors (inputs, outputs or others, or ``None``) for ``backward``; at most once, in forward."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, (Tensor, torch.Tensor)):
                raise TypeError(f"save_for_backward can only save variables, but argument {i} is not a Tensor "
                                f"(got {type(t).__name__}); keep other values as ctx attributes")
        self.to_save = tensors

    def save_for_forward(self, *tensors) -> None:
        """Accepted and unused: Neuronix's forward mode comes from ``backward`` (the double-VJP trick of
        ``nx.autograd.forward_ad``), so a Function's ``jvp`` never runs."""

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            if self._in_forward or self.to_save is None:
                return ()
            raise RuntimeError(graph.FREED_MESSAGE)
        return self._saved

    saved_variables = saved_tensors  # torch's deprecated name

    def mark_non_differentiable(self, *tensors) -> None:
        """These outputs never require grad; backward still gets a (zero) gradient for each."""
        self.non_differentiable = tensors

    def mark_dirty(self, *tensors) -> None:
        """These inputs were modified in place by forward (and are returned): their history becomes this op."""
        self.dirty_tensors = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """False: an output that got no gradient is ``None`` in backward instead of zeros."""
        self.materialize_grads = bool(value)


class Function:
    """Subclass with static ``forward`` and ``backward`` (or ``setup_context``); call ``Fn.apply``."""

    def __init__(self, *args, **kwargs) -> None:
        warnings.warn(f"{type(self)} should not be instantiated. Methods on autograd functions are all static, "
                      "so you should invoke them on the class itself.", DeprecationWarning, stacklevel=2)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("Legacy autograd function with non-static forward method is deprecated. Please use "
                           f"new-style autograd function with static forward method: {type(self).__name__}.apply(...)")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def setup_context(ctx, inputs: tuple, output) -> None:
        raise NotImplementedError("setup_context is not implemented.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for your custom "
                                  "autograd.Function to use it with backward mode AD.")

    vjp = backward  # torch's other name: override one of the two

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run ``forward`` under no-grad and record one node whose rule calls ``backward``."""
        return run(cls, Function, args, kwargs)


def run(cls, base, args: tuple, kwargs: dict):
    """``cls.apply(*args, **kwargs)`` for a Function class deriving from ``base`` (``nx.autograd.Function``, or
    ``torch.autograd.Function`` for a torch user's own class applied to neuronix tensors: ``neuronix.interop``)."""
    uses_setup = cls.setup_context is not base.setup_context
    if uses_setup:  # as torch: forward's defaults filled in, the inputs given to setup_context positionally
        import inspect

        bound = inspect.signature(cls.forward).bind(*args, **kwargs)
        bound.apply_defaults()
        args, kwargs = tuple(bound.args), dict(bound.kwargs)
    recording = mode.is_grad_enabled()
    needs = tuple(recording and isinstance(a, Tensor) and a.requires_grad for a in args)
    ctx = FunctionCtx(needs)
    vertices = [(a.grad_fn or a) if need else None for a, need in zip(args, needs)]  # before a dirty write
    with mode.no_grad():
        if uses_setup:
            output = cls.forward(*args, **kwargs)
            cls.setup_context(ctx, args, output)
        else:
            output = cls.forward(ctx, *args, **kwargs)
    ctx._in_forward = False
    return graph.wrap_outputs(cls, base, ctx, args, vertices, output, record=any(needs))


def backward_of(cls, base):
    """The user's backward (or vjp), as torch picks it."""
    backward, vjp = cls.backward, cls.vjp
    if backward is not base.backward and vjp is not base.vjp and backward is not vjp:
        raise RuntimeError("Implementing both 'backward' and 'vjp' for a custom Function is not allowed. "
                           "You should only implement one of them.")
    return vjp if vjp is not base.vjp else backward


InplaceFunction = Function  # torch's subclass only adds an ``inplace`` flag to __init__, which apply never uses


_TWICE = "trying to differentiate twice a function that was marked with @once_differentiable"


def once_differentiable(fn):
    """Decorate ``backward``: it runs without recording, and differentiating its result raises (as torch)."""

    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with mode.no_grad():
            outputs = fn(ctx, *args)
        if not mode.is_grad_enabled() or not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            return outputs
        single = not isinstance(outputs, tuple)
        guarded = tuple(graph.delayed_error(o, _TWICE) for o in ((outputs,) if single else outputs))
        return guarded[0] if single else guarded

    return wrapper
