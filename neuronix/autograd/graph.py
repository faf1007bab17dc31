"""The recorded graph: one ``Node`` per differentiable op application.

Memory by construction: strong references point only backward (tensor -> node ->
input nodes / leaf tensors). A node keeps the raw ``torch.Tensor`` values its VJPs
need (never the neuronix output tensor), so ``exp``/``tanh``/``sigmoid`` that save their
own output create no reference cycle and reference counting alone frees a graph.
"""

from __future__ import annotations

import weakref

_active_graphs: list[AutogradGraph] = []

# ``node.versions`` of a node whose saved tensors a backward pass without retain_graph released.
FREED = ("<freed>",)


class Node(list):
    """One application of a registered op: the list of its edges, then its saved inputs.

    ``node[i]`` for ``i < node.n`` says where the gradient of input ``i`` goes: another
    ``Node``, a leaf ``Tensor`` that requires grad, or ``None``. When the op's rules read
    inputs, ``node[n + i]`` holds the raw value of input ``i`` (``None`` for inputs not
    read); a node that saved none is its edges alone. One list for both, and the node being
    that list, keeps a recorded op to one object for Python's cyclic collector to scan again
    and again (plus the saved tensors): the per-op cost of a long graph stays flat.
    ``saved_out`` is the raw output when the rules read it, ``versions`` the torch version
    counters of the saved tensors (inputs, then the output) at save time — ``None`` when no
    tensor is saved, ``FREED`` once released — checked before use exactly as torch's
    ``SavedVariable`` does; ``checked`` holds the ``(tensor, version)`` pairs of the index
    and mask tensors among the attributes, checked the same way. ``shape`` and ``dtype``
    describe the node's output: a gradient sent along an edge to this node is reduced and
    cast to them (one op application has exactly one output tensor). Nodes are built by
    ``registry._record`` alone. Identity, not contents, is a node's equality and hash.
    """

    __slots__ = ("spec", "n", "saved_out", "versions", "checked", "attrs", "shape", "dtype", "hooks", "__weakref__")
    __hash__ = object.__hash__
    __eq__ = object.__eq__
    __ne__ = object.__ne__

    def name(self) -> str:
        """The op's registered name, e.g. ``MulBackward``-style ``"mul"``."""
        return self.spec.name

    def __repr__(self) -> str:
        return f"<{self.spec.name}Backward>"

    def __bool__(self) -> bool:
        return True


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
