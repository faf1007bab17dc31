"""The reverse pass: a dependency-counted walk that calls each node's rules once.

The graph's vertices are ``Node``s (one per recorded op) and leaf ``Tensor``s, which are
sinks (torch's ``AccumulateGrad``). A node's first ``node.n`` items are its edges: ``node[i]``
is the vertex that receives the gradient of input ``i`` (or ``None``). ``run_backward`` is the
whole algorithm:

1. Count how many edges point at every vertex below the roots (an iterative walk: a
   50 000-op chain is fine); with ``targets`` (``grad``, ``backward(inputs=...)``) mark the
   vertices that lead to a target, the only ones that run.
2. Pop a vertex whose consumers have all delivered. A node runs its hooks, then its rules
   or its fused kernel (``_node_grads``), and each input's gradient is fitted to that
   input (``_fit``: the one place broadcasting is undone and dtypes are cast) and summed
   into the input's buffer. A leaf runs its hooks and accumulates into ``.grad`` (or is
   captured for ``grad``).

Invariants. Every vertex runs at most once per pass, after every gradient for it has
arrived, so hooks see the total. A buffer is added into in place only when this pass
made it (``owned``), never a tensor a rule or the caller may still hold. Without
``create_graph`` the rules run on raw ``torch.Tensor``s under the ``RAW`` grad state (an op
on raw tensors returns a raw tensor and records nothing: no wrapper or node per gradient
op); with it they run on ``nx.Tensor``s and are recorded, which gives higher derivatives.
Nothing computed for one upstream gradient outlives that node's step; saved tensors are
released after the node runs unless ``retain_graph``.
"""

from __future__ import annotations

import functools
import threading

import torch

from neuronix.autograd import mode
from neuronix.autograd.graph import FREED, Node
from neuronix.tensor import Tensor, unwrap

_new = object.__new__


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._make(torch.as_tensor(x), None)


def _describe(t) -> str:
    data = t.data if isinstance(t, Tensor) else t
    if isinstance(data, torch.Tensor):
        return f"shape {tuple(data.shape)}, dtype {data.dtype}, device {data.device}"
    return f"a {type(t).__name__}"


def _seed(out: Tensor, grad, index: int) -> Tensor:
    if grad is None:
        if out.data.is_complex():
            raise RuntimeError(
                f"backward: grad can be implicitly created only for real scalar outputs; output {index} is complex "
                f"({out.dtype}): pass gradient= or reduce it to a real scalar first (.abs(), .real)"
            )
        if out.data.numel() != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs; output {index} has shape "
                f"{tuple(out.shape)}: pass gradient= (a tensor of shape {tuple(out.shape)}) or reduce the output "
                "first, e.g. out.sum().backward()"
            )
        return Tensor._make(torch.ones_like(out.data), None)
    grad = _as_tensor(grad)
    if grad.shape != out.shape:
        raise RuntimeError(
            f"backward: gradient for output {index} has shape {tuple(grad.shape)} but the output has shape "
            f"{tuple(out.shape)}; they must match"
        )
    if grad.device != out.device:
        raise RuntimeError(
            f"backward: gradient for output {index} is on device {grad.device} but the output is on {out.device}; "
            "they must be on the same device"
        )
    if grad.dtype != out.dtype:
        grad = grad.to(out.dtype)  # as torch: the seed takes the output's dtype
    return grad


def _check_roots(where: str, outputs) -> None:
    for i, t in enumerate(outputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(
                f"{where}: element {i} of tensors does not require grad and does not have a grad_fn "
                f"({_describe(t)}): nothing to differentiate; "
                "did you forget requires_grad=True or run the forward under nx.no_grad()?"
            )


def _dependencies(roots: list) -> dict:
    """How many edges point at every vertex (node or leaf) below the roots."""
    deps: dict = {}
    stack = [v for v in roots if v.__class__ is Node]
    seen = set(stack)  # a root that is also another root's input is walked once
    while stack:
        node = stack.pop()
        for edge in node[:node.n]:
            if edge is None:
                continue
            if edge in deps:
                deps[edge] += 1
            else:
                deps[edge] = 1
                if edge.__class__ is Node and edge not in seen:
                    seen.add(edge)
                    stack.append(edge)
    return deps


def _leading_to(roots: list, deps: dict, targets: set) -> set:
    """The vertices from which a target can be reached (the only ones ``grad`` runs)."""
    order, left = [], dict(deps)
    ready = [v for v in roots if v not in left]
    while ready:  # a topological order: every vertex after all of its consumers
        vertex = ready.pop()
        order.append(vertex)
        for edge in vertex[:vertex.n] if vertex.__class__ is Node else ():
            if edge is not None:
                left[edge] -= 1
                if left[edge] == 0:
                    ready.append(edge)
    needed = set()
    for vertex in reversed(order):  # inputs before their consumers
        if vertex in targets or (vertex.__class__ is Node and any(e in needed for e in vertex[:vertex.n])):
            needed.add(vertex)
    return needed


def _version_error(node: Node) -> RuntimeError:
    n = node.n
    values = list(node[n:] or (None,) * n) + [node.saved_out]
    for i, (raw, expected) in enumerate(zip(values, node.versions)):
        if expected is not None and raw._version != expected:
            what = "its output" if i == n else f"input {i}"
            return RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"{what} of '{node.spec.name}' (shape {tuple(raw.shape)}, dtype {raw.dtype}, device {raw.device}) "
                f"is at version {raw._version}; expected version {expected} instead. "
                "Use an out-of-place op or .clone() the tensor before modifying it"
            )
    return RuntimeError(f"saved tensors of '{node.spec.name}' changed in place")


