"""The op registry: every differentiable primitive is declared once, here-shaped.

An ``OpSpec`` holds the op's name, its forward (a torch kernel call on raw tensors),
one VJP per positional input (written in neuronix ops, so recording them gives higher
derivatives), which inputs/outputs the VJPs read (only those are kept alive and
version-checked) and optionally a fused backward kernel. ``apply`` is the single place that
runs a forward and records a ``Node``; the engine (``autograd/engine.py``) is the single
place that runs VJPs, reduces broadcast gradients and casts them to the input dtype. The
op's torch twin is named once, by its mirror in ``conformance/mirrors``.

Public functions are plain Python functions marked with ``@public``; ``neuronix`` exports
them and ``Tensor`` gets them as methods, so there is no second list to keep in sync.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neuronix.autograd.graph import Node, _active_graphs
from neuronix.autograd.mode import RAW, is_grad_enabled
from neuronix.autograd.mode import state as grad_state
from neuronix.ops.public import FUNCTIONS, METHODS, public  # noqa: F401  (re-exported: the ops modules import them from here)
from neuronix.tensor import Tensor

ALL = None  # ``saves=ALL``: the VJPs read every input


class OpSpec:
    """A differentiable primitive: forward kernel, per-input VJPs and what they read."""

    __slots__ = ("name", "forward", "vjps", "saves", "saves_out", "aux", "fused", "fused_values_recorded", "reads")

    def __init__(self, name, forward, vjps, saves, saves_out, aux, fused=None, fused_values_recorded=True,
                 reads=None):
        self.reads = reads
        self.fused = fused
        self.fused_values_recorded = fused_values_recorded
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.saves = saves
        self.saves_out = saves_out
        self.aux = aux

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r})"


OPS: dict[str, OpSpec] = {}



def defop(
    name: str,
    forward: Callable,
    *vjps: Callable | None,
    saves: tuple[int, ...] | None = ALL,
    saves_out: bool = False,
    aux: bool = False,
    fused: Callable | None = None,
    fused_values_recorded: bool = True,
    reads: tuple[tuple[int, ...], ...] | None = None,
) -> OpSpec:
    """Register a primitive. ``vjps[i](g, out, *inputs, **attrs)`` is the gradient for input i.

    ``g`` is the upstream gradient, ``out`` the op's output (``None`` unless ``saves_out``),
    ``inputs`` the op's positional inputs (``None`` for those not in ``saves``). With
    ``aux=True`` the forward returns ``(out, aux)``; ``aux`` (raw, non-differentiable: indices,
    masks, statistics) is passed to the VJPs as the keyword ``aux``.

    The rule contract: a VJP is plain math in torch's method and operator names and neuronix
    ops. The engine calls it with raw ``torch.Tensor``s on a plain backward (where an op on raw
    tensors returns a raw tensor and records nothing) and with ``nx.Tensor``s under
    ``create_graph`` (recorded: higher derivatives). So a rule never reads the grad mode, tells a
    tensor from a number by ``isinstance(x, (Tensor, torch.Tensor))``, builds constants with
    torch functions on ``.data``, and may return either kind (the engine fits the result).

    ``fused(g, out, *inputs, needs=..., **attrs)`` is the optional fast backward: torch's fused
    kernel, computing the gradients of several inputs at once (as HIPS's ``defvjp_argnums``). It
    receives raw tensors and returns one raw tensor per input whose ``needs[i]`` is true (``None``
    where the rule should run instead). The engine alone decides when it runs: on a plain
    backward its values are the gradients. Under create_graph the rules give the graph and, where
    ``fused_values_recorded`` (torch's own first derivative is its kernel's in both modes), the
    kernel gives their value (``elementwise.kernel_valued``); without it (torch's backward itself
    differs by mode, as prod's at zeros) the rules alone run. Nothing the kernel returns outlives
    the backward step that asked for it.

    ``reads[i]`` (optional, instead of ``saves``): the inputs rule ``i`` reads. An input is then
    saved (kept alive and version-checked) only when a rule that will run reads it, as torch
    decides from which inputs require grad: ``y = x * c`` with a constant ``c`` keeps ``c`` only,
    so changing ``x`` in place afterwards is no error.
    """
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    if reads is not None:  # what to save for each set of inputs in the graph (a bit mask), worked out once
        reads = [tuple(sorted({i for k, read in enumerate(reads) if mask >> k & 1 for i in read}))
                 for mask in range(2 ** len(reads))]
    spec = OpSpec(name, forward, vjps, saves, saves_out, aux, fused, fused_values_recorded, reads)
    OPS[name] = spec
    return spec


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


def _no_rule_error(spec: OpSpec, i: int, arg: Tensor) -> RuntimeError:
    """An input that requires grad where the op has no gradient rule (a VJP of ``None``)."""
    import inspect

    try:
        params = [p.name for p in inspect.signature(spec.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):  # a builtin kernel: no inspectable signature
        params = []
    name = f" {params[i]!r}" if i < len(params) else ""
    return RuntimeError(
        f"neuronix.{spec.name}: input {i}{name} ({_describe((arg,))}) requires grad, but {spec.name} is not "
        f"differentiable with respect to it (as in torch, this input cannot have requires_grad=True); "
        f"pass it detached (.detach()) or create it under nx.no_grad()"
    )


def _forward_error(spec: OpSpec, args, attrs: dict, err: Exception) -> Exception:
    """What a failed forward raises: torch's reason plus the op and its inputs, or what device is valid."""
    from neuronix.factories import device_error, unavailable_device  # cold path; factories import this module

    if unavailable_device(err):  # "not compiled with CUDA", "invalid device ordinal", ...: say what is valid
        return device_error(f"neuronix.{spec.name}({_describe(args)}{f', {attrs}' if attrs else ''})", err)
    if not isinstance(err, _FORWARD_ERRORS):
        raise err  # an assertion or NotImplementedError from the kernel: as torch raised it
    return op_error(spec.name, args, attrs, err)


def apply(spec: OpSpec, *args, **attrs):
    """Run ``spec``'s forward on the raw values of ``args`` and, if recording, a ``Node``.

    Returns a ``Tensor`` (or ``(Tensor, aux)`` for ``aux`` ops). This is the hot path of
    every op (VJPs included), so it makes one pass over the inputs and builds the result
    in place (``Tensor._make`` inlined).
    """
    state = grad_state()
    if state is RAW:  # a plain backward's rules: raw tensors in, raw tensor out, nothing recorded
        for a in args:
            if isinstance(a, Tensor):
                break
        else:
            try:
                return spec.forward(*args, **attrs) if attrs else spec.forward(*args)
            except (*_FORWARD_ERRORS, AssertionError, NotImplementedError) as err:
                raise _forward_error(spec, args, attrs, err) from err
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
    except (*_FORWARD_ERRORS, AssertionError, NotImplementedError) as err:
        raise _forward_error(spec, args, attrs, err) from err
    if spec.aux:
        out, attrs["aux"] = out
    node = None
    recording = state is True
    if recording:
        edges = None
        i = 0
        for a in args:
            if isinstance(a, Tensor):
                view = a._view
                if view is not None and a.data._version != view[4]:
                    refresh_view(a)
                if a.requires_grad:
                    if edges is None:
                        edges = [None] * n
                        rules = spec.vjps
                    try:
                        rule = rules[i]
                    except IndexError:
                        rule = None
                    if rule is None:  # torch rejects such an input here, at forward, not at backward
                        raise _no_rule_error(spec, i, a)
                    edges[i] = a.grad_fn or a
            i += 1
        if edges is not None:
            node = _record(spec, edges, raws, out, attrs)
    result = _new(Tensor)
    result.data = out
    result._grad = None
    result.requires_grad = node is not None
    result.grad_fn = node
    result._hooks = None
    base = out._base
    if n and (base is not None or out is raws[0]) and not spec.aux and isinstance(args[0], Tensor):
        # the result aliases its first input (a view, or the very tensor): an in-place change of
        # either must reach the other's history (ops/inplace.py)
        src = raws[0]
        alias = out is src or base is src or (base is not None and base is src._base)
        result._view = (args[0], spec, args[1:], attrs, out._version, recording) if alias else None
    else:
        result._view = None
    return (result, attrs["aux"]) if spec.aux else result


def refresh_view(view: Tensor) -> None:
    """Give a view the history of its base's latest in-place change (torch regenerates it the same way).

    ``Tensor._view`` of a view is ``(base, view op, its other args, its attrs, version seen, made
    while recording)``. A view's ``grad_fn`` is the view op applied to its base's history when the
    view was made; an in-place change of the base or of a sibling view bumps the shared version
    counter, after which the view's value comes from the new history, so ``grad_fn`` is rebuilt.
    """
    base, spec, rest, attrs, seen, recorded = view._view
    if view.data._version == seen or not recorded:
        return
    if base._view is not None:
        refresh_view(base)
    if base.requires_grad and is_grad_enabled():
        view.grad_fn = apply(spec, base, *rest, **attrs).grad_fn
        view.requires_grad = True
    view._view = (base, spec, rest, attrs, view.data._version, recorded)


def recording(*args) -> bool:
    """Whether an op applied to ``args`` now records a node: grad mode on and an input requiring grad.

    The forward's recording decision, for the few forwards that take another kernel when nothing
    records (``linalg.svdvals``'s values-only kernel, ``undifferentiable``'s plain result), so that
    only the registry reads the grad mode. A rule never calls it (see "the rule contract" in ``defop``).
    """
    return is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)


def record(spec: OpSpec, args: tuple, out: torch.Tensor, attrs: dict) -> Node | None:
    """A ``Node`` for an output computed elsewhere (an in-place update wrote ``out``), or None."""
    if not is_grad_enabled():
        return None
    edges = [(a.grad_fn or a) if isinstance(a, Tensor) and a.requires_grad else None for a in args]
    if not any(e is not None for e in edges):
        return None
    raws = [a.data if isinstance(a, Tensor) else a for a in args]
    return _record(spec, edges, raws, out, attrs)


def _attr_tensors(value, found: list) -> None:
    """Every torch tensor inside an attribute (index tuples, masks): the VJPs read them too."""
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, (tuple, list)):
        for v in value:
            _attr_tensors(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _attr_tensors(v, found)


# Complex values in the graph. Leaves that require grad are real (nx.Tensor refuses complex ones); a complex
# tensor enters the graph as the result of an op named in COMPLEX_RULES, whose rules follow torch's convention
# (the gradient of z = x + iy is dL/dx + i dL/dy: neuronix/ops/complex.py), and a real input receives the real
# part of a complex gradient (autograd/engine.py, _fit). An op whose real rules differ from its complex ones
# (mul: g * y, torch's g * conj(y)) records its COMPLEX_TWINS spec instead when complex values meet it: the same
# forward, the complex rules, nothing on the real path. Any other op refuses a complex input or result that
# requires grad: its rules are written for real numbers and would give another gradient without a word.
COMPLEX_RULES: set[str] = set()
COMPLEX_TWINS: dict[str, OpSpec] = {}


def _complex_twin(spec: OpSpec, out, edges: list) -> OpSpec:
    """The spec recorded for ``spec`` where complex values meet it; raises (naming what works) where none is."""
    twin = COMPLEX_TWINS.get(spec.name)
    if twin is not None:
        return twin
    if out.dtype.is_complex:
        what = f"the result is complex ({out.dtype}, shape {tuple(out.shape)})"
    else:
        edge = next(e for e in edges if e.__class__ is Node and e.dtype.is_complex)
        what = f"an input is complex ({edge.dtype}, shape {edge.shape})"
    raise RuntimeError(
        f"neuronix.{spec.name}: {what} and requires grad, but {spec.name}'s gradient rules are written for real "
        f"numbers only; ops differentiable on complex values: {', '.join(sorted(COMPLEX_RULES | set(COMPLEX_TWINS)))}. "
        "Compute on the .real and .imag parts (real tensors), or detach"
    )


def _record(spec: OpSpec, edges: list, raws: list, out, attrs: dict) -> Node:
    """A new ``Node`` keeping what the VJPs read: raw values and their version counters.

    Index and mask tensors passed as attributes are version-checked like saved inputs: an
    in-place change to ``idx`` after ``x[idx]`` would otherwise change the gradient silently.
    """
    if spec.name not in COMPLEX_RULES:
        complex_values = out.dtype.is_complex
        if not complex_values:
            for edge in edges:
                if edge.__class__ is Node and edge.dtype.is_complex:
                    complex_values = True
                    break
        if complex_values:
            spec = _complex_twin(spec, out, edges)
    saves = spec.saves
    if spec.reads is not None:  # only what the rules of the inputs in the graph read
        mask, bit = 0, 1
        for edge in edges:
            if edge is not None:
                mask |= bit
            bit <<= 1
        saves = spec.reads[mask]
    n = len(raws)
    node = Node(edges)  # the edges, then (when the rules read inputs) the saved inputs: see Node
    if saves is None:  # every input
        node += raws
        saves = range(n)
    elif saves:
        node += (None,) * n  # the saved slots; those not read stay None
        for i in saves:
            node[n + i] = raws[i]
    versions = None
    for i in saves:
        r = raws[i]
        if isinstance(r, torch.Tensor):
            if versions is None:
                versions = [None] * n
            versions[i] = r._version
    if spec.saves_out:
        if versions is None:
            versions = [None] * n
        versions.append(out._version)
    checked = None
    if attrs:
        found: list = []
        for key, value in attrs.items():
            if key != "aux":  # aux is the forward's own product, never visible to the caller before this
                _attr_tensors(value, found)
        if found:
            checked = tuple((t, t._version) for t in found)
    node.spec = spec
    node.n = n
    node.saved_out = out if spec.saves_out else None
    # plain tuples of ints: the cyclic collector untracks them at its first pass, so a long graph
    # keeps fewer objects for it to scan again and again (a torch.Size, a tuple subclass, stays)
    node.versions = None if versions is None else tuple(versions)
    node.checked = checked
    node.attrs = attrs
    node.shape = tuple(out.shape)
    node.dtype = out.dtype
    node.hooks = None
    if _active_graphs:
        for graph in _active_graphs:
            graph._nodes.add(node)
    return node
