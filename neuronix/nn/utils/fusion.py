"""Folding an eval-mode BatchNorm into the convolution or linear layer before it, as ``torch.nn.utils.fusion``.

``fuse_conv_bn_eval(conv, bn)`` returns a copy of ``conv`` whose weight and bias give ``bn(conv(x))`` in
one layer: ``w * gamma / sqrt(var + eps)`` (per output channel) and ``(b - mean) * gamma / sqrt(var + eps) +
beta``. The fused tensors are new leaf parameters (torch's are too), so they are computed on the torch
data with torch's kernels in torch's order, and equal torch's bit for bit.
"""

from __future__ import annotations

import copy

import torch

from neuronix.nn.parameter import Parameter
from neuronix.tensor import unwrap

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights"]


def _requires_grad(t) -> bool:
    """torch reads requires_grad of the tensor it used: a missing bias is zeros, which never require grad."""
    return bool(getattr(t, "requires_grad", False))


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps: float, bn_w, bn_b,
                         transpose: bool = False) -> tuple[Parameter, Parameter]:
    """The fused ``(weight, bias)`` of a convolution followed by a BatchNorm (``transpose``: a transposed conv,
    whose output channels are its weight's dimension 1)."""
    w, rm, rv = unwrap(conv_w), unwrap(bn_rm), unwrap(bn_rv)
    weight_dtype = w.dtype
    bias_dtype = unwrap(conv_b).dtype if conv_b is not None else weight_dtype
    b = torch.zeros_like(rm) if conv_b is None else unwrap(conv_b)
    gamma = torch.ones_like(rm) if bn_w is None else unwrap(bn_w)
    beta = torch.zeros_like(rm) if bn_b is None else unwrap(bn_b)
    with torch.no_grad():
        var_rsqrt = torch.rsqrt(rv + bn_eps)
        shape = ([1, -1] if transpose else [-1, 1]) + [1] * (w.dim() - 2)
        fused_w = (w * (gamma * var_rsqrt).reshape(shape)).to(dtype=weight_dtype)
        fused_b = ((b - rm) * var_rsqrt * gamma + beta).to(dtype=bias_dtype)
    return Parameter(fused_w, _requires_grad(conv_w)), Parameter(fused_b, _requires_grad(conv_b))


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of ``conv`` computing ``bn(conv(x))`` (both in eval mode)."""
    if conv.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    fused = copy.deepcopy(conv)
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("bn.running_mean and bn.running_var must not be None")
    fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps,
                                                    bn.weight, bn.bias, transpose)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps: float, bn_w, bn_b) -> tuple[Parameter, Parameter]:
    """The fused ``(weight, bias)`` of a Linear layer followed by a BatchNorm1d."""
    w, rm, rv = unwrap(linear_w), unwrap(bn_rm), unwrap(bn_rv)
    weight_dtype = w.dtype
    bias_dtype = unwrap(linear_b).dtype if linear_b is not None else weight_dtype
    b = torch.zeros_like(rm) if linear_b is None else unwrap(linear_b)
    with torch.no_grad():
        scale = unwrap(bn_w) * torch.rsqrt(rv + bn_eps)
        fused_w = w * scale.unsqueeze(-1).to(dtype=weight_dtype)
        fused_b = ((b - rm) * scale + unwrap(bn_b)).to(dtype=bias_dtype)
    return Parameter(fused_w, _requires_grad(linear_w)), Parameter(fused_b, _requires_grad(linear_b))


def fuse_linear_bn_eval(linear, bn):
    """A copy of ``linear`` computing ``bn(linear(x))`` (both in eval mode)."""
    if linear.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    fused = copy.deepcopy(linear)
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise AssertionError(
            "To fuse, linear.out_features == bn.num_features or bn.num_features == 1, "
            f"got linear.out_features={linear.out_features} and bn.num_features={bn.num_features}"
        )
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("bn.running_mean and bn.running_var must not be None")
    fused.weight, fused.bias = fuse_linear_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps,
                                                      bn.weight, bn.bias)
    return fused
