"""Mirrors: pointwise."""

from __future__ import annotations
