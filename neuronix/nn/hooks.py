"""Module hooks: removable handles and full backward hooks built on neuronix's own graph.

A full backward hook needs the gradients of a module's inputs *together* (one call with the
whole ``grad_input`` tuple, whose result may replace them). The engine runs one node per
tensor, so the module's tensor inputs are routed through a single "gate" node: the gate's
output is a flat stand-in holding every input's slot, and each input the module sees is a
"tap" of that stand-in whose data is the original input (no copy). The engine runs the
gate only after every tap has delivered, so its hook sees all input gradients at once.
Outputs pass through identity nodes whose hooks record ``grad_output``.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict

import torch

from neuronix.ops.elementwise import zero_gradient
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

_ids = itertools.count()


class RemovableHandle:
    """Returned by every ``register_*_hook``; ``remove()`` (or leaving a ``with`` block) unregisters it."""

    def __init__(self, hooks: OrderedDict, extra: tuple[OrderedDict, ...] = ()) -> None:
        self.id = next(_ids)
        self._hooks = hooks
        self._extra = extra

    def remove(self) -> None:
        for table in (self._hooks, *self._extra):
            table.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def add_hook(table: OrderedDict, hook, prepend: bool = False, extra: tuple[OrderedDict, ...] = ()) -> RemovableHandle:
    """Store ``hook`` in ``table`` under a fresh handle id (first when ``prepend``)."""
    handle = RemovableHandle(table, extra)
    table[handle.id] = hook
    if prepend:
        table.move_to_end(handle.id, last=False)
    return handle


# ----- the gate / tap / identity ops (each VJP is another op here, so double backward works) --
def _segment_forward(p, start, shape, total):
    return p[start : start + math.prod(shape)].reshape(shape)


def _embed_forward(x, start, total):
    flat = x.new_zeros(total)
    flat[start : start + x.numel()] = x.reshape(-1)
    return flat


_SEGMENT = defop(
    "backward_hook_segment",
    _segment_forward,
    lambda g, out, p, start, shape, total: apply(_EMBED, g, start=start, total=total),
    saves=(),  # ``total`` (p's length) is an attribute: a caller may write the returned gradient in place
)
_EMBED = defop(
    "backward_hook_embed",
    _embed_forward,
    lambda g, out, x, start, total: apply(_SEGMENT, g, start=start, shape=tuple(x.shape), total=total),
    saves=(0,),
)


def _tap_vjp(g, out, p, source, start, total):
    return apply(_EMBED, g, start=start, total=total)


class _Source:
    """The original input's data, as the tap's attribute. Its rule never reads it, so unlike an index
    tensor attribute it must not be version-checked: as torch, writing the input in place after the
    module call leaves backward valid (a bare tensor attribute would make backward raise)."""

    __slots__ = ("data",)

    def __init__(self, data: torch.Tensor) -> None:
        self.data = data


# A tap returns the original input's data; its gradient goes to the gate's flat stand-in.
_TAP = defop("backward_hook_tap", lambda p, source, start, total: source.data, _tap_vjp, saves=())
_MAX_GATED = 64


def _gate_vjp(i):
    def vjp(g, out, *inputs, slots):
        start, shape = slots[i]
        return apply(_SEGMENT, g, start=start, shape=shape, total=g.shape[0])

    return vjp


def _gate_forward(*xs, slots):
    total = sum(math.prod(s) for _, s in slots)
    ref = xs[0]
    return torch.empty(total, dtype=ref.dtype, device=ref.device)


_GATE = defop("backward_hook_gate", _gate_forward, *(_gate_vjp(i) for i in range(_MAX_GATED)), saves=())
_IDENTITY = defop("backward_hook_identity", lambda x: x.view_as(x), lambda g, out, x: g, saves=())


def _through_gate(tensors: list, hook_for) -> list:
    """``tensors`` routed through one gate node, laid end to end in their promoted dtype, and one tap per
    tensor out of it: the gate's hook (``hook_for(slots)``) sees every tensor's gradient at once, and what
    it returns flows back to each of them."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    slots, start = [], 0
    for t in tensors:
        slots.append((start, tuple(t.shape)))
        start += t.numel()
    gate = apply(_GATE, *(t if t.dtype == dtype else t.to(dtype) for t in tensors), slots=tuple(slots))
    gate.grad_fn.hooks = [hook_for(slots)]
    return [apply(_TAP, gate, source=_Source(t.data), start=begin, total=start) for t, (begin, _) in zip(tensors, slots)]