def _freed_error(node: Node) -> RuntimeError:
    return RuntimeError(
        f"Trying to backward through the graph a second time (or directly access saved tensors after they "
        f"have already been freed) at op '{node.spec.name}'. Saved intermediate values of the graph are freed when "
        "you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through "
        "the graph a second time"
    )


def _check_saved(node: Node):
    """torch's ``SavedVariable`` check: every saved tensor, index and mask is still at its saved version.

    Returns the saved inputs as a plain pass reads them: a leaf whose ``.data`` was reassigned
    since the forward is read anew (as torch reads a saved leaf through the variable), so its old
    value is not checked.
    """
    n, versions = node.n, node.versions
    if versions is FREED:
        raise _freed_error(node)
    saved = node[n:]
    if versions is not None:
        i = -1
        for raw, expected, edge in zip(saved, versions, node):
            i += 1
            if expected is None:
                continue
            if edge is not None and edge.__class__ is not Node and edge.data is not raw:
                saved[i] = edge.data  # a leaf whose .data was reassigned: read its current value
            elif raw._version != expected:
                raise _version_error(node)
        if node.saved_out is not None and node.saved_out._version != versions[-1]:
            raise _version_error(node)
    if node.checked is not None:
        for raw, expected in node.checked:
            if raw._version != expected:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: an index or mask tensor of '{node.spec.name}' (shape {tuple(raw.shape)}, dtype "
                    f"{raw.dtype}, device {raw.device}) is at version {raw._version}; expected version {expected} "
                    "instead. Use an out-of-place op or .clone() the index before modifying it"
                )
    return saved


def _recorded_arguments(node: Node) -> tuple:
    """``(out, inputs)`` as the rules receive them under create_graph: in the graph again.

    A saved leaf is the leaf itself (its ``.data`` may have been reassigned since the forward).
    """
    n = node.n
    if node.versions is not None or node.checked is not None:
        _check_saved(node)
    saved = node[n:]
    inputs = [(e if e is not None and e.__class__ is not Node else Tensor._make(r, e))
              if isinstance(r, torch.Tensor) else r for r, e in zip(saved, node)] if saved else (None,) * n
    out = node.saved_out
    return (None if out is None else Tensor._make(out, node)), inputs


def _wrap(data: torch.Tensor) -> Tensor:
    """``Tensor._make(data, None)`` without the method call."""
    t = _new(Tensor)
    t.data = data
    t._grad = None
    t.requires_grad = False
    t.grad_fn = None
    t._hooks = None
    t._view = None
    return t


def _fit(gi, target, create_graph: bool):
    """A rule's result as the gradient of ``target``: its kind, shape and dtype.

    The one place broadcasting is undone and dtypes are cast. A rule may return a raw or a
    neuronix tensor: on a plain pass gradients are raw, under create_graph neuronix tensors.
    """
    if create_graph:
        if not isinstance(gi, Tensor):
            gi = _wrap(gi)
        meta = gi.data
    else:
        gi = meta = unwrap(gi)
    want = target if target.__class__ is Node else target.data
    shape, dtype = want.shape, want.dtype
    if meta.shape != shape:
        if create_graph:
            from neuronix.ops.reduce import sum_to_shape  # the ops package imports this module

            gi = sum_to_shape(gi, shape)
        else:
            gi = gi.sum_to_size(shape)
    if meta.dtype != dtype:
        if meta.dtype.is_complex and not dtype.is_complex:  # a real input gets the real part (ops/registry.py)
            if create_graph:
                from neuronix.ops.complex import real  # the ops package imports this module

                gi = real(gi)
            else:
                gi = gi.real
            if gi.dtype == dtype:
                return gi
        gi = gi.to(dtype)
    return gi


