"""Mirrors of in-place updates written into a view of a non-leaf (torch's ``CopySlices``).

``y = x * 1; y[1:].mul_(w)`` changes ``y`` through its view: neuronix records it as a
``copy_slices`` node on the base (``neuronix/ops/inplace.py``), whose rules send the base's
gradient around the view's region and the region's gradient through the view op. The derived
in-place mirrors (``mirrors/inplace.py``) update a whole clone, never a view of one, so no case
applied ``copy_slices`` (``python -m conformance mutate`` listed every fault planted in it as a
survivor). Each mirror here is one small program run identically on both libraries: a non-leaf
base, one view of it (slice, diagonal, transposed row, select, a view of a view), one in-place
op on that view; the base is returned, so values, gradients of ``x`` and ``w``, second
derivatives and every other op check run through ``copy_slices``. Basic slicing only: advanced
(mask, index tensor) indexing copies and is ``index_put``, mirrored elsewhere.
"""

from __future__ import annotations

from hypothesis import strategies as st

from conformance.mirror import WITH_HALF, OpMirror, Sample, register
from conformance.strategies import tensor

ints = st.integers


def _slice_mul(x, w):
    y = x * 1
    y[1:].mul_(w)
    return y


def _diagonal_add(x, w):
    y = x * 1
    y.diagonal().add_(w)
    return y


def _transposed_row_copy(x, w):
    y = x * 1
    y.t()[0].copy_(w)
    return y


def _select_sigmoid(x, k):
    y = x * 1
    y.select(0, k).sigmoid_()
    return y


def _view_of_view_mul(x, w):
    # a chain of views: the update climbs two copy_slices, the inner base's and the outer base's
    y = x * 1
    y[:, 1:][0].mul_(w)
    return y


def _matrix(draw, dtype, device, rows: int = 2, cols: int = 1):
    return tensor(draw, (draw(ints(rows, 4)), draw(ints(cols, 4))), dtype, device)


def _slice_sample(draw, dtype, device):
    x = _matrix(draw, dtype, device)
    w_shape = draw(st.sampled_from([(x.shape[0] - 1, x.shape[1]), (x.shape[1],), (1, x.shape[1]), ()]))
    return Sample((x, tensor(draw, w_shape, dtype, device)))


def _diagonal_sample(draw, dtype, device):
    x = _matrix(draw, dtype, device, rows=1)
    return Sample((x, tensor(draw, (min(x.shape),), dtype, device)))


def _transposed_row_sample(draw, dtype, device):
    x = _matrix(draw, dtype, device, rows=1)
    return Sample((x, tensor(draw, draw(st.sampled_from([(x.shape[0],), (1,), ()])), dtype, device)))


def _select_sample(draw, dtype, device):
    x = _matrix(draw, dtype, device, rows=1)
    return Sample((x, draw(ints(-x.shape[0], x.shape[0] - 1))))


def _view_of_view_sample(draw, dtype, device):
    x = _matrix(draw, dtype, device, rows=1, cols=2)
    return Sample((x, tensor(draw, draw(st.sampled_from([(x.shape[1] - 1,), ()])), dtype, device)))


def _mirror(name: str, program, sample) -> OpMirror:
    return OpMirror(f"inplace_view.{name}", program, program, sample, dtypes=WITH_HALF,
                    note="an in-place op into a view of a non-leaf: copy_slices (conformance/mirrors/inplace_views.py)")


register(
    _mirror("slice_mul_", _slice_mul, _slice_sample),
    _mirror("diagonal_add_", _diagonal_add, _diagonal_sample),
    _mirror("t_select_copy_", _transposed_row_copy, _transposed_row_sample),
    _mirror("select_sigmoid_", _select_sigmoid, _select_sample),
    _mirror("view_of_view_mul_", _view_of_view_mul, _view_of_view_sample),
)
