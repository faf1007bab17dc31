"""``nx.nn.functional``: torch.nn.functional's names, signatures and defaults.

Each function checks its arguments (clear errors naming the op, the expected and the
given shapes), normalises them (ints to tuples, ``'same'`` padding, legacy reduction
flags) and calls one primitive from ``neuronix.ops`` or a short composition of them.
Tensors may be ``nx.Tensor`` or plain ``torch.Tensor`` (constants), as everywhere.
"""

from __future__ import annotations

import math as _math
import warnings as _warnings

import torch as _torch

from neuronix.ops import activation as _act
from neuronix.ops import conv as _conv
from neuronix.ops import dropout_embedding as _de
from neuronix.ops import elementwise as _ew
from neuronix.ops import linear as _linear
from neuronix.ops import loss as _loss
from neuronix.ops import norm as _norm
from neuronix.ops import padding as _padding
from neuronix.ops import pool as _pool
from neuronix.ops.inplace import in_place as _in_place
from neuronix.tensor import Tensor as _Tensor
from neuronix.tensor import unwrap as _unwrap

__all__ = [
    "linear", "conv1d", "conv2d", "conv_transpose2d",
    "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d",
    "batch_norm", "layer_norm", "group_norm", "dropout", "embedding", "pad",
    "relu", "relu6", "gelu", "tanh", "sigmoid", "silu", "elu", "selu", "leaky_relu", "softplus", "hardtanh",
    "hardswish", "mish", "softmax", "log_softmax",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "nll_loss", "cross_entropy", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "kl_div",
]


# ----- argument helpers ------------------------------------------------------------------------
def _nx(t):
    """A neuronix tensor for ``t`` (torch tensors become constants); ``None`` stays ``None``."""
    return _Tensor(t) if isinstance(t, _torch.Tensor) else t



def _shape(t) -> tuple:
    return tuple(t.shape)


def _tuple(value, n: int, op: str, what: str) -> tuple:
    """``value`` as an ``n``-tuple of ints (torch accepts an int or a sequence of length 1 or n)."""
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"{op}: {what} must be an int or a sequence of {n} ints, got {value}")
    return value


def _check_rank(op: str, x, spatial: int) -> bool:
    """Accept (C, *spatial) or (N, C, *spatial); return whether the input is batched."""
    if x.ndim not in (spatial + 1, spatial + 2):
        sizes = {1: "L", 2: "H, W"}[spatial]
        raise ValueError(
            f"{op}: expected a {spatial + 1}-D (unbatched) or {spatial + 2}-D (batched) input of shape "
            f"(C, {sizes}) or (N, C, {sizes}), got a {x.ndim}-D input of shape {_shape(x)}"
        )
    return x.ndim == spatial + 2


def _batched(x, batched: bool):
    return x if batched else x.reshape((1,) + _shape(x))


def _unbatched(out, batched: bool):
    return out if batched else out.reshape(_shape(out)[1:])


def _reduction(op: str, size_average, reduce, reduction: str, extra: tuple = ()) -> str:
    if size_average is not None or reduce is not None:  # torch's legacy flags
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "none" if not reduce else "mean" if size_average else "sum"
    if reduction not in ("none", "mean", "sum", *extra):
        valid = ", ".join(repr(r) for r in ("none", "mean", "sum", *extra))
        raise ValueError(f"{op}: reduction must be one of {valid}, got {reduction!r}")
    return reduction


# ----- linear and convolutions ------------------------------------------------------------------
def linear(input, weight, bias=None):
    """``y = input @ weight.T + bias`` (``torch.nn.functional.linear``); a 1-D ``weight`` gives one output
    with the feature dim dropped, and ``bias`` may be any shape that broadcasts with the product, as torch."""
    if input.ndim and weight.ndim and input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"linear: input of shape {_shape(input)} has {input.shape[-1]} features in its last dim, but weight of "
            f"shape {_shape(weight)} expects {weight.shape[-1]} (in_features)"
        )
    if input.ndim == 1 and weight.ndim == 2 and bias is not None and bias.ndim == 2:
        # torch adds the bias to the input as one row, (1, out), then drops that row: a (1, out) bias
        # gives an (out,) result, so its gradient must gain the row back
        return _linear.linear(input.unsqueeze(0), weight, bias).squeeze(0)
    # every other shape rule (weight rank, bias broadcasting) is torch's kernel's, reported by the op
    return _linear.linear(input, weight, bias)


