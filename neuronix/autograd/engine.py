"""The reverse pass: dependency-counted traversal, VJP calls, gradient routing.

1. Count, for every node reachable from the roots, how many edges point at it
   (an iterative walk: no recursion, so a 50 000-op chain is fine).
2. Start from the roots with their seed gradients; a node runs once all its consumers
   have delivered, its buffered gradient is dropped as soon as its VJPs have used it.
3. Each VJP result is reduced to its input's shape (``sum_to_shape``: the only place
   broadcasting is undone) and cast to its input's dtype, then sent along its edge:
   into another node's buffer or into a leaf's ``.grad``.
"""

from __future__ import annotations

import torch

from neuronix.autograd import mode
from neuronix.autograd.graph import FREED, Node
from neuronix.tensor import Tensor


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._make(torch.as_tensor(x), None)


def _seed(out: Tensor, grad, index: int) -> Tensor:
    if grad is None:
        if out.data.numel() != 1:
            raise RuntimeError(
                f"backward: grad can be implicitly created only for scalar outputs; output {index} has shape "
                f"{tuple(out.shape)}: pass gradient= (a tensor of that shape) or reduce the output first"
            )
        return Tensor._make(torch.ones_like(out.data), None)
    grad = _as_tensor(grad)
    if grad.shape != out.shape:
        raise RuntimeError(
            f"backward: gradient for output {index} has shape {tuple(grad.shape)} but the output has shape "
            f"{tuple(out.shape)}; they must match"
        )
    return grad


def _check_roots(outputs) -> None:
    for i, t in enumerate(outputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn "
                f"(shape {tuple(t.shape)}, dtype {t.dtype}): nothing to differentiate; "
                "did you forget requires_grad=True or run the forward under nx.no_grad()?"
            )


def _dependencies(roots: list[Node]) -> dict[Node, int]:
    deps: dict[Node, int] = {}
    seen = set(roots)
    stack = list(seen)
    while stack:
        for edge in stack.pop().edges:
            if edge.__class__ is Node:
                deps[edge] = deps.get(edge, 0) + 1
                if edge not in seen:
                    seen.add(edge)
                    stack.append(edge)
    return deps


def _unpack(raw, edge, create_graph: bool):
    """A saved input as the VJPs see it: connected to the graph only when recording."""
    if not isinstance(raw, torch.Tensor):
        return raw
    if not create_graph or edge is None:
        return Tensor._make(raw, None)
    if edge.__class__ is Node:
        return Tensor._make(raw, edge)
    return edge  # a leaf that requires grad: the input itself


def _check_versions(node: Node) -> None:
    saved, versions = node.saved, node.versions
    values = saved + ((node.saved_out,) if node.spec.saves_out else ())
    for i, (raw, expected) in enumerate(zip(values, versions)):
        if expected is not None and raw._version != expected:
            what = "its output" if i == len(saved) else f"input {i}"
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an inplace operation: "
                f"{what} of '{node.spec.name}' (shape {tuple(raw.shape)}, dtype {raw.dtype}, device {raw.device}) "
                f"is at version {raw._version}; expected version {expected} instead. "
                "Use an out-of-place op or .clone() the tensor before modifying it"
            )


def input_grads(node: Node, g: Tensor, create_graph: bool) -> list:
    """Run ``node``'s VJPs for every input that needs a gradient; reduce and cast the results."""
    from neuronix.ops.reduce import sum_to_shape

    spec = node.spec
    saved = node.saved
    if saved is FREED:
        raise RuntimeError(
            f"Trying to backward through the graph a second time (or directly access saved tensors after they "
            f"have already been freed) at op '{spec.name}'. Saved intermediate values of the graph are freed when "
            "you call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward through "
            "the graph a second time"
        )
    _check_versions(node)
    edges = node.edges
    inputs = [_unpack(r, e, create_graph) for r, e in zip(saved, edges)]
    out = None
    if spec.saves_out:
        out = Tensor._make(node.saved_out, node if create_graph else None)
    grads = []
    for i, edge in enumerate(edges):
        gi = None
        if edge is not None:
            gi = spec.vjps[i](g, out, *inputs, **node.attrs)
            if gi is not None:
                shape, dtype = node.meta[i]
                if gi.data.shape != shape:
                    gi = sum_to_shape(gi, shape)
                if gi.data.dtype != dtype:
                    gi = gi.to(dtype)
        grads.append(gi)
    return grads


def _holds_tensors(node: Node) -> bool:
    return node.saved_out is not None or any(isinstance(s, torch.Tensor) for s in node.saved)


def _run_hooks(hooks, g: Tensor) -> Tensor:
    for hook in list(hooks):
        result = hook(g)
        if result is not None:
            g = _as_tensor(result)
    return g


def _accumulate_leaf(leaf: Tensor, g: Tensor, owned: bool, create_graph: bool) -> None:
    if leaf._hooks:
        g = _run_hooks(leaf._hooks, g)
        owned = False
    if leaf.grad is None:
        if create_graph:
            leaf.grad = g
        else:
            leaf.grad = g if owned and g.grad_fn is None else Tensor._make(g.data.clone(), None)
    elif create_graph or leaf.grad.requires_grad:
        leaf.grad = leaf.grad + g
    else:
        leaf.grad.data += g.data


