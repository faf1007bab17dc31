"""What a driver tells the runner about the example it is running, besides its Comparisons.

``track(t, ...)`` registers neuronix tensors (outputs, intermediates, gradients) whose weak
references must be dead once the example is over (the leak check); ``note(**info)``
records what the example was (input shapes, strides, keyword arguments) for the report
and the repro printout. The runner collects both with ``with recording() as example:``;
outside such a block they are no-ops, so drivers stay usable on their own.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager


class Example:
    """The bookkeeping of one running example."""

    def __init__(self) -> None:
        self.refs: list[tuple[str, weakref.ref]] = []
        self.info: dict = {}


_current: list[Example] = []  # innermost last


@contextmanager
def recording() -> Iterator[Example]:
    """Collect what ``track`` and ``note`` receive inside the block into a fresh ``Example``."""
    example = Example()
    _current.append(example)
    try:
        yield example
    finally:
        _current.pop()


def track(*tensors, label: str = "tensor") -> None:
    """Weakly remember ``tensors`` (nx.Tensor or torch.Tensor; others ignored) for the leak check."""
    if not _current:
        return
    for i, t in enumerate(tensors):
        try:
            _current[-1].refs.append((f"{label} {i}" if len(tensors) > 1 else label, weakref.ref(t)))
        except TypeError:
            pass


def note(**info) -> None:
    """Record facts about the example (``inputs=[...]``, ``kwargs=...``) for the report."""
    if _current:
        _current[-1].info.update(info)


def describe(value) -> str:
    """A short description of a value: shape, dtype and layout of tensors; repr of the rest."""
    import torch

    data = getattr(value, "data", value) if not isinstance(value, torch.Tensor) else value
    if isinstance(data, torch.Tensor):
        layout = "" if data.is_contiguous() else f" strides={tuple(data.stride())}"
        return f"{tuple(data.shape)} {str(data.dtype).removeprefix('torch.')}{layout}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Rejected(Exception):
    """The drawn example is invalid for both libraries (both raised): it is skipped, not judged."""


# How torch words the error of a function it has removed but still names (torch 2.14's torch.cholesky and torch.qr;
# torch 2.13 still computes them): where the installed torch raises it, neuronix must raise the same error.
TORCH_REMOVED = "is now removed"
# The start of a rejection in which both libraries raised torch's removal error, the same type and message.
REMOVED_PREFIX = "the installed torch removed this function and neuronix raises its error: "


class Mismatch(Exception):
    """Neuronix and its oracle disagree in a way that is not a value (one raised, wrong result type, ...)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