def _same_padding(op, x, weight, stride, dilation, spatial):
    """torch's padding='same': symmetric padding, plus one extra on the right where the total is odd."""
    if any(s != 1 for s in stride):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride={stride})")
    left, extra = [], [0] * (2 * spatial)
    for i in range(spatial):
        total = dilation[i] * (weight.shape[2 + i] - 1)
        left.append(total // 2)
        extra[2 * (spatial - 1 - i) + 1] = total - 2 * (total // 2)
    if any(extra):
        x = _padding.padded(x, tuple(extra), "constant", 0.0)
    return x, tuple(left)


def _convolution(op, spatial, input, weight, bias, stride, padding, dilation, groups, transposed=False, output_padding=0):
    batched = _check_rank(op, input, spatial)
    if weight.ndim != spatial + 2:
        raise ValueError(f"{op}: expected a {spatial + 2}-D weight, got shape {_shape(weight)}")
    channels = input.shape[1 if batched else 0]
    if groups < 1 or (not transposed and weight.shape[0] % groups):
        raise ValueError(f"{op}: groups={groups} must be positive and divide out_channels={weight.shape[0]}")
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    if channels != expected:
        layout = "in_channels = weight.shape[0]" if transposed else "in_channels = weight.shape[1] * groups"
        raise RuntimeError(
            f"{op}: expected input with {expected} channels ({layout}; weight {_shape(weight)}, groups={groups}), "
            f"got {channels} channels in input of shape {_shape(input)}"
        )
    out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if bias is not None and _shape(bias) != (out_channels,):
        raise RuntimeError(f"{op}: expected bias of shape ({out_channels},), got {_shape(bias)}")
    stride = _tuple(stride, spatial, op, "stride")
    dilation = _tuple(dilation, spatial, op, "dilation")
    x = _batched(input, batched)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * spatial
        elif padding == "same":
            x, padding = _same_padding(op, x, weight, stride, dilation, spatial)
        else:
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    padding = _tuple(padding, spatial, op, "padding")
    output_padding = _tuple(output_padding, spatial, op, "output_padding")
    out = _conv.convolution(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    return _unbatched(out, batched)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d convolution over (N, C_in, L) or (C_in, L); ``padding`` may be ``'valid'`` or ``'same'``."""
    return _convolution("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution over (N, C_in, H, W) or (C_in, H, W); ``padding`` may be ``'valid'`` or ``'same'``."""
    return _convolution("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution; ``weight`` is (C_in, C_out / groups, kH, kW) as in torch."""
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose2d: padding must be an int or a tuple of ints, got {padding!r}")
    return _convolution("conv_transpose2d", 2, input, weight, bias, stride, padding, dilation, groups, True,
                        output_padding)


# ----- pooling ---------------------------------------------------------------------------------
def _check_pool_input(op, input):
    if input.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got a {input.ndim}-D input of shape {_shape(input)}"
        )


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """2-d max pooling; ``stride`` defaults to ``kernel_size``; ``return_indices`` also returns the argmax indices."""
    _check_pool_input("max_pool2d", input)
    kernel = _tuple(kernel_size, 2, "max_pool2d", "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    out, indices = _pool.max_pool2d(input, kernel, _tuple(stride, 2, "max_pool2d", "stride"),
                                    _tuple(padding, 2, "max_pool2d", "padding"),
                                    _tuple(dilation, 2, "max_pool2d", "dilation"), bool(ceil_mode))
    return (out, _Tensor(indices)) if return_indices else out


def _adaptive_size(op, input, output_size) -> tuple:
    size = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    return tuple(input.shape[-2 + i] if s is None else int(s) for i, s in enumerate(size))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Adaptive 2-d max pooling to ``output_size`` (None keeps that input size)."""
    _check_pool_input("adaptive_max_pool2d", input)
    out, indices = _pool.adaptive_max_pool2d(input, _adaptive_size("adaptive_max_pool2d", input, output_size))
    return (out, _Tensor(indices)) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """2-d average pooling; ``stride`` defaults to ``kernel_size``."""
    _check_pool_input("avg_pool2d", input)
    kernel = _tuple(kernel_size, 2, "avg_pool2d", "kernel_size")
    stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else stride
    return _pool.avg_pool2d(input, kernel, _tuple(stride, 2, "avg_pool2d", "stride"),
                            _tuple(padding, 2, "avg_pool2d", "padding"), bool(ceil_mode), bool(count_include_pad),
                            divisor_override)


def adaptive_avg_pool2d(input, output_size):
    """Adaptive 2-d average pooling to ``output_size`` (None keeps that input size)."""
    _check_pool_input("adaptive_avg_pool2d", input)
    return _pool.adaptive_avg_pool2d(input, _adaptive_size("adaptive_avg_pool2d", input, output_size))


# ----- normalisation ---------------------------------------------------------------------------
def _check_channels(op, what, t, channels, input):
    if t is not None and t.numel() != channels:
        raise RuntimeError(
            f"{op}: expected {what} with {channels} elements (one per channel of input {_shape(input)}), "
            f"got shape {_shape(t)}"
        )


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05):
    """Batch normalisation over dim 1; in training, ``running_mean``/``running_var`` are updated in place
    (``running = (1 - momentum) * running + momentum * batch_stat``, unbiased variance), as torch."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *), got shape {_shape(input)}")
    if momentum is None:
        raise TypeError(
            "batch_norm: momentum must be a float; for a cumulative average pass momentum=1/num_batches_tracked "
            "(what nn.BatchNorm does with momentum=None)"
        )
    channels = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_channels("batch_norm", what, t, channels, input)
    if training:
        size = input.shape[0] * _math.prod(input.shape[2:])
        if size == 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input size {_shape(input)}")
    elif running_mean is None or running_var is None:
        raise RuntimeError("batch_norm: running_mean and running_var must be given in evaluation mode (training=False)")
    return _norm.batch_norm(input, weight, bias, running_mean, running_var, bool(training), float(momentum), float(eps))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    """Layer normalisation over the trailing ``normalized_shape`` dims."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.ndim < len(shape) or _shape(input)[input.ndim - len(shape):] != shape:
        raise RuntimeError(
            f"layer_norm: normalized_shape {shape} must match the trailing dims of the input, got input shape {_shape(input)}"
        )
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and _shape(t) != shape:
            raise RuntimeError(f"layer_norm: expected {what} of shape {shape} (normalized_shape), got {_shape(t)}")
    return _norm.layer_norm(input, shape, weight, bias, float(eps))


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    """Group normalisation: the channels (dim 1) split into ``num_groups`` groups."""
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got shape {_shape(input)}")
    channels = input.shape[1]
    if num_groups < 1 or channels % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} must divide the number of channels {channels} (input {_shape(input)})"
        )
    for what, t in (("weight", weight), ("bias", bias)):
        _check_channels("group_norm", what, t, channels, input)
    values_per_group = input.shape[0] * channels // num_groups * _math.prod(input.shape[2:])
    if values_per_group == 1:
        raise ValueError(
            f"group_norm: expected more than 1 value per group when training, got input size {list(input.shape)} "
            f"with num_groups={num_groups}"
        )
    return _norm.group_norm(input, num_groups, weight, bias, float(eps))


# ----- dropout, embedding, pad -------------------------------------------------------------------
def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``; the mask is the one
    torch draws for the same RNG state; ``inplace=True`` writes the result into ``input``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training:
        return _nx(input)
    if inplace:
        return _in_place(input, "dropout_", _de.dropout, float(p))
    return _de.dropout(input, float(p))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer ``input``; row ``padding_idx`` gets no gradient."""
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use sparse=False")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {_shape(weight)}")
    indices = _unwrap(input)
    if indices.dtype not in (_torch.int64, _torch.int32):
        raise TypeError(f"embedding: input must be an int64 or int32 tensor of indices, got dtype {indices.dtype}")
    rows = weight.shape[0]
    if padding_idx is None:
        padding_idx = -1
    elif not -rows <= padding_idx < rows:
        raise ValueError(
            f"embedding: padding_idx must be within [{-rows}, {rows - 1}] (num_embeddings={rows}), got {padding_idx}"
        )
    elif padding_idx < 0:
        padding_idx += rows
    try:
        if max_norm is not None:
            with _torch.no_grad():
                _torch.embedding_renorm_(_unwrap(weight), indices, max_norm, norm_type)
        return _de.embedding(indices, weight, padding_idx, bool(scale_grad_by_freq))
    except IndexError:  # torch's CPU kernel checks every index; only then find the culprit for a clear message
        out_of_range = (indices < 0) | (indices >= rows)
        if out_of_range.any():
            bad = indices[out_of_range][0].item()
            raise IndexError(
                f"embedding: index {bad} is out of range for a table of {rows} rows (weight {_shape(weight)})"
            ) from None
        raise


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left_last, right_last, left_prev, right_prev, ...)``."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(
            f"pad: pad must have an even length of at most 2 * input.ndim = {2 * input.ndim}, got {tuple(pad)} "
            f"for input of shape {_shape(input)}"
        )
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be one of {_PAD_MODES}, got {mode!r}")
    return _padding.padded(input, tuple(int(p) for p in pad), mode, value)


