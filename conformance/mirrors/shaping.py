"""Mirrors: shaping."""

from __future__ import annotations
