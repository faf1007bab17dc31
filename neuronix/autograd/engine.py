"""The reverse pass: dependency-counted traversal, VJP calls, gradient routing.

1. Count, for every node reachable from the roots, how many edges point at it
   (an iterative walk: no recursion, so a 50 000-op chain is fine).
2. Start from the roots with their seed gradients; a node runs once all its consumers
   have delivered, its buffered gradient is dropped as soon as its VJPs have used it,
   and (without ``retain_graph``) its saved tensors are released right after.
3. Each VJP result is reduced to its input's shape (``sum_to_shape``: the only place
   broadcasting is undone) and cast to its input's dtype, then sent along its edge:
   into another node's buffer or into a leaf's ``.grad``.

``grad`` and ``backward(inputs=...)`` first mark the nodes that lead to a requested
input; the others are skipped, and so are VJPs of edges that lead nowhere requested.
"""

from __future__ import annotations

import functools
import threading

import torch

from neuronix.autograd import mode
from neuronix.autograd.graph import FREED, Node
from neuronix.tensor import Tensor

_NONES = tuple((None,) * n for n in range(9))  # the VJPs' inputs when an op saves none
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


def _dependencies(roots: list[Node]) -> tuple[dict[Node, int], dict[int, int]]:
    """How many edges point at every node below the roots, and at every leaf (by id)."""
    deps: dict[Node, int] = {}
    leaf_deps: dict[int, int] = {}
    root_set = set(roots)
    stack = list(roots)
    while stack:
        for edge in stack.pop().edges:
            if edge.__class__ is Node:
                if edge in deps:
                    deps[edge] += 1
                else:
                    deps[edge] = 1
                    if edge not in root_set:
                        stack.append(edge)
            elif edge is not None:
                key = id(edge)
                leaf_deps[key] = leaf_deps.get(key, 0) + 1
    return deps, leaf_deps


def _needed(roots: list[Node], deps: dict[Node, int], target_nodes: set, leaf_targets: set) -> set:
    """The nodes from which a requested input can be reached (the only ones ``grad`` runs)."""
    order = []
    left = dict(deps)
    ready = [n for n in roots if n not in left]
    while ready:
        node = ready.pop()
        order.append(node)
        for edge in node.edges:
            if edge.__class__ is Node:
                left[edge] -= 1
                if left[edge] == 0:
                    ready.append(edge)
    needed = set()
    for node in reversed(order):  # consumers come after their inputs in this order
        if node in target_nodes:
            needed.add(node)
            continue
        for edge in node.edges:
            if edge in needed if edge.__class__ is Node else (edge is not None and id(edge) in leaf_targets):
                needed.add(node)
                break
    return needed


def _version_error(node: Node) -> RuntimeError:
    n = len(node.edges)
    values = list(node.saved or (None,) * n) + [node.saved_out]
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


def _connected(raw, edge):
    """A saved input as the VJPs see it under ``create_graph``: part of the graph again."""
    if not isinstance(raw, torch.Tensor):
        return raw
    if edge is None:
        return Tensor._make(raw, None)
    if edge.__class__ is Node:
        return Tensor._make(raw, edge)
    return edge  # a leaf that requires grad: the input itself


def _check_saved(node: Node) -> None:
    """torch's ``SavedVariable`` check: every saved tensor, index and mask is still at its saved version.

    A leaf whose ``.data`` was reassigned since the forward is read anew (as torch reads a saved
    leaf through the variable), so its old value is not checked.
    """
    versions = node.versions
    if versions is not None:
        edges = node.edges
        i = -1
        for raw, expected in zip(node.saved, versions):
            i += 1
            if expected is not None and raw._version != expected:
                edge = edges[i]
                if edge is None or edge.__class__ is Node or edge.data is raw:
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


def _current(raw, edge):
    """A saved input as the VJPs read it: a leaf's current ``.data`` (it may have been reassigned)."""
    if edge is not None and edge.__class__ is not Node and isinstance(raw, torch.Tensor):
        return edge.data
    return raw


