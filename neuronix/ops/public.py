"""The public surface, one registry: every public function is marked ``@public`` where it is defined.

A namespace is the dotted path of a neuronix module relative to ``neuronix`` and equal to the torch
module it mirrors: ``""`` is ``nx`` itself (``torch``), ``"Tensor"`` the tensor methods, and
``"nn.functional"`` is ``nx.nn.functional`` (``torch.nn.functional``). A namespace rather than a flag
per module, because the reach issues add ``linalg``, ``special`` and ``fft`` the same way, with no new
parameter. Each namespace's module exports what is registered here (``exported``), and the
conformance coverage check lists the same names (``qualified_names``): one list, nothing to keep in sync.
"""

from __future__ import annotations

from collections.abc import Callable

from neuronix.amp.policy import autocast_op
from neuronix.amp.state import autocast_wrapper

NAMESPACES: dict[str, dict[str, Callable]] = {"": {}, "Tensor": {}}
FUNCTIONS = NAMESPACES[""]  # public ``nx.<name>`` functions
METHODS = NAMESPACES["Tensor"]  # public ``Tensor.<name>`` methods


def public(fn: Callable | None = None, *, namespace: str = "", function: bool = True, method: bool | None = None,
           name: str | None = None):
    """Mark ``fn`` as public API, as ``<namespace>.<name>`` (``function``) and ``Tensor.<name>`` (``method``).

    ``method`` defaults to true in the top-level namespace only: torch's ``nn.functional`` names are
    not tensor methods. Used bare (``@public``), with options (``@public(namespace="nn.functional")``)
    or as a call that registers an alias (``clip = public(clamp, name="clip")``).
    """
    if method is None:
        method = not namespace
    if namespace == "Tensor":
        raise ValueError("public: register a method with method=True, not namespace='Tensor'")

    def mark(f: Callable) -> Callable:
        key = name or f.__name__
        op = autocast_op(f"{namespace}.{key}" if namespace else key)
        if op is not None:  # an op torch's autocast casts: the one hook autocast needs (neuronix/amp/state.py)
            f = autocast_wrapper(f, op)
        if function:
            NAMESPACES.setdefault(namespace, {})[key] = f
        if method:
            METHODS[key] = f
        return f

    return mark(fn) if fn is not None else mark


def exported(namespace: str) -> dict[str, Callable]:
    """The public functions of ``namespace``, by name (what its module puts in ``__all__``)."""
    return NAMESPACES.get(namespace, {})


def qualified_names() -> list[str]:
    """Every registered public name as coverage spells it: ``exp``, ``Tensor.exp``, ``nn.functional.gelu``."""
    return sorted(f"{ns}.{n}" if ns else n for ns, names in NAMESPACES.items() for n in names)
