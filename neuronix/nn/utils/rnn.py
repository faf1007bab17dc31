"""``nx.nn.utils.rnn``: PackedSequence, pad/pack helpers (issue 14: recurrent helper)."""

from __future__ import annotations

__all__: list[str] = []