def run_backward(outputs, seeds, retain_graph: bool, create_graph: bool, targets=None):
    """The shared core of ``backward`` and ``grad``.

    With ``targets`` (``grad`` mode), leaves' ``.grad`` is left alone and the gradients of
    the targets are returned; otherwise gradients accumulate into leaves' ``.grad``.
    """
    capture_leaf = {}  # id(leaf) -> gradient, for grad mode / backward(inputs=...)
    capture_node = {}  # node -> gradient of a non-leaf target
    target_nodes = set()
    if targets is not None:
        for t in targets:
            if t.grad_fn is not None:
                target_nodes.add(t.grad_fn)
    leaf_targets = None if targets is None else {id(t) for t in targets if t.grad_fn is None}

    def send_to_leaf(leaf, g, owned):
        if leaf_targets is None:
            _accumulate_leaf(leaf, g, owned, create_graph)
        elif id(leaf) in leaf_targets:
            if leaf._hooks:
                g = _run_hooks(leaf._hooks, g)
            prev = capture_leaf.get(id(leaf))
            capture_leaf[id(leaf)] = g if prev is None else prev + g

    switch = mode.enable_grad() if create_graph else mode.no_grad()
    with switch:
        buffers: dict[Node, Tensor] = {}
        roots = []
        for out, seed in zip(outputs, seeds):
            node = out.grad_fn
            if node is None:
                send_to_leaf(out, seed, False)
                continue
            if node in buffers:
                buffers[node] = buffers[node] + seed
            else:
                buffers[node] = seed
                roots.append(node)
        deps = _dependencies(roots)
        ready = [n for n in roots if n not in deps]
        while ready:
            node = ready.pop()
            g = buffers.pop(node, None)
            if g is not None:
                if node.hooks:
                    g = _run_hooks(node.hooks, g)
                if node in target_nodes:
                    capture_node[node] = g
                grads = input_grads(node, g, create_graph)
                if not retain_graph and _holds_tensors(node):
                    node.saved = FREED  # as torch: a graph without saved tensors may be re-run
                    node.saved_out = None
            else:
                grads = [None] * len(node.edges)
            for edge, gi in zip(node.edges, grads):
                if edge is None:
                    continue
                if edge.__class__ is Node:
                    if gi is not None:
                        prev = buffers.get(edge)
                        buffers[edge] = gi if prev is None else prev + gi
                    left = deps[edge] - 1
                    deps[edge] = left
                    if left == 0:
                        ready.append(edge)
                elif gi is not None:
                    send_to_leaf(edge, gi, gi is not g and gi.data._base is None)
    if targets is None:
        return None
    return [capture_node.get(t.grad_fn) if t.grad_fn is not None else capture_leaf.get(id(t)) for t in targets]


def _as_tuple(x) -> tuple:
    if isinstance(x, (Tensor, torch.Tensor)) or x is None:
        return (x,)
    return tuple(x)


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False, inputs=None) -> None:
    """Accumulate gradients of ``tensors`` into the leaves' ``.grad`` (as ``torch.autograd.backward``)."""
    outputs = _as_tuple(tensors)
    grads = _as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"backward: got {len(grads)} gradients for {len(outputs)} tensors; they must pair up")
    _check_roots(outputs)
    seeds = [_seed(o, g, i) for i, (o, g) in enumerate(zip(outputs, grads))]
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is None:
        run_backward(outputs, seeds, retain_graph, create_graph)
        return
    targets = list(_as_tuple(inputs))
    results = run_backward(outputs, seeds, retain_graph, create_graph, targets)
    for t, g in zip(targets, results):
        if g is not None:
            _accumulate_leaf(t, g, False, create_graph) if t.grad_fn is None else _set_grad(t, g)


def _set_grad(t: Tensor, g: Tensor) -> None:
    t.grad = g if t.grad is None else t.grad + g


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned as a tuple (as ``torch.autograd.grad``)."""
    outs = _as_tuple(outputs)
    targets = list(_as_tuple(inputs))
    grads = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outs)
    if len(grads) != len(outs):
        raise RuntimeError(f"grad: got {len(grads)} grad_outputs for {len(outs)} outputs; they must pair up")
    _check_roots(outs)
    for i, t in enumerate(targets):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(
                f"grad: input {i} (shape {tuple(t.shape)}, dtype {t.dtype}) does not require grad; "
                "only tensors with requires_grad=True can be differentiated"
            )
    seeds = [_seed(o, g, i) for i, (o, g) in enumerate(zip(outs, grads))]
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
                    f"grad: input {i} (shape {tuple(t.shape)}) appears to not have been used in the graph; "
                    "set allow_unused=True if this is the desired behavior"
                )
        elif not create_graph and g.grad_fn is not None:
            g = g.detach()
        final.append(g)
    return tuple(final)
