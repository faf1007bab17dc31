"""Mirrors: decompositions."""

from __future__ import annotations
