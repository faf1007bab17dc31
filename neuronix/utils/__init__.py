"""``nx.utils`` (mirrors ``torch.utils``) (issue 14: housekeeping helper)."""

from __future__ import annotations

from neuronix.utils import data  # noqa: F401
