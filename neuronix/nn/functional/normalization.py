"""``nn.functional`` batch, layer and group normalisation: per-channel shapes checked."""

from __future__ import annotations

import math

from neuronix.nn.functional.arguments import shape_of
from neuronix.ops import norm as _norm
from neuronix.ops.public import public


def _check_channels(op, what, t, channels, input):
    if t is not None and t.numel() != channels:
        raise RuntimeError(
            f"{op}: expected {what} with {channels} elements (one per channel of input {shape_of(input)}), "
            f"got shape {shape_of(t)}"
        )


@public(namespace="nn.functional")
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-05):
    """Batch normalisation over dim 1; in training, ``running_mean``/``running_var`` are updated in place
    (``running = (1 - momentum) * running + momentum * batch_stat``, unbiased variance), as torch."""
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C, *), got shape {shape_of(input)}")
    if momentum is None:
        raise TypeError(
            "batch_norm: momentum must be a float; for a cumulative average pass momentum=1/num_batches_tracked "
            "(what nn.BatchNorm does with momentum=None)"
        )
    channels = input.shape[1]
    for what, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        _check_channels("batch_norm", what, t, channels, input)
    if training:
        size = input.shape[0] * math.prod(input.shape[2:])
        if size == 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel when training, got input size {shape_of(input)}"
            )
    elif running_mean is None or running_var is None:
        raise RuntimeError("batch_norm: running_mean and running_var must be given in evaluation mode (training=False)")
    return _norm.batch_norm(input, weight, bias, running_mean, running_var, bool(training), float(momentum), float(eps))


@public(namespace="nn.functional")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-05):
    """Layer normalisation over the trailing ``normalized_shape`` dims."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if input.ndim < len(shape) or shape_of(input)[input.ndim - len(shape):] != shape:
        raise RuntimeError(
            f"layer_norm: normalized_shape {shape} must match the trailing dims of the input, got input shape {shape_of(input)}"
        )
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and shape_of(t) != shape:
            raise RuntimeError(f"layer_norm: expected {what} of shape {shape} (normalized_shape), got {shape_of(t)}")
    return _norm.layer_norm(input, shape, weight, bias, float(eps))


@public(namespace="nn.functional")
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-05):
    """Group normalisation: the channels (dim 1) split into ``num_groups`` groups."""
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected an input of shape (N, C, *), got shape {shape_of(input)}")
    channels = input.shape[1]
    if num_groups < 1 or channels % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} must divide the number of channels {channels} (input {shape_of(input)})"
        )
    for what, t in (("weight", weight), ("bias", bias)):
        _check_channels("group_norm", what, t, channels, input)
    values_per_group = input.shape[0] * channels // num_groups * math.prod(input.shape[2:])
    if values_per_group == 1:
        raise ValueError(
            f"group_norm: expected more than 1 value per group when training, got input size {list(input.shape)} "
            f"with num_groups={num_groups}"
        )
    return _norm.group_norm(input, num_groups, weight, bias, float(eps))

