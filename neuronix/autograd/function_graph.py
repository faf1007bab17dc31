"""The nodes a custom ``nx.autograd.Function`` records (the design is in ``function.py``'s docstring).

Three unregistered ``OpSpec``s, built per application (a user's classes come and go; the op
registry holds the library's primitives only):

* *call*: edge 0 leads to the inputs, edges 1.. are the saved tensors (read, version-checked and
  freed by the engine as any op's saved inputs). Its one rule calls the user's backward once.
* *pack* (two or more inputs require grad): its rule ``j`` hands input ``j`` its part of the flat
  gradient the call node returns (``None`` where the user's backward returned ``None``).
* *pick* (two or more differentiable outputs): output ``k``'s node; its rule places the output's
  gradient into the call node's flat gradient and raises its arrival flag.

A flat gradient is the parts, flattened and cast to one dtype (``torch.promote_types`` of the
parts: a lossless cast of every floating dtype), then one flag per part (1 where a gradient
arrived). Everything a rule does is neuronix ops on its gradient, so it is recorded under
``create_graph``: a backward written in neuronix ops differentiates again through these nodes.
"""

from __future__ import annotations

import functools

import torch

from neuronix.autograd import mode
from neuronix.ops.registry import OpSpec, _record, apply
from neuronix.tensor import Tensor, unwrap

FREED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have already "
    "been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). "
    "Specify retain_graph=True if you need to backward through the graph a second time or if you need to access "
    "saved tensors after calling backward."
)


# ----- flat gradients ------------------------------------------------------------------
class _Layout:
    """Where each part (an input's or an output's gradient) lies in a flat gradient."""

    __slots__ = ("shapes", "offsets", "numels", "total", "dtype", "device")

    def __init__(self, raws: list) -> None:
        self.shapes = [r.shape for r in raws]
        self.numels = [r.numel() for r in raws]
        self.offsets, total = [], 0
        for n in self.numels:
            self.offsets.append(total)
            total += n
        self.total = total
        dtype = raws[0].dtype
        for r in raws[1:]:
            dtype = torch.promote_types(dtype, r.dtype)
        self.dtype, self.device = dtype, raws[0].device

    def dummy(self) -> torch.Tensor:
        """A stand-in output of the flat gradient's shape and dtype (no memory: never read)."""
        return torch.empty((), dtype=self.dtype, device=self.device).expand(self.total + len(self.shapes))

    def part(self, flat, j: int):
        """Part ``j`` of ``flat`` in its shape, or ``None`` when its flag is down."""
        if not bool(unwrap(flat)[self.total + j]):
            return None
        start = self.offsets[j]
        return flat[start:start + self.numels[j]].reshape(self.shapes[j])

    def flat(self, parts: list):
        """The flat gradient of ``parts`` (``None`` for a part that has none); ``None`` when all are."""
        if all(p is None for p in parts):
            return None
        from neuronix.ops.movement import cat  # the ops package imports the autograd package

        pieces = [torch.zeros(n, dtype=self.dtype, device=self.device) if p is None else p.reshape(-1).to(self.dtype)
                  for p, n in zip(parts, self.numels)]
        flags = torch.tensor([p is not None for p in parts], dtype=self.dtype, device=self.device)
        return cat([*pieces, flags])

    def placed(self, g, j: int):
        """A flat gradient holding ``g`` as part ``j``, zeros elsewhere and only flag ``j`` up."""
        return self.flat([g if k == j else None for k in range(len(self.shapes))])


def _pack_spec(name: str, layout: _Layout) -> OpSpec:
    rules = tuple(functools.partial(_part_rule, layout, j) for j in range(len(layout.shapes)))
    return OpSpec(f"{name}Pack", None, rules, (), False, False)


def _part_rule(layout: _Layout, j: int, g, out, *inputs):
    return layout.part(g, j)


