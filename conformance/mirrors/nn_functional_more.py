"""Mirrors: nn_activation_more."""

from __future__ import annotations
