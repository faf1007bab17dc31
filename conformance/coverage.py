"""Neuronix's public surface, paired with the mirror registry.

Public names: every function marked ``@public`` (``neuronix/ops/public.py``: ``nx.<fn>``,
``nn.functional.<fn>`` and any other namespace, read from that one registry), every public
``Tensor`` attribute and operator, every ``nn.Module`` subclass, every ``optim.Optimizer``
subclass and ``optim.lr_scheduler`` class, and ``models.<fn>``. Tensor attributes and classes
are found by introspection: operators, conversions, properties and in-place variants reach
``Tensor`` outside the registry, and classes are not registered. A name is covered when a mirror
has that name or a variant of it (``"sum[dim]"`` covers ``"sum"``). Anything else is a coverage
hole and fails the gate, except the short ``EXEMPT`` list below: tensor bookkeeping that is not
an op, each with the reason it needs no torch mirror.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass


def _same_reason(reason: str, *names: str) -> dict[str, str]:
    return dict.fromkeys(names, reason)


EXEMPT: dict[str, str] = {
    # metadata: plain reads of the wrapped torch tensor, no arithmetic to verify
    **_same_reason(
        "metadata read from .data",
        "Tensor.shape", "Tensor.dtype", "Tensor.device", "Tensor.ndim", "Tensor.is_cuda", "Tensor.size", "Tensor.dim",
        "Tensor.numel", "Tensor.element_size", "Tensor.is_floating_point", "Tensor.is_contiguous", "Tensor.stride",
        "Tensor.data_ptr",
    ),
    "Tensor.data": "the wrapped torch.Tensor itself",
    # conversions out of the framework: no gradient, tested in tests/test_tensor*.py
    "Tensor.item": "returns a Python number", "Tensor.tolist": "returns Python lists",
    "Tensor.numpy": "returns a numpy array",
    # autograd bookkeeping: the engine is what every mirror's gradient checks exercise
    **_same_reason("autograd state", "Tensor.grad", "Tensor.requires_grad", "Tensor.grad_fn", "Tensor.is_leaf"),
    "Tensor.backward": "the engine entry point; every backward check runs it",
    **_same_reason("engine hook; tested in tests/", "Tensor.register_hook", "Tensor.retain_grad"),
    "Tensor.requires_grad_": "autograd flag",
    **_same_reason("leaves the graph by definition", "Tensor.detach", "Tensor.detach_"),
    # factories build leaves from Python data / RNG: no gradient; values tested in tests/
    **_same_reason(
        "factory: builds a leaf, nothing to differentiate; tested in tests/",
        "tensor", "as_tensor", "from_numpy", "empty", "empty_like",
    ),
    # base classes: abstract, exercised through every subclass's mirror
    "nn.Module": "abstract base; exercised by every layer's mirror", "optim.Optimizer": "abstract base",
    "optim.lr_scheduler.LRScheduler": "abstract base",
}


# Dunder operators that are ops (others, like __repr__ or __len__, are Python protocol plumbing).
OPERATORS = (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__",
    "__neg__", "__pos__", "__abs__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
    "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__invert__", "__getitem__",
)


@dataclass
class Coverage:
    public: list[str]  # every public name found
    mirrored: list[str]
    missing: list[str]  # public, not exempt, no mirror: coverage holes
    exempt: dict[str, str]  # name -> reason, for the names actually found
    orphans: list[str]  # mirrors naming nothing public (a renamed or removed API)

    def as_dict(self) -> dict:
        return {"public": len(self.public), "mirrored": len(self.mirrored), "missing": self.missing,
                "exempt": self.exempt, "orphans": self.orphans}


def _defined_in_neuronix(obj) -> bool:
    return (getattr(obj, "__module__", "") or "").startswith("neuronix")


def public_names() -> list[str]:
    """Every public neuronix name that the conformance contract covers."""
    import neuronix as nx
    from neuronix.ops.public import qualified_names

    names = set(qualified_names())
    for attr in dir(nx.Tensor):
        if attr.startswith("_") and attr not in OPERATORS and attr != "__setitem__":
            continue
        if attr in OPERATORS and attr not in vars(nx.Tensor) and getattr(nx.Tensor, attr, None) is getattr(object, attr, None):
            continue  # object's default comparison, not a neuronix operator
        names.add(f"Tensor.{attr}")
    module = getattr(nx.nn, "Module", None)
    if module is not None:
        names |= {f"nn.{n}" for n, c in _public_members(nx.nn, inspect.isclass) if issubclass(c, module)}
    optimizer = getattr(nx.optim, "Optimizer", None)
    if optimizer is not None:
        names |= {f"optim.{n}" for n, c in _public_members(nx.optim, inspect.isclass) if issubclass(c, optimizer)}
    names |= {f"optim.lr_scheduler.{n}" for n, c in _public_members(_optional("neuronix.optim.lr_scheduler"), inspect.isclass)}
    swa_utils = _optional("neuronix.optim.swa_utils")  # its classes (AveragedModel, SWALR), not the names it imports
    names |= {f"optim.swa_utils.{n}" for n, c in _public_members(swa_utils, inspect.isclass) if n in swa_utils.__all__}
    names |= {f"models.{n}" for n, f in _public_members(_optional("neuronix.models"), inspect.isfunction)}
    return sorted(names)


def _optional(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        return None


def _public_members(module, predicate) -> list[tuple[str, object]]:
    if module is None:
        return []
    return [(n, v) for n, v in vars(module).items()
            if not n.startswith("_") and predicate(v) and _defined_in_neuronix(v) and not inspect.ismodule(v)]


def base_name(mirror_name: str) -> str:
    """``"sum[dim]"`` -> ``"sum"``: variants cover their public name."""
    return mirror_name.split("[", 1)[0]


# Mirror name prefixes that check something other than one public name, so they are never orphans:
# the engine's internal ops against their aten twins, programs writing in place into views, module hooks.
PROGRAM_MIRRORS = {
    "aten.": "an internal op applied only inside backward passes, against torch's aten op (mirrors/backward_ops.py)",
    "inplace_view.": "a program writing in place into a view of a non-leaf (mirrors/inplace_views.py)",
    "nn.Module.register_full_backward": "a module with backward hooks (mirrors/hooks.py)",
    "custom.": "a user's nx.autograd.Function against its torch.autograd.Function twin (mirrors/custom.py)",
    "amp.": "mixed-precision training under autocast with a GradScaler, step for step (mirrors/amp.py)",
}


def coverage(registry: dict | None = None) -> Coverage:
    """Pair the public surface with the registry (by default, every spec module's mirrors)."""
    if registry is None:
        import conformance.mirrors  # noqa: F401  (fills the registry)
        from conformance.mirror import REGISTRY as registry
    public = public_names()
    mirrored_bases = {base_name(n) for n in registry}
    missing = [n for n in public if n not in mirrored_bases and n not in EXEMPT]
    exempt = {n: EXEMPT[n] for n in public if n in EXEMPT and n not in mirrored_bases}
    public_set = set(public)
    orphans = sorted({n for n in registry if base_name(n) not in public_set and not n.startswith(tuple(PROGRAM_MIRRORS))})
    return Coverage(public, sorted(n for n in public if n in mirrored_bases), missing, exempt, orphans)
