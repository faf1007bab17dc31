"""torch.fft on real and complex inputs."""

from __future__ import annotations