def _run_hooks(hooks, g, create_graph: bool):
    """Tensor hooks see neuronix tensors, under the grad mode of the pass (off on a plain pass)."""
    wrapped = g if create_graph else _wrap(g)
    token = None if create_graph else mode.set_state(False)
    try:
        for hook in list(hooks):
            result = hook(wrapped)
            if result is not None:
                new = _as_tensor(result)
                for what, before, after in (("size", wrapped.shape, new.shape), ("type", wrapped.dtype, new.dtype),
                                            ("device", wrapped.device, new.device)):
                    if before != after:
                        raise RuntimeError(
                            f"hook '{getattr(hook, '__name__', hook)}' has changed the {what} of value: the gradient "
                            f"had {what} {tuple(before) if what == 'size' else before}, the hook returned "
                            f"{tuple(after) if what == 'size' else after}; a hook must return a tensor like its "
                            "input (or None)"
                        )
                wrapped = new
    finally:
        if token is not None:
            mode.reset_state(token)
    return wrapped if create_graph else wrapped.data


def _accumulate(leaf: Tensor, g, owned: bool, create_graph: bool) -> None:
    """Add ``g`` into ``leaf.grad``; ``owned`` means nothing else holds ``g`` (it may become ``.grad``)."""
    if leaf._grad is None:
        if create_graph:
            if not owned:  # a recorded copy: .grad must never alias a tensor the caller holds (the seed)
                from neuronix.ops.movement import clone  # the ops package imports this module

                g = clone(g)
            leaf._grad = g
        else:
            leaf._grad = _wrap(g if owned else g.clone())
    elif create_graph:
        leaf._grad = leaf._grad + g
    else:  # recording off: in place, even into a .grad a create_graph pass left in a graph (as torch)
        leaf._grad.data += unwrap(g)


def _fresh(gi, g, node: Node) -> bool:
    """Whether a rule's result is a new tensor no one else holds (so a leaf may keep it as ``.grad``)."""
    data, up = (gi.data, g.data) if isinstance(gi, Tensor) else (gi, g)
    if gi is g or data._base is not None or data.data_ptr() == up.data_ptr() or data is node.saved_out:
        return False
    return not any(data is s for s in node[node.n:])


def _scale_like(g, value: torch.Tensor) -> Tensor:
    """The upstream gradient's magnitude, shaped as one input's gradient (``kernel_valued``'s yardstick)."""
    data = g.data
    scale = data.abs().amax() if data.numel() else data.new_zeros(())
    return _wrap(scale.expand(value.shape))


def _input_grads(node: Node, g, out, inputs, needs: list, create_graph: bool) -> list:
    """The gradient of every input the pass needs (``None`` for the others): the rules, or the fused kernel.

    A fused kernel computes several inputs' gradients in one call. On a plain pass its values
    are the gradients. Under create_graph the op's own (differentiable) rules give the graph and
    the kernel the value (``kernel_valued``: a selection, so an infinite gradient stays infinite);
    and, as torch's backward nodes, every gradient is in the graph when an input is.
    """
    spec, attrs = node.spec, node.attrs
    rules = spec.vjps
    if spec.fused is None or (create_graph and not spec.fused_values_recorded):
        return [rules[i](g, out, *inputs, **attrs) if need else None for i, need in enumerate(needs)]
    if not create_graph:  # the kernel's values; where it gives None for a needed input, the rule's
        values = spec.fused(g, out, *inputs, needs=needs, **attrs)
        return [(rules[i](g, out, *inputs, **attrs) if v is None else v) if need else None
                for i, (v, need) in enumerate(zip(values, needs))]
    values = spec.fused(g.data, out if out is None else out.data, *map(unwrap, inputs), needs=needs, **attrs)
    from neuronix.ops.elementwise import anchored, kernel_valued  # the ops package imports this module

    anchor = next((t for t in inputs if isinstance(t, Tensor) and t.requires_grad), None)
    grads = []
    for i, need in enumerate(needs):
        valued = rules[i](g, out, *inputs, **attrs) if need else None
        if valued is not None and values[i] is not None:
            valued = kernel_valued(valued, values[i], _scale_like(g, values[i]))
        if valued is not None and not valued.requires_grad and anchor is not None:
            valued = anchored(valued, anchor)
        grads.append(valued)
    return grads