def _pick_spec(name: str, layout: _Layout, k: int) -> OpSpec:
    return OpSpec(f"{name}Output{k}", None, (lambda g, out, *inputs: layout.placed(g, k),), (), False, False)


def pick(name: str, layout: _Layout, k: int, call_node, raw: torch.Tensor):
    """Output ``k`` as a tensor whose history is a new pick node on ``call_node``."""
    return Tensor._make(raw, _record(_pick_spec(name, layout, k), [call_node], [None], raw, {}))


# ----- the call node -------------------------------------------------------------------
class _Call:
    """One application: what the call node's rule needs to run the user's backward."""

    def __init__(self, cls, base, ctx, args, outs, diff, saved_kinds, in_layout, out_layout, needed) -> None:
        self.cls, self.base, self.ctx = cls, base, ctx
        self.name = cls.__name__
        self.n_args = len(args)
        self.tensor_args = [isinstance(a, (Tensor, torch.Tensor)) for a in args]
        self.needed = needed  # positions of the inputs that require grad
        self.in_meta = {i: (args[i].shape, args[i].dtype, args[i].device) for i in needed}
        self.in_layout = in_layout  # None: one input requires grad (the call node's edge is that input)
        self.diff = diff  # positions of the differentiable outputs
        self.out_layout = out_layout  # None: one differentiable output (the call node is its history)
        # what backward gets for an output without a gradient, when materialized
        self.out_zeros = [(o.shape, o.dtype, o.device) if isinstance(o, Tensor) else None for o in outs]
        self.saved_kinds = saved_kinds  # per saved slot: ("output", k) or None

    # -- the rule ---------------------------------------------------------------------
    def __call__(self, g, out, _edge, *saved):
        recorded = isinstance(g, Tensor)  # under create_graph the engine hands over neuronix tensors
        grads = self._output_grads(g, recorded)
        ctx = self.ctx
        ctx._saved = self._saved(saved, out, recorded)
        token = None if recorded else mode.set_state(False)  # a plain pass: nx tensors, nothing recorded
        try:
            from neuronix.autograd.function import backward_of  # it imports this module

            result = backward_of(self.cls, self.base)(ctx, *grads)
        finally:
            ctx._saved = None
            if token is not None:
                mode.reset_state(token)
        grads_in = self._input_grads(result, recorded)
        if self.in_layout is None:
            return grads_in[0]
        return self.in_layout.flat(grads_in)

    def _output_grads(self, g, recorded: bool) -> list:
        wrap = (lambda t: t) if recorded else (lambda t: Tensor._make(t, None))
        grads = [None] * len(self.out_zeros)
        if self.out_layout is None:
            grads[self.diff[0]] = wrap(g)
        else:
            for j, k in enumerate(self.diff):
                part = self.out_layout.part(g, j)
                if part is not None:
                    grads[k] = wrap(part.to(self.out_zeros[k][1]))
        if self.ctx.materialize_grads:
            for k, meta in enumerate(self.out_zeros):
                if grads[k] is None and meta is not None:
                    shape, dtype, device = meta
                    grads[k] = Tensor._make(torch.zeros(shape, dtype=dtype, device=device), None)
        return grads

    def _saved(self, saved, out, recorded: bool) -> tuple:
        result = []
        for raw, kind in zip(saved, self.saved_kinds):
            if raw is None:
                result.append(None)
            elif not recorded:
                result.append(Tensor._make(unwrap(raw), None))
            elif kind is None:
                result.append(raw)  # in the graph already (the engine's saved input)
            else:  # an output: in the graph through this very node
                k = kind[1]
                node = out.grad_fn
                if self.out_layout is None:
                    result.append(Tensor._make(unwrap(raw), node))
                else:
                    result.append(pick(self.name, self.out_layout, self.diff.index(k), node, unwrap(raw)))
        return tuple(result)

    def _input_grads(self, result, recorded: bool) -> list:
        """The user's gradients checked as torch checks them, for the inputs that require grad."""
        result = result if isinstance(result, tuple) else (result,)
        n = self.n_args
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(f"function {self.name}Backward returned an incorrect number of gradients "
                               f"(expected {n}, got {len(result)})")
        for i, r in enumerate(result):
            if r is None:
                continue
            if not isinstance(r, (Tensor, torch.Tensor)):
                raise TypeError(f"function {self.name}Backward: expected a Tensor or None as gradient {i}, got "
                                f"{type(r).__name__}")
            if not self.tensor_args[i]:
                raise RuntimeError(f"function {self.name}Backward returned a gradient different than None at "
                                   f"position {i + 1}, but the corresponding forward input was not a Variable")
        out = []
        for i in self.needed:
            r = result[i]
            if r is None:
                out.append(None)
                continue
            shape, dtype, device = self.in_meta[i]
            data = unwrap(r)
            if data.device != device:
                raise RuntimeError(f"Function {self.name}Backward returned an invalid gradient at index {i} - "
                                   f"expected device {device} but got {data.device}")
            if data.shape != shape:
                try:
                    torch.broadcast_shapes(shape, data.shape)
                    ok = torch.broadcast_shapes(shape, data.shape) == data.shape
                except RuntimeError:
                    ok = False
                if not ok:
                    raise RuntimeError(f"Function {self.name}Backward returned an invalid gradient at index {i} - "
                                       f"got {list(data.shape)} but expected shape compatible with {list(shape)}")
                r = _sum_to(r, shape, recorded)
            if not data.is_floating_point():
                raise RuntimeError(f"Function {self.name}Backward returned an invalid gradient at index {i} - "
                                   f"expected a floating point gradient, got {data.dtype}")
            if recorded and not isinstance(r, Tensor):
                r = Tensor._make(r, None)
            elif not recorded:
                r = unwrap(r)
            out.append(r.to(dtype) if unwrap(r).dtype != dtype else r)
        return out


