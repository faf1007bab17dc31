"""Mirrors: custom."""

from __future__ import annotations
