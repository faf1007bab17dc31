"""Sorting, selection, order statistics, scans and counting: sort, topk, median, quantile, unique, cummax, ..."""

from __future__ import annotations