def _sum_to(g, shape, recorded: bool):
    if recorded:
        from neuronix.ops.reduce import sum_to_shape

        return sum_to_shape(g if isinstance(g, Tensor) else Tensor._make(g, None), shape)
    return unwrap(g).sum_to_size(shape)


def _call_spec(call: _Call, n_saved: int, saves_out: bool) -> OpSpec:
    nothing = lambda g, out, *inputs, call: None  # noqa: E731  (a saved tensor's edge carries no gradient)
    rule = lambda g, out, *inputs, call: call(g, out, *inputs)  # noqa: E731
    return OpSpec(call.name, None, (rule,) + (nothing,) * n_saved, tuple(range(1, 1 + n_saved)), saves_out, False)


# ----- apply's second half -------------------------------------------------------------
def _is_differentiable(t) -> bool:
    return isinstance(t, Tensor) and (t.dtype.is_floating_point or t.dtype.is_complex)


def wrap_outputs(cls, base, ctx, args: tuple, vertices: list, output, record: bool):
    """``forward``'s result as ``apply`` returns it, with its history recorded when ``record``."""
    single = not isinstance(output, tuple)
    outs = [output] if single else list(output)
    inputs = {id(a): i for i, a in enumerate(args) if isinstance(a, Tensor)}
    dirty = {id(t) for t in ctx.dirty_tensors}
    for t in ctx.dirty_tensors:
        if id(t) not in inputs:
            raise RuntimeError(f"{cls.__name__}: mark_dirty only accepts input tensors (the ones modified in place "
                               "by forward)")
        if not any(o is t for o in outs):
            raise RuntimeError("Some elements marked as dirty during the forward method were not returned as output. "
                               "The inputs that are modified inplace must all be outputs of the Function.")
    non_diff = {id(t) for t in ctx.non_differentiable}
    for k, o in enumerate(outs):
        if isinstance(o, torch.Tensor):
            outs[k] = Tensor._make(o.detach(), None)
        elif isinstance(o, Tensor) and id(o) not in dirty and (id(o) in inputs or o.requires_grad):
            # an input returned as is (torch: a view of it), or a tensor already in a graph (a parameter the
            # forward closed over): a new tensor, so the caller's tensor keeps its own history
            outs[k] = Tensor._make(o.data, None)
    diff = [k for k, o in enumerate(outs) if _is_differentiable(o) and id(output if single else output[k]) not in non_diff]
    needed = [i for i, need in enumerate(ctx.needs_input_grad) if need]
    if record and diff:
        _record_call(cls, base, ctx, args, vertices, outs, diff, needed, dirty)
    ctx.to_save, ctx.non_differentiable, ctx.dirty_tensors = None, (), ()  # no cycle output -> node -> ctx -> output
    return outs[0] if single else tuple(outs)