class BackwardHookCall:
    """The state of one forward call of a module that has full backward (pre-)hooks."""

    def __init__(self, module, hooks: list, pre_hooks: list) -> None:
        self.module = module
        self.hooks = hooks
        self.pre_hooks = pre_hooks
        self.n_inputs = 0
        self.input_positions: list[int] = []  # the positional args routed through the gate
        self.zero_inputs: dict = {}
        self.grad_outputs: list = []
        # whether this backward pass came through the module's outputs; as torch, the hooks are skipped
        # when a gradient reaches the inputs without doing so (double backward through the module's inside)
        self.outputs_reached = False
        self.n_outputs = self.n_wrapped = self.pending_outputs = 0

    # ----- inputs ---------------------------------------------------------------------
    def wrap_inputs(self, args: tuple) -> tuple:
        """Route every tensor input that requires grad through one gate node."""
        self.n_inputs = len(args)
        self.input_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        if not self.input_positions:
            return args
        # as torch: once any input needs a gradient, the other floating tensor inputs report zeros
        self.zero_inputs = {i: a.data for i, a in enumerate(args)
                            if isinstance(a, Tensor) and a.is_floating_point() and not a.requires_grad}
        if len(self.input_positions) > _MAX_GATED:
            raise RuntimeError(f"full backward hooks support at most {_MAX_GATED} tensor inputs per module call")
        out = list(args)
        taps = _through_gate([args[i] for i in self.input_positions], self._on_input_grads_factory)
        for i, tap in zip(self.input_positions, taps):
            out[i] = tap
        return tuple(out)

    def _on_input_grads_factory(self, slots):
        def on_input_grads(g):
            if not self.outputs_reached:
                return None
            grad_input = [None] * self.n_inputs
            for i, raw in self.zero_inputs.items():
                grad_input[i] = Tensor(torch.zeros_like(raw))
            for i, (begin, shape) in zip(self.input_positions, slots):
                grad_input[i] = apply(_SEGMENT, g, start=begin, shape=shape, total=g.shape[0])
            new = self._call_hooks(tuple(grad_input))
            if new is None:
                return None
            if len(new) != self.n_inputs:
                raise RuntimeError(
                    f"backward hook of {type(self.module).__name__} returned {len(new)} gradients; "
                    f"expected {self.n_inputs} (one per positional input)"
                )
            total = g.shape[0]
            flat = None
            for i, (begin, _) in zip(self.input_positions, slots):
                if new[i] is None:
                    continue
                piece = apply(_EMBED, new[i] if isinstance(new[i], Tensor) else Tensor(new[i]), start=begin, total=total)
                flat = piece if flat is None else flat + piece
            return flat if flat is not None else zero_gradient(g)  # not g * 0: an inf/NaN g would leak NaN

        return on_input_grads

    # ----- outputs --------------------------------------------------------------------
    def wrap_outputs(self, output):
        """Pass every output tensor that requires grad through an identity node that records its gradient."""
        items = list(output) if isinstance(output, (tuple, list)) else [output]
        tensors = [i for i, o in enumerate(items) if isinstance(o, Tensor)]
        self.n_outputs = len(tensors)
        self.n_wrapped = sum(items[i].requires_grad for i in tensors)
        self.grad_outputs = [None] * len(tensors)  # one slot per tensor output, as torch
        self.pending_outputs = self.n_wrapped
        if self.pre_hooks and self.n_wrapped > 1:
            # a pre-hook's replacement must reach every output's gradient, so they meet in one gate node first
            return self._gate_outputs(output, items, tensors)
        for k, i in enumerate(tensors):
            if items[i].requires_grad:
                items[i] = self._wrap_output(items[i], k)
        return type(output)(items) if isinstance(output, (tuple, list)) else items[0]

    def _gate_outputs(self, output, items: list, tensors: list):
        """Route the outputs that require grad through one gate node (as the inputs): its hook sees every
        output's gradient at once, runs the pre-hooks, and the replacements flow to every output."""
        wrapped = [(k, i) for k, i in enumerate(tensors) if items[i].requires_grad]
        positions = [k for k, _ in wrapped]
        taps = _through_gate([items[i] for _, i in wrapped],
                             lambda slots: self._on_output_grads_factory(slots, positions))
        for (_, i), tap in zip(wrapped, taps):
            items[i] = tap
        return type(output)(items) if isinstance(output, (tuple, list)) else items[0]

    def _on_output_grads_factory(self, slots, ks):
        def on_output_grads(g):
            self.grad_outputs = [None] * self.n_outputs
            for k, (begin, shape) in zip(ks, slots):
                self.grad_outputs[k] = apply(_SEGMENT, g, start=begin, shape=shape, total=g.shape[0])
            self.outputs_reached = True
            new = self._call_pre_hooks()
            if not self.input_positions:  # nothing inside needs a gradient: torch calls the hook with all None
                self._call_hooks((None,) * max(self.n_inputs, 1))
            if new is None:
                return None
            flat = None
            for k, (begin, _) in zip(ks, slots):
                if new[k] is None:
                    continue
                piece = apply(_EMBED, new[k] if isinstance(new[k], Tensor) else Tensor(new[k]), start=begin,
                              total=g.shape[0])
                flat = piece if flat is None else flat + piece
            return flat if flat is not None else zero_gradient(g)

        return on_output_grads

    def _wrap_output(self, out: Tensor, k: int) -> Tensor:
        y = apply(_IDENTITY, out)

        def on_output_grad(g):
            if self.pending_outputs == 0:  # another pass over this call (retain_graph, double backward)
                self.grad_outputs = [None] * self.n_outputs
                self.pending_outputs = self.n_wrapped
            self.grad_outputs[k] = g
            self.outputs_reached = True
            self.pending_outputs -= 1
            if self.pending_outputs == 0 and self.pre_hooks:
                new = self._call_pre_hooks()
                if new is not None:
                    g = new[k] if isinstance(new[k], Tensor) else Tensor(new[k])
            if self.pending_outputs == 0 and not self.input_positions:
                # nothing inside needs a gradient: torch calls the hook with grad_input all None
                self._call_hooks((None,) * max(self.n_inputs, 1))
            return g

        y.grad_fn.hooks = [on_output_grad]
        return y

    def _call_pre_hooks(self):
        result = None
        for hook in self.pre_hooks:
            new = hook(self.module, tuple(self.grad_outputs))
            if new is not None:
                self.grad_outputs = list(new)
                result = new
        return result

    def _call_hooks(self, grad_input: tuple):
        result = None
        grad_output = tuple(self.grad_outputs)
        for hook in self.hooks:
            new = hook(self.module, grad_input, grad_output)
            if new is not None:
                grad_input = tuple(new)
                result = grad_input
        self.grad_outputs = []
        self.outputs_reached = False
        return result
