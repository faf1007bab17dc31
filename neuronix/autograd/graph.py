"""The recorded graph: one ``Node`` per differentiable op application.

Memory by construction: strong references point only backward (tensor -> node ->
input nodes / leaf tensors). A node keeps the raw ``torch.Tensor`` values its VJPs
need (never the neuronix output tensor), so ``exp``/``tanh``/``sigmoid`` that save their
own output create no reference cycle and reference counting alone frees a graph.
"""

from __future__ import annotations

import weakref

_active_graphs: list[AutogradGraph] = []

# Marks a node whose saved tensors were released by a backward pass without retain_graph.
FREED = ("<freed>",)


class Node:
    """One application of a registered op.

    ``edges[i]`` says where the gradient of input ``i`` goes: another ``Node``, a leaf
    ``Tensor`` that requires grad, or ``None``. ``saved[i]`` holds the raw value of input
    ``i`` when the op's VJPs read it (``()`` when they read none), ``saved_out`` the raw
    output when they read it, and ``versions`` the torch version counters of the saved
    tensors (inputs, then the output) at save time — ``None`` when no tensor is saved —
    checked before use exactly as torch's ``SavedVariable`` does; ``checked`` holds the
    ``(tensor, version)`` pairs of the index and mask tensors among the attributes, checked
    the same way. ``shape`` and ``dtype`` describe the node's output: a gradient sent along
    an edge to this node is reduced and cast to them (one op application has exactly one
    output tensor). Nodes are built by ``registry._record`` alone (slot by slot: it runs once
    per recorded op), so there is no ``__init__``.
    """

    __slots__ = ("spec", "edges", "saved", "saved_out", "versions", "checked", "attrs", "shape", "dtype", "hooks",
                 "__weakref__")

    def name(self) -> str:
        """The op's registered name, e.g. ``MulBackward``-style ``"mul"``."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"<{self.spec.name}Backward>"


class AutogradGraph:
    """A scope whose nodes are counted through weak references.

    ``with nx.AutogradGraph() as graph: ...`` records every node created in the body;
    ``graph.live_nodes()`` is how many of them are still alive, the leak check's measure.
    """

    def __init__(self) -> None:
        self._nodes: weakref.WeakSet[Node] = weakref.WeakSet()

    def __enter__(self) -> AutogradGraph:
        _active_graphs.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _active_graphs.remove(self)

    def live_nodes(self) -> int:
        """Number of nodes recorded in this scope that are still referenced."""
        return len(self._nodes)

    def nodes(self) -> list[Node]:
        """The nodes recorded in this scope that are still alive."""
        return list(self._nodes)
