"""``nn.Transformer`` and its encoder/decoder stacks and layers (issue 14: attention helper)."""

from __future__ import annotations

__all__: list[str] = []
