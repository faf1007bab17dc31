"""Variants agree: every spelling of an op gives torch's values and gradients (check ``variant``).

For an op mirror that calls a public name plainly (``nx.X``, ``Tensor.X``, ``F.X`` or a Python
operator), the variants of that name are derived by introspection, never listed per op:

* the function ``nx.X`` and the method ``Tensor.X`` (whichever the mirror is not), and torch's
  aliases of ``X`` (read from torch's own docstrings: "Alias for :func:`torch.abs`"), each as
  function and method;
* the in-place method ``Tensor.X_`` (and ``F.X_`` / ``F.X(..., inplace=True)``), applied to a
  non-leaf copy of the first input, since a leaf that requires grad cannot change in place: the
  gradient flows through the copy to the inputs, as in torch; the copy itself must hold the result;
* ``out=``, where torch's function documents it (values only: torch refuses out= under autograd);
* the Python operators that call ``X`` (``+``, reflected ``y.__radd__(x)``, ``+=`` on a non-leaf copy,
  ``@``, ``**``, comparisons, ...: ``BINARY_OPERATORS`` and ``UNARY_OPERATORS`` below, a fact about
  Python's data model).

Each variant runs on the example's sample in both libraries and is compared with torch's same
variant: values, and gradients under the example's upstream gradient where it is differentiable.
Only variants torch has and neuronix claims public are compared; those torch has and neuronix lacks
are listed by ``missing_variants()`` (``python -m conformance.kinds.variants``) and do not fail the gate.
``check`` also runs ``layouts`` (non-contiguous upstream gradients, stride-0 expanded inputs); the module
driver runs ``twins`` (module vs functional). All rotate over a case's examples (``ROTATION``) to stay cheap.
"""

from __future__ import annotations

import functools
import inspect
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

import neuronix as nx
from conformance.closeness import to_torch
from conformance.kinds.common import (
    NxConst,
    NxLeaf,
    TorchLeaf,
    build_call,
    current_example,
    grads,
    outputs,
    randn_like,
    slot_value,
)
from conformance.mirror import FLOATS, REGISTRY, Comparison
from conformance.trace import Mismatch, track

# Python's operators and the torch function each one calls: name -> (operator, reflected dunder,
# augmented operator). A fact about Python's data model and torch.Tensor, not a list of ops.
BINARY_OPERATORS = {
    "add": (operator.add, "__radd__", operator.iadd),
    "sub": (operator.sub, "__rsub__", operator.isub),
    "mul": (operator.mul, "__rmul__", operator.imul),
    "div": (operator.truediv, "__rtruediv__", operator.itruediv),
    "floor_divide": (operator.floordiv, "__rfloordiv__", operator.ifloordiv),
    "remainder": (operator.mod, "__rmod__", operator.imod),
    "pow": (operator.pow, "__rpow__", operator.ipow),
    "matmul": (operator.matmul, "__rmatmul__", operator.imatmul),
    "bitwise_and": (operator.and_, "__rand__", operator.iand),
    "bitwise_or": (operator.or_, "__ror__", operator.ior),
    "bitwise_xor": (operator.xor, "__rxor__", operator.ixor),
    "eq": (operator.eq, None, None), "ne": (operator.ne, None, None), "lt": (operator.lt, None, None),
    "le": (operator.le, None, None), "gt": (operator.gt, None, None), "ge": (operator.ge, None, None),
}
UNARY_OPERATORS = {"neg": operator.neg, "abs": operator.abs, "positive": operator.pos, "bitwise_not": operator.invert}
_BY_OPERATOR = {op: name for name, (op, _, _) in BINARY_OPERATORS.items()} | {op: n for n, op in UNARY_OPERATORS.items()}

# Example k of a case runs the name variants at positions k, k + ROTATION, ... (the CI profile's 4 examples: each
# once per dtype), and one rerun: half the upstream layouts (examples 0, 2, ...) or the expanded inputs (1, 3, ...).
ROTATION = 4


# ----- what torch says about names ------------------------------------------------------------
@functools.cache
def torch_aliases() -> dict[str, str]:
    """``{alias: canonical}`` of torch's top-level functions, read from their docstrings."""
    found = {}
    for name in dir(torch):
        doc = getattr(getattr(torch, name, None), "__doc__", None)
        if isinstance(doc, str):
            m = re.search(r"Alias (?:for|of) :(?:func|meth):`(?:torch\.)?(\w+)`", doc)
            if m and m.group(1) != name:
                found[name] = m.group(1)
    return found