def _node_grads(node: Node, edges: list, g, create_graph: bool, needed) -> list:
    """One node's step: torch's saved-tensor checks, then the gradient of each input (``None``
    where no gradient flows: no edge, not needed, or the rule gives none)."""
    if create_graph:
        out, inputs = _recorded_arguments(node)
    else:
        if node.versions is not None or node.checked is not None:
            inputs = _check_saved(node)
        else:
            inputs = node[node.n:]
        out = node.saved_out
        if not inputs:
            inputs = (None,) * node.n
    spec = node.spec
    if spec.fused is None and needed is None:  # the common case: each input's rule, once
        attrs = node.attrs
        if attrs:
            return [None if e is None else rule(g, out, *inputs, **attrs) for rule, e in zip(spec.vjps, edges)]
        return [None if e is None else rule(g, out, *inputs) for rule, e in zip(spec.vjps, edges)]
    needs = [e is not None and (needed is None or e in needed) for e in edges]
    return _input_grads(node, g, out, inputs, needs, create_graph)


def run_backward(outputs, seeds, retain_graph: bool, create_graph: bool, targets=None):
    """The shared core of ``backward`` and ``grad`` (the algorithm is in the module docstring).

    Without ``targets`` gradients accumulate into every leaf's ``.grad``. With ``targets``
    (``grad``, ``backward(inputs=...)``) no ``.grad`` is touched: only vertices leading to a
    target run, and the targets' gradients are returned (``None`` where unreached).
    """
    buffers: dict = {}  # vertex -> the sum of the gradients delivered to it so far
    owned: set = set()  # vertices whose buffer this pass made: safe to add into in place
    roots = []
    for out, seed in zip(outputs, seeds):
        vertex = out.grad_fn or out
        seed = seed if create_graph else seed.data
        if vertex in buffers:
            buffers[vertex] = buffers[vertex] + seed
            owned.add(vertex)
        else:
            buffers[vertex] = seed
            roots.append(vertex)
    deps = _dependencies(roots)
    wanted = None if targets is None else {t.grad_fn or t for t in targets}
    needed = None if wanted is None else _leading_to(roots, deps, wanted)
    captured: dict = {}
    ready = [v for v in roots if v not in deps]
    token = mode.set_state(True if create_graph else mode.RAW)
    try:
        while ready:
            vertex = ready.pop()
            g = buffers.pop(vertex, None)
            if vertex.__class__ is not Node:  # a leaf: the sink
                if g is not None and (wanted is None or vertex in wanted):
                    if vertex._hooks:
                        g = _run_hooks(vertex._hooks, g, create_graph)
                        owned.discard(vertex)
                    if wanted is None:
                        _accumulate(vertex, g, vertex in owned, create_graph)
                    else:
                        captured[vertex] = g
                continue
            edges = vertex[:vertex.n]
            if g is not None and (needed is None or vertex in needed):
                if vertex.hooks:
                    g = _run_hooks(vertex.hooks, g, create_graph)
                if wanted is not None and vertex in wanted:
                    captured[vertex] = g
                    if not any(e in needed for e in edges):  # the pass ends here: not run, not freed
                        continue
                for edge, gi in zip(edges, _node_grads(vertex, edges, g, create_graph, needed)):
                    if gi is None:
                        continue
                    meta = edge if edge.__class__ is Node else edge.data
                    made = False  # whether the engine itself made gi (a sum or a cast: nobody else holds it)
                    if create_graph or gi.__class__ is not torch.Tensor or gi.shape != meta.shape or gi.dtype != meta.dtype:
                        ptr = unwrap(gi).data_ptr()
                        gi = _fit(gi, edge, create_graph)
                        made = unwrap(gi).data_ptr() != ptr  # new storage (a view of gi keeps its pointer)
                    prev = buffers.get(edge)
                    if prev is None:
                        buffers[edge] = gi
                        if meta is not edge and (made or _fresh(gi, g, vertex)):
                            owned.add(edge)  # a leaf's: may become its .grad without a copy
                    elif edge in owned and not create_graph:
                        prev += gi
                    else:
                        buffers[edge] = prev + gi
                        owned.add(edge)
                if not retain_graph and (vertex.versions is not None or vertex.checked is not None):
                    del vertex[vertex.n:]  # as torch: a node that saved no tensor (index included) may run again
                    vertex.versions = FREED
                    vertex.saved_out = None
            for edge in edges:  # delivered (or nothing to deliver): the edge's consumer count drops
                if edge is not None:
                    left = deps[edge] - 1
                    deps[edge] = left
                    if left == 0:
                        ready.append(edge)
    finally:
        mode.reset_state(token)
    if targets is None:
        return None
    results = [captured.get(t.grad_fn or t) for t in targets]
    return results if create_graph else [None if r is None else _wrap(r) for r in results]


