"""Per-kind comparison drivers: ``compare(mirror, draw, dtype, device) -> Iterator[Comparison]``.

Each mirror kind (op, module, optimizer, scheduler) has one driver that runs neuronix and
its oracle on drawn inputs and yields ``Comparison``s; the runner applies tolerances,
leak checks and reporting uniformly, so a driver never judges its own results. What the op
and module drivers share (slots, calls in both libraries, gradients) is in ``kinds/common.py``.
"""

from __future__ import annotations

import importlib

# kind -> "module:function"; imported lazily so a kind's driver can depend on nn/optim.
DRIVERS = {
    "op": "conformance.kinds.op:compare_op",
    "module": "conformance.kinds.module:compare_module",
    "optimizer": "conformance.kinds.optim:compare_optimizer",
    "scheduler": "conformance.kinds.optim:compare_scheduler",
    "amp": "conformance.kinds.amp:compare_amp",
}


def driver(kind: str):
    """The comparison driver for ``kind``."""
    module, _, fn = DRIVERS[kind].partition(":")
    return getattr(importlib.import_module(module), fn)