def canonical(name: str) -> str:
    return torch_aliases().get(name, name)


def _names_of(name: str) -> list[str]:
    """``name``'s canonical name first, then every torch alias of it."""
    base = canonical(name)
    return [base] + sorted(a for a, c in torch_aliases().items() if c == base)


def public_function(ns: str, name: str) -> bool:
    from neuronix.ops.public import exported

    return callable(exported(ns).get(name))


def _nx_namespace(ns: str):
    return nx.nn.functional if ns == "nn.functional" else nx


def _torch_namespace(ns: str):
    return torch.nn.functional if ns == "nn.functional" else torch


# ----- the variants of a name ------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One spelling of an op. ``call(lib, args, kwargs, shape)`` runs it with ``lib`` torch or nx; ``shape``
    is the out-of-place result's shape (what an in-place target is expanded to). ``inplace`` calls return
    ``(result, the tensor modified)``."""

    label: str
    call: Callable
    grad: bool = True
    inplace: bool = False
    out: str | None = None  # the function name, for ``out=`` (values only, run apart)
    # what the sample must be: "any", "tensor" (a tensor first: methods, in-place), "pair" (two positional
    # arguments, no keywords: binary operators), "pair, tensor" (as "pair", a tensor first: augmented
    # assignment), "pair, tensor second" (reflected dunders, called on the second)
    needs: str = "any"


def _function(ns: str, name: str) -> Callable:
    def call(lib, args, kwargs, shape):
        space = _torch_namespace(ns) if lib is torch else _nx_namespace(ns)
        return getattr(space, name)(*args, **kwargs)

    return call


def _method(name: str) -> Callable:
    def call(lib, args, kwargs, shape):
        return getattr(args[0], name)(*args[1:], **kwargs)

    return call


def _copy(x, shape):
    """A non-leaf copy of ``x`` (in the graph when ``x`` is) of the result's shape."""
    return x.expand(shape).clone()


def _inplace_method(name: str) -> Callable:
    def call(lib, args, kwargs, shape):
        target = _copy(args[0], shape)
        return getattr(target, name)(*args[1:], **kwargs), target

    return call


def _inplace_function(ns: str, name: str, flag: bool) -> Callable:
    """``F.X_(copy, ...)``, or ``F.X(copy, ..., inplace=True)`` when ``flag``."""

    def call(lib, args, kwargs, shape):
        space = _torch_namespace(ns) if lib is torch else _nx_namespace(ns)
        target = _copy(args[0], shape)
        extra = {"inplace": True} if flag else {}
        return getattr(space, name)(target, *args[1:], **kwargs, **extra), target

    return call


def _binary(op) -> Callable:
    return lambda lib, args, kwargs, shape: op(args[0], args[1])


def _reflected(dunder: str) -> Callable:
    return lambda lib, args, kwargs, shape: getattr(args[1], dunder)(args[0])


def _augmented(op) -> Callable:
    def call(lib, args, kwargs, shape):
        target = _copy(args[0], shape)
        return op(target, args[1]), target

    return call


def _unary(op) -> Callable:
    return lambda lib, args, kwargs, shape: op(args[0])


def _has_method(name: str) -> tuple[bool, bool]:
    """(torch has ``Tensor.<name>``, neuronix has it)."""
    return callable(getattr(torch.Tensor, name, None)), callable(getattr(nx.Tensor, name, None))


def _torch_takes_out(fn) -> bool:
    """Whether torch documents ``out`` in one of ``fn``'s signature lines (``exp(input, *, out=None) -> Tensor``,
    ``abs(input: Tensor, *, out: Optional[Tensor]) -> Tensor``)."""
    doc = getattr(fn, "__doc__", None) or ""
    return re.search(r"^\w+\(.*\bout(=None|: Optional).*\) ->", doc, re.M) is not None