# ----- activations ------------------------------------------------------------------------------
def relu(input, inplace=False):
    """``max(input, 0)``."""
    return _in_place(input, "relu_", _ew.relu) if inplace else _ew.relu(input)


def relu6(input, inplace=False):
    """``min(max(input, 0), 6)``."""
    return _in_place(input, "relu6_", _act.hardtanh, 0.0, 6.0) if inplace else _act.hardtanh(input, 0.0, 6.0)


def gelu(input, approximate="none"):
    """Gaussian error linear unit: ``x * Phi(x)``, or its tanh approximation with ``approximate='tanh'``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act.gelu(input, approximate)


def tanh(input):
    """Hyperbolic tangent."""
    return _ew.tanh(input)


def sigmoid(input):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return _ew.sigmoid(input)


def silu(input, inplace=False):
    """``x * sigmoid(x)`` (also called swish)."""
    return _in_place(input, "silu_", _act.silu) if inplace else _act.silu(input)


def elu(input, alpha=1.0, inplace=False):
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    return _in_place(input, "elu_", _act.elu, float(alpha)) if inplace else _act.elu(input, float(alpha))


def selu(input, inplace=False):
    """``scale * elu(x, alpha)`` with the self-normalising constants."""
    return _in_place(input, "selu_", _act.selu) if inplace else _act.selu(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    if inplace:
        return _in_place(input, "leaky_relu_", _act.leaky_relu, float(negative_slope))
    return _act.leaky_relu(input, float(negative_slope))


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + exp(beta * x)) / beta``; linear where ``beta * x > threshold``."""
    return _act.softplus(input, float(beta), float(threshold))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """``clamp(x, min_val, max_val)``."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
    if inplace:
        return _in_place(input, "hardtanh_", _act.hardtanh, float(min_val), float(max_val))
    return _act.hardtanh(input, float(min_val), float(max_val))


def hardswish(input, inplace=False):
    """``x * relu6(x + 3) / 6``."""
    return _in_place(input, "hardswish_", _act.hardswish) if inplace else _act.hardswish(input)


def mish(input, inplace=False):
    """``x * tanh(softplus(x))``."""
    return _in_place(input, "mish_", _act.mish) if inplace else _act.mish(input)


def _softmax_dim(input, dim):
    if dim is not None:
        return dim
    _warnings.warn("Implicit dimension choice for softmax has been deprecated. Change the call to include dim=X as an "
                   "argument.", stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1


def _cast(input, dtype):
    return _nx(input) if dtype is None else _nx(input).to(dtype)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``exp(x) / sum(exp(x))`` along ``dim`` (optionally computed in ``dtype``)."""
    return _cast(input, dtype).softmax(_softmax_dim(input, dim))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """``x - logsumexp(x)`` along ``dim`` (optionally computed in ``dtype``)."""
    return _cast(input, dtype).log_softmax(_softmax_dim(input, dim))


