"""nn.functional activations beyond activation.py: glu, celu, rrelu, prelu, shrinks, threshold, softmin, gumbel_softmax, ..."""

from __future__ import annotations