def _nx_takes_out(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "out" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def derive(ns: str, name: str, own: str) -> tuple[list[Variant], list[str]]:
    """The variants of ``<ns>.<name>`` other than the mirror's own form ``own`` ("function", "method",
    "operator"): ``(compared variants, variants torch has that neuronix lacks)``."""
    found, missing = [], []

    def offer(label, torch_has, nx_has, variant):
        if torch_has and nx_has:
            found.append(variant)
        elif torch_has:
            missing.append(label)

    names = _names_of(name) if ns == "" else [name]
    t_space = _torch_namespace(ns)
    prefix = "F." if ns == "nn.functional" else "nx."
    for n in names:
        if not (n == name and own == "function"):
            offer(f"{prefix}{n}", callable(getattr(t_space, n, None)), public_function(ns, n),
                  Variant(f"function {prefix}{n}", _function(ns, n)))
        if ns == "nn.functional":
            continue
        if not (n == name and own == "method"):
            offer(f"Tensor.{n}", *_has_method(n), Variant(f"method Tensor.{n}", _method(n), needs="tensor"))
        offer(f"Tensor.{n}_", *_has_method(n + "_"),
              Variant(f"in-place Tensor.{n}_ on a non-leaf copy", _inplace_method(n + "_"), inplace=True,
                      needs="tensor"))
    base = names[0]
    t_fn = getattr(t_space, base, None)
    if ns == "nn.functional":
        offer(f"F.{base}_", callable(getattr(t_space, base + "_", None)), public_function(ns, base + "_"),
              Variant(f"in-place F.{base}_ on a non-leaf copy", _inplace_function(ns, base + "_", False), inplace=True,
                      needs="tensor"))
        try:
            takes_flag = "inplace" in inspect.signature(t_fn).parameters
        except (TypeError, ValueError):
            takes_flag = False
        nx_fn = getattr(nx.nn.functional, base, None)
        nx_flag = nx_fn is not None and "inplace" in inspect.signature(nx_fn).parameters
        offer(f"F.{base}(inplace=True)", takes_flag, nx_flag,
              Variant(f"F.{base}(inplace=True) on a non-leaf copy", _inplace_function(ns, base, True), inplace=True,
                      needs="tensor"))
    if ns == "" and callable(t_fn) and _torch_takes_out(t_fn):
        nx_fn = getattr(_nx_namespace(ns), base, None)
        offer(f"{prefix}{base}(out=)", True, public_function(ns, base) and _nx_takes_out(nx_fn),
              Variant(f"{prefix}{base}(..., out=)", _function(ns, base), grad=False, out=base))
    if ns == "":
        binary = BINARY_OPERATORS.get(base)
        if binary is not None:
            op, reflected, augmented = binary
            if own != "operator":
                found.append(Variant(f"operator {op.__name__}", _binary(op), needs="pair"))
            if reflected:
                offer(f"Tensor.{reflected}", *_has_method(reflected),
                      Variant(f"reflected y.{reflected}(x)", _reflected(reflected), needs="pair, tensor second"))
                offer(f"Tensor.__i{reflected[3:]}", *_has_method(f"__i{reflected[3:]}"),
                      Variant(f"augmented {augmented.__name__} on a non-leaf copy", _augmented(augmented), inplace=True,
                              needs="pair, tensor"))
        if base in UNARY_OPERATORS and own != "operator":
            dunder = f"__{UNARY_OPERATORS[base].__name__.strip('_')}__"
            offer(f"Tensor.{dunder}", *_has_method(dunder),
                  Variant(f"operator {dunder}", _unary(UNARY_OPERATORS[base]), needs="tensor"))
    return found, missing


def plain_call(mirror) -> tuple[str, str, str] | None:
    """``(namespace, name, form)`` when ``mirror`` calls a public name with the sample's arguments as they
    are (so every variant of that name can take the same sample); None for composed calls."""
    name = mirror.name.split("[", 1)[0]
    fn = mirror.nx
    if name.startswith("Tensor."):
        attr = name.removeprefix("Tensor.")
        if attr.startswith("__") and attr.endswith("__"):
            base = _BY_OPERATOR.get(fn)
            return ("", base, "operator") if base and attr in (f"__{fn.__name__.strip('_')}__",) else None
        if attr.endswith("_") or getattr(fn, "__name__", "") != f"Tensor.{attr}":
            return None
        return "", canonical(attr), "method"
    if name.startswith("nn.functional."):
        attr = name.removeprefix("nn.functional.")
        return ("nn.functional", attr, "function") if fn is getattr(nx.nn.functional, attr, None) else None
    if "." not in name and fn is getattr(nx, name, None):
        return "", canonical(name), "function"
    return None


def _owns(mirror, ns: str, name: str) -> bool:
    """Whether ``mirror`` runs ``name``'s variants: a bracketed mirror (its own sample) always; otherwise the
    first plain mirror among the canonical function, its method and its operator, so each set runs once."""
    if "[" in mirror.name:
        return True
    prefix = "nn.functional." if ns == "nn.functional" else ""
    candidates = [f"{prefix}{name}", f"Tensor.{name}"]
    if name in BINARY_OPERATORS:
        candidates.append(f"Tensor.__{BINARY_OPERATORS[name][0].__name__.strip('_')}__")
    elif name in UNARY_OPERATORS:
        candidates.append(f"Tensor.__{UNARY_OPERATORS[name].__name__.strip('_')}__")
    for c in candidates:
        if c == mirror.name:  # the first candidate by name (the registry's entry, or a test's stand-in for it)
            return True
        owner = REGISTRY.get(c)
        if owner is not None and plain_call(owner) is not None:
            return owner is mirror or owner.name == mirror.name
    return True


def missing_variants() -> dict[str, list[str]]:
    """Per mirrored name: the variants torch has that neuronix does not expose (reported, not gated)."""
    import conformance.mirrors  # noqa: F401  (fills the registry)

    report = {}
    for mirror in REGISTRY.values():
        call = plain_call(mirror) if getattr(mirror, "kind", "") == "op" else None
        if call is None or not _owns(mirror, *call[:2]):
            continue
        missing = derive(*call)[1]
        if missing:
            report[mirror.name] = missing
    return report


# ----- running one variant ---------------------------------------------------------------------
def _result_shape(ex):
    """The out-of-place result's shape (the first output), from torch without recording."""
    args, kwargs = build_call(ex.sample, [], TorchLeaf())
    with torch.no_grad():
        first = outputs(ex.mirror, ex.mirror.torch(*args, **kwargs))[0][1]
    return first.shape if isinstance(first, torch.Tensor) else None


def _applies(v: Variant, sample) -> bool:
    """Whether the sample fits the variant's spelling (see ``Variant.needs``)."""
    args = sample.args

    def tensor_at(i):
        return len(args) > i and isinstance(args[i], torch.Tensor) and i not in sample.raw_args

    if "pair" in v.needs and (len(args) != 2 or sample.kwargs):
        return False
    if "tensor second" in v.needs:
        return tensor_at(1)
    return tensor_at(0) if "tensor" in v.needs else True


def run_variant(ex, v: Variant, shape, sample=None) -> Iterator[Comparison]:
    """``v`` on the example's sample (or ``sample``) in both libraries: outputs, the modified tensor of an
    in-place spelling, and gradients under the example's upstream gradient."""
    if v.out is not None:
        yield from _run_out(ex, v)
        return
    sample = sample or ex.sample
    slots = ex.slots if (v.grad and ex.mirror.grad) else []
    t_args, t_kwargs = build_call(sample, slots, TorchLeaf())
    try:
        t_result = v.call(torch, t_args, t_kwargs, shape)
    except Exception:  # noqa: BLE001 - torch refuses this spelling on this sample (a broadcast in-place target, ...)
        return
    n_args, n_kwargs = build_call(sample, slots, NxLeaf())
    try:
        n_result = v.call(nx, n_args, n_kwargs, shape)
    except Exception as err:  # noqa: BLE001 - torch returned: neuronix must too
        raise Mismatch("variant", f"{v.label}: torch returned, neuronix raised {type(err).__name__}: {err}") from None
    if v.inplace:
        (t_result, t_target), (n_result, n_target) = t_result, n_result
        track(n_target, label=f"{v.label} target")
        yield Comparison("variant", f"{v.label}: the modified tensor", to_torch(n_target), to_torch(t_target))
    t_out, n_out = outputs(ex.mirror, t_result), outputs(ex.mirror, n_result)
    track(*[o for _, o in n_out], label=f"{v.label} output")
    yield Comparison("variant", f"{v.label}: output", to_torch([o for _, o in n_out]), to_torch([o for _, o in t_out]))
    if not slots or len(t_out) != len(n_out):
        return
    floats = [k for k, (_, o) in enumerate(t_out) if isinstance(o, torch.Tensor) and o.requires_grad]
    if not floats:
        return
    by_position = dict(zip(ex.floats, ex.upstream))  # the example's upstream gradients, where the outputs match
    ups = []
    for k in floats:
        u = by_position.get(k)
        ups.append(u if u is not None and u.shape == t_out[k][1].shape else randn_like(t_out[k][1], ex.gen))
    t_leaves = [slot_value(t_args, p) for _, p in slots]
    n_leaves = [slot_value(n_args, p) for _, p in slots]
    try:
        t_grads = grads([t_out[k][1] for k in floats], t_leaves, ups, torch, False)
    except NotImplementedError:  # torch has no derivative for this spelling (acosh_, asinh_, atanh_): values only
        return
    n_grads = grads([n_out[k][1] for k in floats], n_leaves, ups, nx, False)
    track(*n_grads, label=f"{v.label} gradient")
    for (label, _), ng, tg in zip(slots, n_grads, t_grads):
        yield Comparison("variant", f"{v.label}: grad {label}", to_torch(ng), to_torch(tg))


def _run_out(ex, v: Variant) -> Iterator[Comparison]:
    """``f(..., out=o)`` on constants: torch's returned value and ``o``, against neuronix's."""
    t_args, t_kwargs = build_call(ex.sample, [], TorchLeaf())
    fn = getattr(_torch_namespace(""), v.out)
    with torch.no_grad():
        try:
            expected = fn(*t_args, **t_kwargs)
            if not isinstance(expected, torch.Tensor):
                return
            t_out = torch.empty_like(expected, memory_format=torch.contiguous_format)
            t_returned = fn(*t_args, **t_kwargs, out=t_out)
        except Exception:  # noqa: BLE001 - torch takes no out= here (TypeError) or refuses this sample
            return
    n_args, n_kwargs = build_call(ex.sample, [], NxConst())
    n_out = nx.Tensor(torch.empty_like(expected, memory_format=torch.contiguous_format))
    try:
        with nx.no_grad():
            n_returned = getattr(nx, v.out)(*n_args, **n_kwargs, out=n_out)
    except Exception as err:  # noqa: BLE001 - neuronix claims out= (its signature): it must work
        raise Mismatch("variant", f"{v.label}: torch returned, neuronix raised {type(err).__name__}: {err}") from None
    def compared(result):  # what the mirror compares of a result (empty: its metadata, never its memory)
        return [value for _, value in outputs(ex.mirror, result)]

    yield Comparison("variant", f"{v.label}: the out tensor", to_torch(compared(n_out)), compared(t_out))
    yield Comparison("variant", f"{v.label}: returned value", to_torch(compared(n_returned)), compared(t_returned))


def check(ex) -> Iterator[Comparison]:
    """The variants of the mirror's name (rotating over the case's examples), then the upstream layouts."""
    if ex.dtype not in FLOATS:
        return
    k = current_example() % ROTATION
    call = plain_call(ex.mirror)
    if call is not None and _owns(ex.mirror, call[0], call[1]):
        variants = derive(*call)[0]  # not cached: a name patched in a test (or a session) is read afresh
        chosen = [v for i, v in enumerate(variants) if i % ROTATION == k and _applies(v, ex.sample)]
        shape = _result_shape(ex) if any(v.inplace for v in chosen) else None
        for v in chosen:
            if v.inplace and shape is None:
                continue
            yield from run_variant(ex, v, shape)
    # one rerun per example: the upstream layouts (half of them, alternating) on even examples, expanded inputs on odd
    from conformance.kinds import layouts  # it builds on this module's Variant and run_variant

    if ROTATION == 1 or k % 2 == 0:
        yield from layouts.upstream_layouts(ex, k // 2)
    if ROTATION == 1 or k % 2 == 1:
        yield from layouts.expanded_inputs(ex)


if __name__ == "__main__":
    for mirror_name, names in sorted(missing_variants().items()):
        print(f"{mirror_name}: {', '.join(names)}")
