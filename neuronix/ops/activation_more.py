"""Primitives for the nn.functional activations, normalisations, distances and losses not in activation.py/loss.py."""

from __future__ import annotations