def _vjp_arguments(node: Node, create_graph: bool) -> tuple:
    """``(out, inputs)`` as the node's VJPs receive them, after torch's saved-tensor checks."""
    saved = node.saved
    if saved is FREED:
        raise _freed_error(node)
    if node.versions is not None or node.checked is not None:
        _check_saved(node)
    n = len(node.edges)
    if not saved:
        inputs = _NONES[n] if n < 9 else (None,) * n
    elif create_graph:
        inputs = [_connected(r, e) for r, e in zip(saved, node.edges)]
    else:
        inputs = [_wrap(_current(r, e)) if isinstance(r, torch.Tensor) else r for r, e in zip(saved, node.edges)]
    out = None
    if node.saved_out is not None:
        out = Tensor._make(node.saved_out, node) if create_graph else _wrap(node.saved_out)
    return out, inputs


def _wrap(data: torch.Tensor) -> Tensor:
    """``Tensor._make(data, None)`` without the method call: a constant for the VJPs."""
    t = _new(Tensor)
    t.data = data
    t._grad = None
    t.requires_grad = False
    t.grad_fn = None
    t._hooks = None
    t._view = None
    return t


def _reduce(gi: Tensor, shape, dtype) -> Tensor:
    """Undo broadcasting (the one place it is done) and cast to the input's dtype."""
    data = gi.data
    if data.shape != shape:
        from neuronix.ops.reduce import sum_to_shape  # the ops package imports this one

        gi = sum_to_shape(gi, shape)
    if data.dtype != dtype:
        gi = gi.to(dtype)
    return gi


def _run_hooks(hooks, g: Tensor) -> Tensor:
    for hook in list(hooks):
        result = hook(g)
        if result is not None:
            new = _as_tensor(result)
            for what, before, after in (("size", g.shape, new.shape), ("type", g.dtype, new.dtype),
                                        ("device", g.device, new.device)):
                if before != after:
                    raise RuntimeError(
                        f"hook '{getattr(hook, '__name__', hook)}' has changed the {what} of value: the gradient "
                        f"had {what} {tuple(before) if what == 'size' else before}, the hook returned "
                        f"{tuple(after) if what == 'size' else after}; a hook must return a tensor like its input "
                        "(or None)"
                    )
            g = new
    return g


def _accumulate_leaf(leaf: Tensor, g: Tensor, owned: bool, create_graph: bool, hooks: bool = True) -> None:
    """Add ``g`` into ``leaf.grad``; ``owned`` means nothing else holds ``g`` (no copy needed)."""
    if hooks and leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
        owned = False
    if leaf._grad is None:
        if owned and (create_graph or g.grad_fn is None):
            leaf._grad = g
        elif create_graph:  # a recorded copy: .grad must never alias a tensor the caller holds (the seed)
            from neuronix.ops.movement import clone  # the ops package imports this one

            leaf._grad = clone(g)
        else:
            leaf._grad = Tensor._make(g.data.clone(), None)
    elif create_graph or leaf._grad.requires_grad:
        leaf._grad = leaf._grad + g
    else:
        leaf._grad.data += g.data


def _scale_like(g: Tensor, value: torch.Tensor) -> Tensor:
    """The upstream gradient's magnitude, shaped as one input's gradient (``kernel_valued``'s yardstick)."""
    data = g.data
    scale = data.abs().amax() if data.numel() else data.new_zeros(())
    return _wrap(scale.expand(value.shape))


