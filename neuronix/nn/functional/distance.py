"""nn.functional distances, normalisations and lookups: normalize, cosine_similarity, pairwise_distance, pdist,
rms/instance/local-response norm, one_hot, bilinear, embedding_bag, and torch's top-level twins (torch.pdist,
torch.rms_norm, torch.layer_norm, torch.batch_norm, torch.embedding, ...).

Each is torch's own composition (ATen's ``cosine_similarity``, ``pairwise_distance``, ``rms_norm``,
``instance_norm``; torch's Python ``normalize`` and ``local_response_norm``), written in neuronix ops,
so the gradients and second derivatives are the composition's, as torch's, including torch's choices
at zero norms and at its ``eps`` clamps; pdist and embedding_bag are torch's kernels (``ops/activation_more.py``).
"""

from __future__ import annotations

import math

import torch

from neuronix.autograd.mode import is_grad_enabled
from neuronix.nn.functional.arguments import as_nx, shape_of
from neuronix.nn.functional.normalization import batch_norm
from neuronix.ops import activation_more as _more
from neuronix.ops.helpers import checked_dims
from neuronix.ops.public import public
from neuronix.ops.registry import apply
from neuronix.tensor import Tensor, unwrap

_F = "nn.functional"


def _write_out(op, result, out):
    """``out=``: the values written into ``out`` (resized as torch resizes), which is returned; like torch,
    refused where the result would need a gradient."""
    if is_grad_enabled() and result.requires_grad:
        raise RuntimeError(f"{op}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")
    target = unwrap(out)
    if tuple(target.shape) != tuple(result.shape):
        target.resize_(result.shape)
    target.copy_(unwrap(result))
    return out


# ----- normalize, cosine_similarity, pairwise_distance, pdist ---------------------------------------------
@public(namespace=_F)
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """``input / max(||input||_p, eps)`` along ``dim``."""
    x = as_nx(input)
    result = x / x.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(x)
    return result if out is None else _write_out("normalize", result, out)


def _norm_clamped(x, dim, eps):
    # ATen clamps the norms in place under no_grad: the value is clamped, the gradient is the norm's
    return apply(_more.CLAMP_MIN_STRAIGHT_THROUGH, x.norm(2, dim, keepdim=True), min=eps)


@public(namespace=_F, name="cosine_similarity")
@public(method=False, name="cosine_similarity")
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """``<x1, x2> / (max(||x1||, eps) max(||x2||, eps))`` along ``dim``, each input divided by its norm first
    (as ATen: the result stays in [-1, 1])."""
    a, b = as_nx(x1), as_nx(x2)
    dtype = torch.result_type(unwrap(a), unwrap(b))
    if not dtype.is_floating_point:
        raise RuntimeError(f"cosine_similarity: expected common dtype to be floating point, yet common dtype is {dtype}")
    shape = torch.broadcast_shapes(shape_of(a), shape_of(b))
    checked_dims("cosine_similarity", (a, b), {"dim": dim, "eps": eps}, dim, ndim=len(shape))  # else norm names itself
    a, b = a.expand(shape), b.expand(shape)
    return ((a / _norm_clamped(a, dim, eps)) * (b / _norm_clamped(b, dim, eps))).sum(dim)


@public(namespace=_F, name="pairwise_distance")
@public(method=False, name="pairwise_distance")
def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """``||x1 - x2 + eps||_p`` over the last dim (broadcasting ``x1`` and ``x2``)."""
    return (as_nx(x1) - x2 + eps).norm(p, -1, keepdim)


@public(namespace=_F, name="pdist")
@public(method=False, name="pdist")
def pdist(input, p=2):
    """The p-norm distances between the rows of a 2-D ``input``, pairs ``i < j`` in row-major order."""
    x = as_nx(input)
    if x.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {x.ndim}D")
    if not x.dtype.is_floating_point:
        raise RuntimeError("pdist only supports floating-point dtypes")
    if p < 0:
        raise RuntimeError("pdist only supports non-negative p values")
    return apply(_more.PDIST, x, p=float(p))


# ----- rms, instance and local-response normalisation -------------------------------------------------------
def _rms_eps(eps, dtype: torch.dtype) -> float:
    """torch's default: the machine epsilon of the computation dtype (float32 for half inputs), held in the
    input's dtype as ATen holds it."""
    if eps is not None:
        return float(eps)
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return float(torch.tensor(torch.finfo(compute).eps, dtype=dtype))


