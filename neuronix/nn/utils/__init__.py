"""``nx.nn.utils`` (mirrors ``torch.nn.utils``) (issue 14: nn.utils helper owns this file)."""

from __future__ import annotations

from neuronix.nn.utils import rnn  # noqa: F401  (recurrent helper)