def _fused_vjps(node: Node, g, out, inputs, needed, leaf_targets, create_graph: bool) -> list:
    """Per-input VJPs that hand out the results of one call of the op's fused kernel.

    The kernel runs once, for the inputs this pass needs. On a plain backward its values are
    the gradients. Under ``create_graph`` the op's own (differentiable) rules give the graph and
    the kernel the value (``kernel_valued``: a selection, so an infinite gradient stays infinite),
    so first derivatives are the kernel's to the last bit either way; and, as torch's backward
    nodes, every gradient is in the graph when an input is (a gradient penalty through a bias
    gradient gives zeros, not an error). The closures are dropped when the step ends: nothing
    computed for this upstream gradient is kept on the node.
    """
    edges = node.edges
    needs = [e is not None and (needed is None or e in needed if e.__class__ is Node
                                else leaf_targets is None or id(e) in leaf_targets) for e in edges]
    attrs = node.attrs
    raw = node.spec.fused(g, out, *inputs, needs=needs, **attrs)
    rules = node.spec.vjps
    anchor = next((t for t in inputs if isinstance(t, Tensor) and t.requires_grad), None) if create_graph else None

    def vjp(i):
        def one(*_, **__):
            value = raw[i]
            if value is not None and not create_graph:
                return _wrap(value)
            from neuronix.ops.elementwise import anchored, kernel_valued  # the ops package imports this one

            valued = rules[i](g, out, *inputs, **attrs)
            if value is not None:
                valued = kernel_valued(valued, value, _scale_like(g, value))
            if create_graph and valued is not None and not valued.requires_grad and anchor is not None:
                valued = anchored(valued, anchor)
            return valued

        return one

    return [vjp(i) for i in range(len(edges))]


def _release(node: Node, deps: dict, ready: list, leaf_deps: dict, leaf_buffers: dict, flush) -> None:
    """Count a node's edges as delivered without running its VJPs (no gradient, or pruned)."""
    for edge in node.edges:
        if edge.__class__ is Node:
            deps[edge] -= 1
            if deps[edge] == 0:
                ready.append(edge)
        elif edge is not None:
            key = id(edge)
            leaf_deps[key] -= 1
            if leaf_deps[key] == 0 and key in leaf_buffers:
                flush(key)