@public(namespace=_F, name="rms_norm")
@public(method=False, name="rms_norm")
def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` dims; half inputs are
    computed in float32, as torch."""
    x = as_nx(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.ndim < len(shape) or shape_of(x)[x.ndim - len(shape):] != shape:
        raise RuntimeError(f"rms_norm: Given normalized_shape={list(shape)}, expected input with shape [*, "
                           f"{', '.join(map(str, shape))}], but got input of size{list(shape_of(x))}")
    if weight is not None and shape_of(weight) != shape:
        raise RuntimeError(f"rms_norm: Expected weight to be of same shape as normalized_shape, but got weight of "
                           f"shape {list(shape_of(weight))} and normalized_shape = {list(shape)}")
    dims = tuple(range(x.ndim - len(shape), x.ndim))
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    up = x.to(compute)
    scale = (up.pow(2).mean(dims, keepdim=True) + _rms_eps(eps, x.dtype)).rsqrt()
    result = (up * scale).to(x.dtype)
    return result if weight is None else result * weight


@public(namespace=_F)
def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Each (sample, channel) slice normalised over its spatial dims: batch norm of the input viewed as one
    sample of N * C channels, as torch computes it; the running statistics are updated with the batch's mean."""
    return _instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps)


@public(method=False, name="instance_norm")
def _instance_norm_top(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                       cudnn_enabled):
    """``torch.instance_norm`` (every argument positional and required, as torch's)."""
    return _instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps)


def _repeat(t, times):
    return None if t is None else as_nx(t).repeat(times)


def _instance_norm(input, weight, bias, running_mean, running_var, use_input_stats, momentum, eps):
    x = as_nx(input)
    if x.ndim < 2:
        raise ValueError(f"instance_norm: expected an input of shape (N, C, *), got shape {shape_of(x)}")
    if use_input_stats and math.prod(shape_of(x)[2:]) == 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(shape_of(x))}")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise RuntimeError("instance_norm: Expected running_mean and running_var to be defined when "
                           "use_input_stats is false")
    n, c = x.shape[0], x.shape[1]
    stats = [None if t is None else unwrap(t).repeat(n) for t in (running_mean, running_var)]
    # contiguous first, as torch: the batch-norm kernel's NaN patterns (a weight of inf times a 0) depend on the layout
    flat = x.contiguous().reshape((1, n * c) + shape_of(x)[2:])
    out = batch_norm(flat, stats[0], stats[1], _repeat(weight, n), _repeat(bias, n), bool(use_input_stats), momentum, eps)
    for t, repeated in zip((running_mean, running_var), stats):
        if t is not None:
            unwrap(t).copy_(repeated.view(n, c).mean(0))
    return out.reshape(shape_of(x))


@public(namespace=_F)
def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """``x / (k + alpha * mean of x**2 over a window of size channels) ** beta`` (torch's composition: an
    average pool of the squares along the channel dim, zero-padded)."""
    from neuronix.nn.functional.padding import pad
    from neuronix.nn.functional.pooling import avg_pool2d

    x = as_nx(input)
    if x.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {x.ndim} dimensions)")
    if x.numel() == 0:
        return input
    sizes = shape_of(x)
    # (N, 1, C, rest): one 2-d average pool with a (size, 1) window covers torch's 2-d and 3-d pools alike
    div = (x * x).reshape((sizes[0], 1, sizes[1], -1))
    div = pad(div, (0, 0, size // 2, (size - 1) // 2))
    div = avg_pool2d(div, (size, 1), stride=1).reshape(sizes)
    return x / (div * alpha + k).pow(beta)


# ----- one_hot, bilinear ------------------------------------------------------------------------------------
@public(namespace=_F)
def one_hot(tensor, num_classes=-1):
    """int64 ``(*, num_classes)`` with a 1 at each index (not differentiable, as torch)."""
    return Tensor(torch.nn.functional.one_hot(unwrap(tensor), num_classes))


@public(namespace=_F, name="bilinear")
@public(method=False, name="bilinear")
def bilinear(input1, input2, weight, bias=None):
    """``y[..., o] = sum_ij x1[..., i] weight[o, i, j] x2[..., j] + bias[o]``."""
    x1, x2, w = as_nx(input1), as_nx(input2), as_nx(weight)
    if x1.ndim != x2.ndim:
        raise RuntimeError(f"bilinear(): input dimensions do not match: got {x1.ndim} and {x2.ndim}")
    if shape_of(x1)[:-1] != shape_of(x2)[:-1]:
        raise RuntimeError(f"bilinear(): input batch dimensions do not match: got {list(shape_of(x1))} and "
                           f"{list(shape_of(x2))}")
    if w.ndim != 3 or x1.shape[-1] != w.shape[1]:
        raise RuntimeError(f"bilinear(): input1 size does not match weight size: got {x1.shape[-1]} but expected "
                           f"{w.shape[1] if w.ndim > 1 else None}")
    if x2.shape[-1] != w.shape[2]:
        raise RuntimeError(f"bilinear(): input2 size does not match weight size: got {x2.shape[-1]} but expected "
                           f"{w.shape[2]}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != w.shape[0]):
        raise RuntimeError(f"bilinear(): bias size does not match weight size: got {shape_of(bias)} but expected "
                           f"({w.shape[0]},)")
    lead = shape_of(x1)[:-1]
    out, i, j = w.shape
    rows1 = x1.reshape((-1, i))
    rows2 = x2.reshape((-1, j))
    # (M, I) @ (I, O*J) -> (M, O, J), then the product with x2 summed over j
    mixed = (rows1 @ w.permute(1, 0, 2).reshape((i, out * j))).reshape((-1, out, j))
    y = (mixed * rows2.unsqueeze(1)).sum(-1).reshape(lead + (out,))
    return y if bias is None else y + bias


# ----- torch's top-level twins of normalization.py's functions ------------------------------------------------------
@public(method=False, name="layer_norm")
def _layer_norm_top(input, normalized_shape, weight=None, bias=None, eps=1e-05, cudnn_enable=True):
    """``torch.layer_norm``."""
    from neuronix.nn.functional.normalization import layer_norm

    return layer_norm(input, normalized_shape, weight, bias, eps)


@public(method=False, name="group_norm")
def _group_norm_top(input, num_groups, weight=None, bias=None, eps=1e-05, cudnn_enabled=True):
    """``torch.group_norm``."""
    from neuronix.nn.functional.normalization import group_norm

    return group_norm(input, num_groups, weight, bias, eps)


@public(method=False, name="batch_norm")
def _batch_norm_top(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled):
    """``torch.batch_norm`` (every argument positional and required, as torch's)."""
    return batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


# ----- embedding_bag ----------------------------------------------------------------------------------------------------
_BAG_MODES = {"sum": 0, "mean": 1, "max": 2}


@public(namespace=_F)
def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """Sums, means or maxima of bags of ``weight`` rows: the rows of a 2-D ``input``, or the runs of a 1-D
    ``input`` starting at ``offsets``; rows ``padding_idx`` are left out (torch's kernels)."""
    indices = unwrap(input)
    if per_sample_weights is not None and tuple(indices.shape) != shape_of(per_sample_weights):
        raise ValueError(f"embedding_bag: If per_sample_weights ({shape_of(per_sample_weights)}) is not None, then it "
                         f"must have the same shape as the input ({tuple(indices.shape)})")
    if weight.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.ndim}")
    if indices.dim() == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of fixed "
                             f"length sequences. However, found offsets of type {type(offsets)}")
        offsets = torch.arange(0, indices.numel(), indices.size(1), dtype=indices.dtype, device=indices.device)
        include_last_offset = False
        indices = indices.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape((-1,))
    elif indices.dim() == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if unwrap(offsets).dim() != 1:
            raise ValueError("offsets has to be a 1D Tensor")
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {indices.dim()}")
    if mode not in _BAG_MODES:
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if sparse:
        raise NotImplementedError("embedding_bag: sparse gradients are not supported; use sparse=False")
    if max_norm is not None:
        with torch.no_grad():
            torch.embedding_renorm_(unwrap(weight), indices, max_norm, norm_type)
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on GitHub.")
    rows = weight.shape[0]
    padding_idx = _bag_padding_index(padding_idx, rows)
    out, _ = apply(_more.EMBEDDING_BAG, as_nx(weight), as_nx(per_sample_weights), indices=indices,
                   offsets=unwrap(offsets), scale_grad_by_freq=bool(scale_grad_by_freq), mode=_BAG_MODES[mode],
                   include_last_offset=bool(include_last_offset), padding_idx=int(padding_idx),
                   num_weights=rows)  # the weight's backward reads its row count, never its values
    return out


def _bag_padding_index(padding_idx, rows: int) -> int:
    """embedding_bag's ``padding_idx`` as its kernel takes it: -1 for none, else the row in [0, rows)."""
    if padding_idx is None:
        return -1
    if not -rows <= padding_idx < rows:
        raise RuntimeError(f"padding_idx must be within the number of embeddings, -{rows} through {rows - 1}, but got "
                           f"{padding_idx}")
    return padding_idx + rows if padding_idx < 0 else padding_idx


@public(method=False, name="embedding")
def _embedding_top(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """``torch.embedding`` (weight first; a negative ``padding_idx`` means none, as torch's)."""
    from neuronix.nn.functional.dropout_embedding import embedding

    return embedding(indices, weight, None if padding_idx < 0 else padding_idx, None, 2.0, scale_grad_by_freq, sparse)


@public(method=False, name="embedding_bag")
def _embedding_bag_top(weight, indices, offsets, scale_grad_by_freq=False, mode=0, sparse=False,
                       per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """``torch.embedding_bag``: 1-D ``indices`` and ``offsets``, ``mode`` 0/1/2 (sum/mean/max); returns the bags
    and torch's ``offset2bag``, ``bag_size`` and ``max_indices``."""
    if sparse:
        raise NotImplementedError("embedding_bag: sparse gradients are not supported; use sparse=False")
    rows = weight.shape[0]
    padding_idx = _bag_padding_index(padding_idx, rows)
    out, aux = apply(_more.EMBEDDING_BAG, as_nx(weight), as_nx(per_sample_weights), indices=unwrap(indices),
                     offsets=unwrap(offsets), scale_grad_by_freq=bool(scale_grad_by_freq), mode=int(mode),
                     include_last_offset=bool(include_last_offset), padding_idx=int(padding_idx), num_weights=rows)
    return (out, *(Tensor(t) for t in aux))