class _Passes(threading.local):
    """Per thread, the passes in progress (a hook may nest one): backward()'s callbacks; None for grad()."""

    def __init__(self) -> None:
        self.queues: list[list | None] = []


_passes = _Passes()


def queue_callback(callback) -> bool:
    """Call ``callback()`` once the ``backward()`` now running has written every ``.grad``.

    As torch's ``Variable._execution_engine.queue_callback``: for hooks that need the final
    gradients (DDP's all-reduce). Callbacks run in queue order, one may queue another, and a
    pass that raises runs none. Inside ``nx.autograd.grad`` (which writes no ``.grad``) nothing
    is queued and the result is False.
    """
    _pending = _passes.queues
    if not _pending:
        raise RuntimeError("queue_callback: no backward pass is running; call it from a hook during backward()")
    if _pending[-1] is None:
        return False
    _pending[-1].append(callback)
    return True


def _callbacks(accumulates: bool):
    """Give each pass of the decorated function its own callback queue, run when it returns."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            queue = [] if accumulates else None
            _pending = _passes.queues
            _pending.append(queue)
            try:
                result = fn(*args, **kwargs)
                for callback in queue or ():  # a list grows under iteration: late callbacks run too
                    callback()
            finally:
                _pending.pop()
            return result

        return run

    return wrap


def _as_tuple(x) -> tuple:
    if isinstance(x, (Tensor, torch.Tensor)) or x is None:
        return (x,)
    return tuple(x)


def _check_inputs(where: str, inputs) -> list:
    inputs = list(_as_tuple(inputs))
    if not inputs:
        raise RuntimeError(f"{where}: inputs is empty; pass at least one tensor to differentiate with respect to")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(
                f"{where}: input {i} ({_describe(t)}) does not require grad; "
                "only nx.Tensors with requires_grad=True (leaves) or results of ops on them can be differentiated"
            )
    return inputs


def _roots_and_seeds(op: str, outputs, grads, names: tuple[str, str]):
    """The differentiated outputs as a tuple, checked, and their seed gradients (ones for scalars).

    ``names`` are the caller's words for the two arguments, for the error message.
    """
    outs = _as_tuple(outputs)
    grads = _as_tuple(grads) if grads is not None else (None,) * len(outs)
    if len(grads) != len(outs):
        raise RuntimeError(f"{op}: got {len(grads)} {names[0]} for {len(outs)} {names[1]}; they must pair up")
    _check_roots(op, outs)
    return outs, [_seed(o, g, i) for i, (o, g) in enumerate(zip(outs, grads))]


@_callbacks(accumulates=True)
def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into the leaves' ``.grad`` (as ``torch.autograd.backward``).

    With ``inputs``, only those tensors' ``.grad`` is accumulated (leaves or not), as torch.
    """
    outputs, seeds = _roots_and_seeds("backward", tensors, grad_tensors, ("gradients", "tensors"))
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is None:
        run_backward(outputs, seeds, retain_graph, create_graph)
        return
    targets = _check_inputs("backward", inputs)
    for t in targets:
        if t.grad_fn is not None:
            t.retain_grad()  # as torch: a non-leaf input keeps its .grad, in this pass and later ones
    results = run_backward(outputs, seeds, retain_graph, create_graph, targets)
    for t, g in zip(targets, results):
        if g is not None and t.grad_fn is None:
            _accumulate(t, g if create_graph else g.data, False, create_graph)  # hooks already ran


@_callbacks(accumulates=False)
def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned as a tuple (as ``torch.autograd.grad``).

    Leaves' ``.grad`` is not touched; only the part of the graph leading to ``inputs`` runs.
    """
    if materialize_grads and allow_unused is False:
        raise ValueError("grad: materialize_grads=True gives unused inputs zeros; it cannot be combined with "
                         "allow_unused=False (leave allow_unused unset or pass True)")
    targets = _check_inputs("grad", inputs)
    outs, seeds = _roots_and_seeds("grad", outputs, grad_outputs, ("grad_outputs", "outputs"))
    if retain_graph is None:
        retain_graph = create_graph
    results = run_backward(outs, seeds, retain_graph, create_graph, targets)
    final = []
    for i, (t, g) in enumerate(zip(targets, results)):
        if g is None:
            if materialize_grads:  # as torch: under create_graph the zeros can be differentiated again
                g = Tensor._make(torch.zeros_like(t.data), None)
                g.requires_grad = create_graph
            elif not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} ({_describe(t)}) appears to not have been used in the graph; "
                    "set allow_unused=True if this is the desired behavior"
                )
        elif not create_graph and g.grad_fn is not None:
            g = g.detach()
        final.append(g)
    return tuple(final)