def run_backward(outputs, seeds, retain_graph: bool, create_graph: bool, targets=None):
    """The shared core of ``backward`` and ``grad``.

    Without ``targets`` gradients accumulate into every leaf's ``.grad``. With ``targets``
    (``grad`` and ``backward(inputs=...)``) no ``.grad`` is touched: only the nodes leading
    to a target run, and the targets' gradients are returned (``None`` where unreached).
    A leaf's contributions are summed first, so its hooks see its total gradient once, as torch.

    Gradients arriving at one node or leaf are summed into a buffer; a buffer this pass
    created itself (a sum) is owned, so later contributions are added in place unless
    ``create_graph`` needs the sum recorded.
    """
    capture_leaf: dict[int, Tensor] = {}
    capture_node: dict[Node, Tensor] = {}
    target_nodes: set = set()
    leaf_targets: set | None = None
    if targets is not None:
        target_nodes = {t.grad_fn for t in targets if t.grad_fn is not None}
        leaf_targets = {id(t) for t in targets if t.grad_fn is None}
    leaf_buffers: dict[int, list] = {}  # id(leaf) -> [leaf, summed gradient, owned]
    owned_buffers: set = set()  # nodes whose buffer is a sum made here

    def flush(key):
        leaf, g, owned = leaf_buffers.pop(key)
        if leaf_targets is None:
            _accumulate_leaf(leaf, g, owned, create_graph)
        elif key in leaf_targets:
            capture_leaf[key] = _run_hooks(leaf._hooks, g) if leaf._hooks else g

    def to_leaf(leaf, g, owned):
        key = id(leaf)
        entry = leaf_buffers.get(key)
        if entry is None:
            leaf_buffers[key] = [leaf, g, owned]
        elif entry[2] and not create_graph:
            entry[1].data.add_(g.data)
        else:
            entry[1] = entry[1] + g
            entry[2] = True

    with mode.set_grad_enabled(create_graph):
        buffers: dict[Node, Tensor] = {}
        roots = []
        for out, seed in zip(outputs, seeds):
            node = out.grad_fn
            if node is None:
                to_leaf(out, seed, False)
            elif node in buffers:
                buffers[node] = buffers[node] + seed
            else:
                buffers[node] = seed
                roots.append(node)
        deps, leaf_deps = _dependencies(roots)
        needed = None
        if targets is not None:
            needed = _needed(roots, deps, target_nodes, leaf_targets)
        ready = [n for n in roots if n not in deps]
        while ready:
            node = ready.pop()
            g = buffers.pop(node, None)
            if g is None or (needed is not None and node not in needed):
                _release(node, deps, ready, leaf_deps, leaf_buffers, flush)  # nothing flows through it
                continue
            if owned_buffers:
                owned_buffers.discard(node)
            if node.hooks:
                g = _run_hooks(node.hooks, g)
            if node in target_nodes:
                capture_node[node] = g
            out, inputs = _vjp_arguments(node, create_graph)
            vjps, attrs = node.spec.vjps, node.attrs
            if node.spec.fused is not None:  # one kernel for all inputs; results live only in this step
                vjps = _fused_vjps(node, g, out, inputs, needed, leaf_targets, create_graph)
            i = -1
            for edge in node.edges:
                i += 1
                if edge is None:
                    continue
                if edge.__class__ is Node:
                    if needed is None or edge in needed:
                        gi = vjps[i](g, out, *inputs, **attrs) if attrs else vjps[i](g, out, *inputs)
                        if gi is not None:
                            data = gi.data
                            if data.shape != edge.shape or data.dtype != edge.dtype:
                                gi = _reduce(gi, edge.shape, edge.dtype)
                            prev = buffers.get(edge)
                            if prev is None:
                                buffers[edge] = gi
                            elif edge in owned_buffers and not create_graph:
                                prev.data.add_(gi.data)
                            else:
                                buffers[edge] = prev + gi
                                owned_buffers.add(edge)
                    left = deps[edge] - 1
                    deps[edge] = left
                    if left == 0:
                        ready.append(edge)
                    continue
                key = id(edge)  # a leaf
                if leaf_targets is None or key in leaf_targets:
                    gi = vjps[i](g, out, *inputs, **attrs) if attrs else vjps[i](g, out, *inputs)
                    if gi is not None:
                        data, leaf_data = gi.data, edge.data
                        if data.shape != leaf_data.shape or data.dtype != leaf_data.dtype:
                            gi = _reduce(gi, leaf_data.shape, leaf_data.dtype)
                        entry = leaf_buffers.get(key)
                        if entry is None:
                            # owned: a fresh tensor nobody else holds, so it may become .grad without a copy
                            data = gi.data
                            leaf_buffers[key] = [edge, gi, gi is not g and data is not g.data and data._base is None]
                        elif entry[2] and not create_graph:
                            entry[1].data.add_(gi.data)
                        else:
                            entry[1] = entry[1] + gi
                            entry[2] = True
                left = leaf_deps[key] - 1
                leaf_deps[key] = left
                if left == 0 and key in leaf_buffers:
                    flush(key)
            if not retain_graph and (node.versions is not None or node.saved_out is not None):
                node.saved = FREED  # as torch: a node that saved no tensor may run again
                node.saved_out = None
        for key in list(leaf_buffers):  # leaves that were outputs themselves
            flush(key)
    if targets is None:
        return None
    return [capture_node.get(t.grad_fn) if t.grad_fn is not None else capture_leaf.get(id(t)) for t in targets]


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
    results = run_backward(outputs, seeds, retain_graph, create_graph, targets)
    for t, g in zip(targets, results):
        if g is not None:
            _accumulate_leaf(t, g, False, create_graph, hooks=False)  # hooks already ran


@_callbacks(accumulates=False)
def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned as a tuple (as ``torch.autograd.grad``).

    Leaves' ``.grad`` is not touched; only the part of the graph leading to ``inputs`` runs.
    """
    targets = _check_inputs("grad", inputs)
    outs, seeds = _roots_and_seeds("grad", outputs, grad_outputs, ("grad_outputs", "outputs"))
    if retain_graph is None:
        retain_graph = create_graph
    results = run_backward(outs, seeds, retain_graph, create_graph, targets)
    final = []
    for i, (t, g) in enumerate(zip(targets, results)):
        if g is None:
            if materialize_grads:
                g = Tensor._make(torch.zeros_like(t.data), None)
            elif not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} ({_describe(t)}) appears to not have been used in the graph; "
                    "set allow_unused=True if this is the desired behavior"
                )
        elif not create_graph and g.grad_fn is not None:
            g = g.detach()
        final.append(g)
    return tuple(final)