def _record_call(cls, base, ctx, args, vertices, outs, diff, needed, dirty) -> None:
    name = cls.__name__
    for k in diff:
        o = outs[k]
        if id(o) in dirty:
            if vertices[[id(a) for a in args].index(id(o))] is o:
                raise RuntimeError(f"{name}: a leaf Variable that requires grad has been used in an in-place "
                                   "operation (marked dirty by forward); modify a clone of the leaf instead")
            if o._view is not None:
                raise RuntimeError(f"{name}: Neuronix's custom Functions cannot mark a view dirty (shape "
                                   f"{tuple(o.shape)}); modify the base tensor, or return a new tensor")
    in_raws = [args[i].data for i in needed]
    if len({r.device for r in in_raws}) > 1:
        raise RuntimeError(f"{name}: the inputs that require grad are on several devices "
                           f"({sorted(str(r.device) for r in in_raws)}); Neuronix's custom Functions need one")
    in_layout = _Layout(in_raws) if len(needed) > 1 else None
    out_layout = _Layout([outs[k].data for k in diff]) if len(diff) > 1 else None
    edge0 = vertices[needed[0]] if in_layout is None else _record(
        _pack_spec(name, in_layout), [vertices[i] for i in needed], [None] * len(needed), in_layout.dummy(), {})
    edges, raws, kinds = [edge0], [None], []
    out_ids = {id(o): k for k, o in enumerate(outs) if isinstance(o, Tensor)}
    for t in ctx.to_save or ():
        k = out_ids.get(id(t)) if t is not None else None
        if k is not None and k in diff:
            edges.append(None)
            raws.append(t.data)
            kinds.append(("output", k))
            continue
        edges.append((t.grad_fn or t) if isinstance(t, Tensor) and t.requires_grad else None)
        raws.append(unwrap(t))
        kinds.append(None)
    call = _Call(cls, base, ctx, args, outs, diff, kinds, in_layout, out_layout, needed)
    saves_out = any(kind is not None for kind in kinds)
    first = outs[diff[0]].data
    dummy = torch.empty((), dtype=first.dtype, device=first.device).expand(first.shape) if out_layout is None \
        else out_layout.dummy()
    node = _record(_call_spec(call, len(kinds), saves_out), edges, raws, dummy, {"call": call})
    for j, k in enumerate(diff):
        o = outs[k]
        o.grad_fn = node if out_layout is None else pick(name, out_layout, j, node, o.data).grad_fn
        o.requires_grad = True
        o._view = None


# ----- once_differentiable ------------------------------------------------------------------
def _raise(message: str):
    def rule(g, out, x, *, message=message):
        raise RuntimeError(message)

    return rule


def delayed_error(value, message: str):
    """``value`` in a graph whose backward raises ``message`` (torch's ``DelayedError`` node)."""
    if value is None:
        return None
    leaf = Tensor(unwrap(value), requires_grad=True)
    spec = OpSpec("DelayedError", lambda x, message: x.clone(), (_raise(message),), (), False, False)
    return apply(spec, leaf, message=message)
