"""Mirrors of the linear-algebra ops: matmul in every rank combination, its strict forms, einsum."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import OpMirror, Sample, register
from conformance.strategies import broadcast_shapes, method, tensor


def _side(draw, max_side: int = 4) -> int:
    return draw(st.integers(0, max_side)) if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, max_side))


def _batch_pair(draw):
    """Two mutually broadcastable, non-empty batch shapes (size-1 dims, missing dims)."""
    (a, b), _ = broadcast_shapes(draw, 2, min_dims=1, max_dims=2, min_side=1, max_side=3)
    return tuple(a), tuple(b)


def _matmul(draw, dtype, device):
    """Every rank pair torch.matmul accepts: vectors, matrices, broadcast batches on either side."""
    left, right = draw(st.sampled_from(["1x1", "2x1", "1x2", "2x2", "Nx1", "1xN", "Nx2", "2xN", "NxN"])).split("x")
    n, k, m = _side(draw), _side(draw), _side(draw)
    batch_a, batch_b = _batch_pair(draw)
    sa = {"1": (k,), "2": (n, k), "N": batch_a + (n, k)}[left]
    sb = {"1": (k,), "2": (k, m), "N": batch_b + (k, m)}[right]
    return Sample((tensor(draw, sa, dtype, device), tensor(draw, sb, dtype, device)))


def _fixed(*builders):
    """Operands of fixed ranks with shared inner sizes: ``builders`` map (n, k, m, b) to a shape."""

    def sample(draw, dtype, device):
        sizes = {"n": _side(draw), "k": _side(draw), "m": _side(draw), "b": draw(st.integers(1, 3))}
        return Sample(tuple(tensor(draw, [sizes[c] for c in spec], dtype, device) for spec in builders))

    return sample


# equation -> subscripts whose letters name the sizes; covers contractions, transposes, full and
# partial sums, diagonals (repeated labels), outer products, broadcast ``...`` and implicit output
EQUATIONS = {
    "ij,jk->ik": ("ij", "jk"), "ij,jk": ("ij", "jk"), "bij,bjk->bik": ("bij", "bjk"), "ij->ji": ("ij",),
    "ij->": ("ij",), "ij->j": ("ij",), "ii->i": ("ii",), "ii": ("ii",), "iij->j": ("iij",), "i,i->": ("i", "i"),
    "i,j->ij": ("i", "j"), "ij,ij->i": ("ij", "ij"), "ij,jk,kl->il": ("ij", "jk", "kl"), "bn,anm,bm->ba": ("bn", "anm", "bm"),
    "...ij,...jk->...ik": ("bij", "jk"), "b...i,...i->b...": ("bci", "ci"), "ii,i->i": ("ii", "i"), "ji": ("ji",),
}


def _einsum(draw, dtype, device):
    equation = draw(st.sampled_from(sorted(EQUATIONS)))
    sizes = {c: draw(st.integers(1, 4)) for c in "abcdeijklmnz"}
    operands = [tensor(draw, [sizes[c] for c in subs], dtype, device) for subs in EQUATIONS[equation]]
    if draw(st.booleans()) and len(operands) > 1:
        return Sample((equation, operands))  # the list form
    return Sample((equation, *operands))


def _reversed_matmul(draw, dtype, device):
    """``b.__rmatmul__(a)`` is ``a @ b``."""
    return Sample(_matmul(draw, dtype, device).args[::-1])


_MATMUL_FORMS = {
    "matmul": _matmul,
    "mm": _fixed("nk", "km"),
    "bmm": _fixed("bnk", "bkm"),
    "mv": _fixed("nk", "k"),
    "dot": _fixed("k", "k"),
    "outer": _fixed("n", "m"),
}
for _name, _sample in _MATMUL_FORMS.items():
    register(
        OpMirror(_name, getattr(nx, _name), getattr(torch, _name), _sample),
        OpMirror(f"Tensor.{_name}", method(_name), method(_name), _sample),
    )
register(
    OpMirror("Tensor.__matmul__", method("__matmul__"), method("__matmul__"), _matmul),
    OpMirror("Tensor.__rmatmul__", method("__rmatmul__"), method("__rmatmul__"), _reversed_matmul),
    OpMirror("einsum", nx.einsum, torch.einsum, _einsum),
)
