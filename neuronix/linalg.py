"""``nx.linalg``: torch.linalg's names and signatures.

The functions are defined with the ops (``neuronix/ops``) and marked ``@public(namespace="linalg")``;
this module exports exactly what that registry holds, so ``__all__`` and the conformance coverage list
are one list (``ops/public.py``).
"""

from __future__ import annotations

import neuronix.ops  # noqa: F401  (fills the registry first)
from neuronix.ops.public import exported as _exported

globals().update(_exported("linalg"))
__all__ = sorted(_exported("linalg"))
