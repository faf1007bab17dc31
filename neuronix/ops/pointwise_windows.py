"""torch's window functions, ``scalar_tensor`` and ``empty_strided``: factories (no differentiable input),
made by the one factory wrapper of ``neuronix/factories.py`` (torch's values, dtype, device, requires_grad)."""

from __future__ import annotations

from neuronix.factories import _factory

hann_window = _factory("hann_window")
hamming_window = _factory("hamming_window")
blackman_window = _factory("blackman_window")
bartlett_window = _factory("bartlett_window")
kaiser_window = _factory("kaiser_window")
scalar_tensor = _factory("scalar_tensor")
empty_strided = _factory("empty_strided")
