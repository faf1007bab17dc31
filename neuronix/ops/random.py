"""Random sampling with torch's generators: a seeded run draws what torch draws."""

from __future__ import annotations
