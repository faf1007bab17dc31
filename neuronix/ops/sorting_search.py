"""Searching and counting ops with no derivative: unique, unique_consecutive, histc, histogram, histogramdd,
bincount, bucketize, searchsorted, isin. torch's kernels on the raw values; the results never require grad (torch defines no
gradient for any of them)."""

from __future__ import annotations

from collections import namedtuple

import torch

from neuronix.ops.registry import op_error, public
from neuronix.tensor import Tensor


def _wrap(out):
    if isinstance(out, torch.Tensor):
        return Tensor._make(out, None)
    if isinstance(out, (tuple, list)):
        return tuple(_wrap(o) for o in out)
    return out


def _raw(value):
    return value.data if isinstance(value, Tensor) else value


def _call(name: str, torch_fn, *args, **kwargs):
    raws = [_raw(a) for a in args]
    try:
        return _wrap(torch_fn(*raws, **{k: _raw(v) for k, v in kwargs.items()}))
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        raise op_error(name, args, kwargs, err) from err


@public
def unique(input, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False, dim=None):
    """``torch.unique``: the distinct values (or slices along ``dim``), optionally with inverse indices and counts."""
    return _call("unique", torch.unique, input, sorted=sorted, return_inverse=return_inverse,
                 return_counts=return_counts, dim=dim)


@public
def unique_consecutive(input, return_inverse: bool = False, return_counts: bool = False, dim=None):
    """``torch.unique_consecutive``: collapses runs of equal consecutive values (or slices along ``dim``)."""
    return _call("unique_consecutive", torch.unique_consecutive, input, return_inverse=return_inverse,
                 return_counts=return_counts, dim=dim)


@public
def histc(input, bins: int = 100, min=0, max=0):
    """``torch.histc``: a histogram of ``bins`` equal bins over [min, max] (the data's range when both are 0)."""
    return _call("histc", torch.histc, input, bins, min, max)


@public(method=False)
def bucketize(input, boundaries, *, out_int32: bool = False, right: bool = False):
    """``torch.bucketize``: the index of the bucket of ``boundaries`` (sorted, 1-d) each element falls in."""
    return _call("bucketize", torch.bucketize, input, boundaries, out_int32=out_int32, right=right)


@public(method=False)
def searchsorted(sorted_sequence, input, *, out_int32: bool = False, right: bool = False, side=None, sorter=None):
    """``torch.searchsorted``: where ``input``'s values would be inserted into the innermost dim of
    ``sorted_sequence`` to keep it sorted."""
    return _call("searchsorted", torch.searchsorted, sorted_sequence, input, out_int32=out_int32, right=right,
                 side=side, sorter=sorter)


@public(method=False)
def isin(elements, test_elements, *, assume_unique: bool = False, invert: bool = False):
    """``torch.isin``: whether each of ``elements`` occurs in ``test_elements``."""
    return _call("isin", torch.isin, elements, test_elements, assume_unique=assume_unique, invert=invert)


@public
def bincount(input, weights=None, minlength: int = 0):
    """``torch.bincount``: how often each non-negative integer occurs (summing ``weights`` when given)."""
    return _call("bincount", torch.bincount, input, weights, minlength)


HistogramResult = namedtuple("histogram", ("hist", "bin_edges"))
HistogramddResult = namedtuple("histogramdd", ("hist", "bin_edges"))


@public
def histogram(input, bins, *, range=None, weight=None, density: bool = False):
    """``torch.histogram``: ``(hist, bin_edges)`` over ``bins`` (a count or the edges) within ``range``."""
    extent = {} if range is None else {"range": range}  # torch's tensor-bins overload takes no range at all
    return HistogramResult(*_call("histogram", torch.histogram, input, bins, weight=weight, density=density, **extent))


@public(method=False)
def histogramdd(input, bins, *, range=None, weight=None, density: bool = False):
    """``torch.histogramdd``: the histogram of the rows of ``input`` (points in its last dim's space)."""
    extent = {} if range is None else {"range": range}
    hist, edges = _call("histogramdd", torch.histogramdd, input, bins, weight=weight, density=density, **extent)
    return HistogramddResult(hist, list(edges))
