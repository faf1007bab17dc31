"""``nn.functional.pad``: every padding mode, through one primitive."""

from __future__ import annotations

from neuronix.nn.functional.arguments import shape_of
from neuronix.ops import padding as _padding
from neuronix.ops.public import public

_PAD_MODES = ("constant", "reflect", "replicate", "circular")


@public(namespace="nn.functional")
def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left_last, right_last, left_prev, right_prev, ...)``."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: pad must have an even length of at most 2 * input.ndim = {2 * input.ndim}, got {tuple(pad)} "
            f"for input of shape {shape_of(input)}"
        )
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    return _padding.padded(input, tuple(int(p) for p in pad), mode, value)

