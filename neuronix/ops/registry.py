"""The op registry: every differentiable primitive is declared once, here-shaped.

An ``OpSpec`` holds the op's name, its forward (a torch kernel call on raw tensors),
one VJP per positional input (written in neuronix ops, so recording them gives higher
derivatives), which inputs/outputs the VJPs read (only those are kept alive and
version-checked) and the torch function it mirrors. ``apply`` is the single place that
runs a forward and records a ``Node``; the engine (``autograd/engine.py``) is the single
place that runs VJPs, reduces broadcast gradients and casts them to the input dtype.

Public functions are plain Python functions marked with ``@public``; ``neuronix`` exports
them and ``Tensor`` gets them as methods, so there is no second list to keep in sync.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neuronix.autograd import mode
from neuronix.autograd.graph import Node, _active_graphs
from neuronix.tensor import Tensor

ALL = None  # ``saves=ALL``: the VJPs read every input


class OpSpec:
    """A differentiable primitive: forward kernel, per-input VJPs and what they read."""

    __slots__ = ("name", "forward", "vjps", "saves", "saves_out", "aux", "torch_ref")

    def __init__(self, name, forward, vjps, saves, saves_out, aux, torch_ref):
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.saves = saves
        self.saves_out = saves_out
        self.aux = aux
        self.torch_ref = torch_ref

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r})"


OPS: dict[str, OpSpec] = {}
FUNCTIONS: dict[str, Callable] = {}  # public ``nx.<name>`` functions
METHODS: dict[str, Callable] = {}  # public ``Tensor.<name>`` methods


def defop(
    name: str,
    forward: Callable,
    *vjps: Callable | None,
    saves: tuple[int, ...] | None = ALL,
    saves_out: bool = False,
    aux: bool = False,
    torch_ref: Callable | None = None,
) -> OpSpec:
    """Register a primitive. ``vjps[i](g, out, *inputs, **attrs)`` is the gradient for input i.

    ``g`` is the upstream gradient, ``out`` the op's output (``None`` unless ``saves_out``),
    ``inputs`` the op's positional inputs (``None`` for those not in ``saves``). With
    ``aux=True`` the forward returns ``(out, aux)``; ``aux`` (raw, non-differentiable: indices,
    masks, statistics) is passed to the VJPs as the keyword ``aux``.
    """
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    spec = OpSpec(name, forward, vjps, saves, saves_out, aux, torch_ref or forward)
    OPS[name] = spec
    return spec


def public(fn: Callable | None = None, *, method: bool = True, function: bool = True, name: str | None = None):
    """Mark ``fn`` as public API: ``nx.<name>`` (``function``) and ``Tensor.<name>`` (``method``)."""

    def mark(f: Callable) -> Callable:
        key = name or f.__name__
        if function:
            FUNCTIONS[key] = f
        if method:
            METHODS[key] = f
        return f

    return mark(fn) if fn is not None else mark


def _describe(args) -> str:
    parts = []
    for a in args:
        t = a.data if isinstance(a, Tensor) else a
        if isinstance(t, torch.Tensor):
            parts.append(f"Tensor(shape={tuple(t.shape)}, dtype={t.dtype}, device={t.device})")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def _hint(message: str) -> str:
    """What would be valid, for the torch errors users hit most."""
    lower = message.lower()
    if "must match the size of tensor" in lower or "broadcast" in lower:
        return (" (inputs must be broadcastable: aligned from the last dimension, each pair of sizes"
                " must be equal or one of them 1)")
    if "same device" in lower or "expected device" in lower:
        return " (all tensor inputs must be on one device: move them with .to(device))"
    if "expected scalar type" in lower or ("dtype" in lower and "expected" in lower):
        return " (convert the inputs to one dtype with .to(dtype))"
    return ""


def op_error(name: str, args, attrs: dict, err: Exception) -> Exception:
    """The exception a failed forward raises: torch's reason plus the op and its inputs."""
    extra = f", {attrs}" if attrs else ""
    message = f"neuronix.{name}({_describe(args)}{extra}): {err}{_hint(str(err))}"
    try:
        return type(err)(message)
    except TypeError:  # an exception type whose constructor takes other arguments
        return RuntimeError(message)


_FORWARD_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)
_new = object.__new__


def apply(spec: OpSpec, *args, **attrs):
    """Run ``spec``'s forward on the raw values of ``args`` and, if recording, a ``Node``.

    Returns a ``Tensor`` (or ``(Tensor, aux)`` for ``aux`` ops). This is the hot path of
    every op (VJPs included), so it makes one pass over the inputs and builds the result
    in place (``Tensor._make`` inlined).
    """
    n = len(args)
    if n == 2:  # unrolled for the common arities: a comprehension costs a frame
        a, b = args
        raws = [a.data if isinstance(a, Tensor) else a, b.data if isinstance(b, Tensor) else b]
    elif n == 1:
        a = args[0]
        raws = [a.data if isinstance(a, Tensor) else a]
    else:
        raws = [a.data if isinstance(a, Tensor) else a for a in args]
    try:
        out = spec.forward(*raws, **attrs) if attrs else spec.forward(*raws)
    except _FORWARD_ERRORS as err:
        raise op_error(spec.name, args, attrs, err) from err
    if spec.aux:
        out, attrs["aux"] = out
    node = None
    if mode.grad_enabled:
        edges = None
        i = 0
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                if edges is None:
                    edges = [None] * n
                edges[i] = a.grad_fn or a
            i += 1
        if edges is not None:
            node = _record(spec, edges, raws, out, attrs)
    result = _new(Tensor)
    result.data = out
    result.grad = None
    result.requires_grad = node is not None
    result.grad_fn = node
    result._hooks = None
    return (result, attrs["aux"]) if spec.aux else result


def _record(spec: OpSpec, edges: list, raws: list, out, attrs: dict) -> Node:
    """A new ``Node`` keeping what the VJPs read: raw values and their version counters."""
    saves = spec.saves
    versions = None
    if saves is None:
        saved = raws
        i = 0
        for r in raws:
            if isinstance(r, torch.Tensor):
                if versions is None:
                    versions = [None] * len(raws)
                versions[i] = r._version
            i += 1
    elif saves:
        saved = [None] * len(raws)
        for i in saves:
            r = saved[i] = raws[i]
            if isinstance(r, torch.Tensor):
                if versions is None:
                    versions = [None] * len(raws)
                versions[i] = r._version
    else:
        saved = ()
    saved_out = None
    if spec.saves_out:
        saved_out = out
        if versions is None:
            versions = [None] * len(raws)
        versions.append(out._version)
    node = _new(Node)  # Node.__init__ inlined: this runs once per recorded op
    node.spec = spec
    node.edges = edges
    node.saved = saved
    node.saved_out = saved_out
    node.versions = versions
    node.attrs = attrs
    node.shape = out.shape
    node.dtype = out.dtype
    node.hooks = None
    if _active_graphs:
        for graph in _active_graphs:
            graph._nodes.add(node)
    return node
