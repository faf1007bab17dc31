"""``nx.nn.functional``: torch.nn.functional's names, signatures and defaults.

Each function checks its arguments (clear errors naming the op, the expected and the
given shapes), normalises them (ints to tuples, ``'same'`` padding, legacy reduction
flags) and applies one primitive from ``neuronix.ops`` or a short composition of them.
Tensors may be ``nx.Tensor`` or plain ``torch.Tensor`` (constants), as everywhere.

The functions live in one module per family (``activation``, ``loss``, ``conv``, ...), each
marked ``@public(namespace="nn.functional")``; this package exports exactly what that registry
holds, so ``__all__`` and the conformance coverage list are the same list.
"""

from __future__ import annotations

from neuronix.nn.functional import (  # noqa: F401  (registration side effects)
    activation,
    activation_more,
    attention,
    classification,
    conv,
    distance,
    dropout_embedding,
    fractional,
    loss,
    loss_more,
    mha,
    normalization,
    padding,
    pooling,
    spatial,
)
from neuronix.ops.public import exported as _exported

globals().update(_exported("nn.functional"))
__all__ = sorted(_exported("nn.functional"))
