"""The loss modules beyond the common ones (issue 14: modules helper)."""

from __future__ import annotations

__all__: list[str] = []
