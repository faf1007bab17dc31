"""Pointwise math beyond elementwise.py: inverse trigonometric, gamma and error-function families, torch.special."""

from __future__ import annotations
