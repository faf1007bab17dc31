"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their cells (issue 14: recurrent helper)."""

from __future__ import annotations

__all__: list[str] = []
