"""Mirrors: spatial."""

from __future__ import annotations