# ----- losses ----------------------------------------------------------------------------------
def _check_same_or_broadcast(op, input, target):
    """torch warns (and broadcasts) when the shapes differ; non-broadcastable shapes are an error."""
    if _shape(input) == _shape(target):
        return
    try:
        _torch.broadcast_shapes(_shape(input), _shape(target))
    except RuntimeError:
        raise ValueError(
            f"{op}: input of shape {_shape(input)} and target of shape {_shape(target)} do not match and are not "
            "broadcastable; give them the same shape"
        ) from None
    _warnings.warn(
        f"{op}: using a target size ({_shape(target)}) that is different to the input size ({_shape(input)}); "
        "this will likely lead to incorrect results due to broadcasting", stacklevel=3)


def _check_weight(op, weight, input):
    if weight is not None and _shape(weight) != _shape(input):
        raise ValueError(f"{op}: weight of shape {_shape(weight)} must have the input's shape {_shape(input)}")


def _pointwise_loss(op, loss, input, weight, reduction, weighted_mean_by_sum):
    if weight is None:
        return _loss.reduce(loss, reduction)
    loss = loss * _nx(weight)
    if reduction == "mean" and weighted_mean_by_sum:
        return loss.sum() / _nx(weight).sum()
    return _loss.reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error ``(input - target) ** 2``, reduced; a ``weight`` mean divides by ``weight.sum()``."""
    reduction = _reduction("mse_loss", size_average, reduce, reduction)
    _check_same_or_broadcast("mse_loss", input, target)
    _check_weight("mse_loss", weight, input)
    return _pointwise_loss("mse_loss", (_nx(input) - target).square(), input, weight, reduction, True)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error ``|input - target|``, reduced; a ``weight`` mean divides by ``weight.sum()``."""
    reduction = _reduction("l1_loss", size_average, reduce, reduction)
    _check_same_or_broadcast("l1_loss", input, target)
    _check_weight("l1_loss", weight, input)
    return _pointwise_loss("l1_loss", (_nx(input) - target).abs(), input, weight, reduction, True)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``0.5 d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = input - target``)."""
    reduction = _reduction("smooth_l1_loss", size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    _check_same_or_broadcast("smooth_l1_loss", input, target)
    return _loss.reduce(_loss.smooth_l1(_nx(input) - target, float(beta)), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``0.5 d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``; a ``weight`` mean is a plain mean."""
    reduction = _reduction("huber_loss", None, None, reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    _check_same_or_broadcast("huber_loss", input, target)
    _check_weight("huber_loss", weight, input)
    return _pointwise_loss("huber_loss", _loss.huber(_nx(input) - target, float(delta)), input, weight, reduction, False)


def _check_class_target(op, input, target, weight, ignore_index):
    """Shapes, dtype and range of class-index targets for nll_loss / cross_entropy."""
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have at least 1 dim (C) or 2 dims (N, C, ...), got a 0-d tensor")
    t = _unwrap(target)
    if t.is_floating_point() or t.dtype == _torch.bool:
        raise TypeError(f"{op}: class-index targets must be an integer tensor (int64), got dtype {t.dtype}")
    expected = () if input.ndim == 1 else (input.shape[0],) + _shape(input)[2:]
    if _shape(t) != expected:
        raise ValueError(
            f"{op}: expected target of shape {expected} for input of shape {_shape(input)} "
            f"((N, C, d1, ...) input -> (N, d1, ...) target), got target of shape {_shape(t)}"
        )
    classes = input.shape[1 if input.ndim >= 2 else 0]
    if weight is not None and _shape(weight) != (classes,):
        raise ValueError(f"{op}: weight must have shape ({classes},) (one per class), got {_shape(weight)}")
    return t if t.dtype == _torch.int64 else t.long()


def _check_class_range(op, input, t, ignore_index):
    """Raise the clear error for an out-of-range class target. Called only once torch's kernel has
    failed (its CPU kernel checks every target; on CUDA it asserts on the device), so a valid
    batch pays for no extra comparisons and no host sync."""
    classes = input.shape[1 if input.ndim >= 2 else 0]
    bad = (t != ignore_index) & ((t < 0) | (t >= classes))
    if bad.any():
        value = t[bad][0].item()
        raise IndexError(
            f"{op}: target {value} is out of bounds: input of shape {_shape(input)} has {classes} classes, so "
            f"targets must be in [0, {classes - 1}] or equal ignore_index={ignore_index}"
        )


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    """Negative log likelihood of log-probabilities ``input`` (N, C, ...) at class indices ``target`` (N, ...)."""
    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    t = _check_class_target("nll_loss", input, target, weight, ignore_index)
    try:
        # weight goes in as given: a weight that requires grad is rejected by the op, as torch does
        return _loss.nll_loss(input, t, weight, reduction, int(ignore_index))
    except IndexError:
        _check_class_range("nll_loss", input, t, ignore_index)
        raise


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                  label_smoothing=0.0):
    """Cross-entropy of logits ``input`` against class indices or class probabilities ``target``,
    with optional class ``weight``, ``ignore_index`` and ``label_smoothing``."""
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if _unwrap(target).is_floating_point():
        if input.ndim == 0:  # IndexError, as torch (it looks for the class dim)
            raise IndexError("cross_entropy: input must have at least 1 dim (C) or 2 dims (N, C, ...), got a 0-d tensor")
        if _shape(target) != _shape(input):
            raise ValueError(
                f"cross_entropy: probability targets must have the input's shape {_shape(input)}, got {_shape(target)}"
            )
        classes = input.shape[1 if input.ndim >= 2 else 0]
        if weight is not None and _shape(weight) != (classes,):
            raise ValueError(f"cross_entropy: weight must have shape ({classes},) (one per class), got {_shape(weight)}")
        return _loss.cross_entropy(_nx(input), _nx(target), _nx(weight), ignore_index, reduction, float(label_smoothing))
    t = _check_class_target("cross_entropy", input, target, weight, ignore_index)
    try:
        return _loss.cross_entropy(_nx(input), t, weight, int(ignore_index), reduction, float(label_smoothing))
    except IndexError:
        _check_class_range("cross_entropy", input, t, ignore_index)
        raise


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """``-(t * log(x) + (1 - t) * log(1 - x))`` for probabilities ``input`` (logs clamped at -100, as torch)."""
    reduction = _reduction("binary_cross_entropy", size_average, reduce, reduction)
    if _shape(target) != _shape(input):
        raise ValueError(
            f"binary_cross_entropy: target of shape {_shape(target)} must have the input's shape {_shape(input)}"
        )
    x = _unwrap(input)
    if x.numel() and not x.is_cuda and (x.min() < 0 or x.max() > 1):
        raise RuntimeError("binary_cross_entropy: all elements of input should be between 0 and 1 (probabilities; "
                           "use binary_cross_entropy_with_logits for logits)")
    return _loss.binary_cross_entropy(_nx(input), _nx(target), _nx(weight), reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None, reduction="mean",
                                     pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable formula; ``pos_weight`` weighs the positive term."""
    reduction = _reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    if _shape(target) != _shape(input):
        raise ValueError(
            f"binary_cross_entropy_with_logits: target of shape {_shape(target)} must have the input's shape {_shape(input)}"
        )
    return _loss.binary_cross_entropy_with_logits(_nx(input), _nx(target), _nx(weight), reduction, _nx(pos_weight))


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Kullback-Leibler divergence ``target * (log(target) - input)`` for log-probabilities ``input``;
    ``reduction='batchmean'`` divides the sum by the batch size (the mathematically correct mean)."""
    reduction = _reduction("kl_div", size_average, reduce, reduction, extra=("batchmean",))
    if reduction == "mean":
        _warnings.warn(
            "kl_div: reduction='mean' divides the total loss by both the batch size and the support size; "
            "'batchmean' divides only by the batch size and aligns with the KL math definition", stacklevel=2)
    return _loss.kl_div(_nx(input), _nx(target), reduction, bool(log_target))
