"""Normalisation layers: batch norms (1d/2d/3d, ``SyncBatchNorm``), instance norms, ``LayerNorm``, ``GroupNorm``,
``RMSNorm``, ``LocalResponseNorm``, ``CrossMapLRN2d`` and the lazy batch/instance norms."""

from __future__ import annotations

import numbers
import warnings

import torch
import torch.distributed as dist

import neuronix as nx
from neuronix.autograd.function import Function
from neuronix.nn import functional as F
from neuronix.nn import init
from neuronix.nn.module import Module
from neuronix.nn.modules._check import check_input
from neuronix.nn.modules.lazy import LazyModuleMixin, UninitializedBuffer, UninitializedParameter
from neuronix.nn.parameter import Parameter
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

__all__ = [
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "CrossMapLRN2d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
    "InstanceNorm3d", "LayerNorm", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "LazyInstanceNorm1d",
    "LazyInstanceNorm2d", "LazyInstanceNorm3d", "LocalResponseNorm", "RMSNorm", "SyncBatchNorm",
]


def _affine_parameters(module: Module, affine: bool, bias: bool, shape: tuple, device, dtype) -> None:
    """``weight`` (and ``bias`` unless ``bias=False``) of ``shape`` when ``affine``; registered as None otherwise."""
    module.register_parameter("weight", Parameter(torch.empty(shape, device=device, dtype=dtype)) if affine else None)
    module.register_parameter("bias", Parameter(torch.empty(shape, device=device, dtype=dtype)) if affine and bias else None)


def _reset_affine(module: Module) -> None:
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _NormBase(Module):
    """Per-channel affine ``weight``/``bias`` and running statistics (``running_mean``, ``running_var``,
    ``num_batches_tracked``), registered as torch's ``_NormBase`` does; shared by batch and instance norms."""

    _version = 2  # state_dict metadata version: has num_batches_tracked

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine_parameters(self, affine, bias, (num_features,), device, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", torch.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data.zero_()
            self.running_var.data.fill_(1)
            self.num_batches_tracked.data.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        _reset_affine(self)

    def _load_defaults(self, state_dict, prefix: str) -> None:
        # checkpoints written before num_batches_tracked existed keep the current count
        key = prefix + "num_batches_tracked"
        if self.track_running_stats and key not in state_dict and self.num_batches_tracked is not None:
            state_dict[key] = self.num_batches_tracked.data

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_NormBase):
    """Batch normalisation with running statistics (``running_mean``, ``running_var``, ``num_batches_tracked``).

    In training mode the batch statistics normalise the input and update the running ones
    (``momentum=None``: a cumulative average over the batches seen); in eval mode the running
    statistics are used, unless ``track_running_stats=False``.
    """

    _ranks: tuple[int, ...]
    _layouts: str

    def _check_input_dim(self, input) -> None:
        check_input(self, input, self._ranks, self._layouts.format(c=self.num_features), {r: 1 for r in self._ranks},
                    self.num_features)

    def forward(self, input):
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data.add_(1)
            factor = 1.0 / float(self.num_batches_tracked.data) if self.momentum is None else self.momentum
        # eval mode without running statistics normalises with the batch's own, as torch
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep_stats = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if keep_stats else None,
            self.running_var if keep_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs, as ``torch.nn.BatchNorm1d``."""

    _ranks = (2, 3)
    _layouts = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)`` inputs, as ``torch.nn.BatchNorm2d``."""

    _ranks = (4,)
    _layouts = "(N, {c}, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation over ``(N, C, D, H, W)`` inputs, as ``torch.nn.BatchNorm3d``."""

    _ranks = (5,)
    _layouts = "(N, {c}, D, H, W)"


# ----- SyncBatchNorm's synchronisation --------------------------------------------------------------------------
class _AllReduceSum(Function):
    """The sum over the processes of ``group``; its gradient is the same sum of the upstream gradients (every
    replica runs the backward). A custom Function, not a registered primitive: no single-process mirror can
    exercise a collective."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        out = x.data.clone()
        dist.all_reduce(out, group=group)
        return Tensor(out)

    @staticmethod
    def backward(ctx, grad):
        return _AllReduceSum.apply(grad, ctx.group), None


def _synced_batch_norm(module, input, factor: float):
    """Batch norm with the mean and biased variance of the batch of every process (two-pass: sums and counts,
    then squared deviations, each all-reduced), differentiable through the all-reduces; moves the running
    statistics by the global ones."""
    group = module.process_group or dist.group.WORLD
    dims = [0] + list(range(2, input.dim()))
    shape = [1, input.shape[1]] + [1] * (input.dim() - 2)
    local_count = input.numel() // input.shape[1]
    counts = torch.full((1,), float(local_count), dtype=input.dtype, device=input.device)
    totals = _AllReduceSum.apply(nx.cat([input.sum(dims), counts]), group)
    count = float(totals.data[-1])
    if count <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got {int(count)} over all processes")
    mean = totals[:-1] / count
    centred = input - mean.reshape(shape)
    var = _AllReduceSum.apply((centred * centred).sum(dims), group) / count
    out = centred * (var + module.eps).rsqrt().reshape(shape)
    if module.weight is not None:
        out = out * module.weight.reshape(shape)
    if module.bias is not None:
        out = out + module.bias.reshape(shape)
    if module.track_running_stats and module.running_mean is not None:
        with torch.no_grad():
            module.running_mean.data.mul_(1 - factor).add_(mean.data, alpha=factor)
            module.running_var.data.mul_(1 - factor).add_(var.data * (count / (count - 1)), alpha=factor)
    return out


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation with statistics over the whole batch of every process in ``process_group``.

    In one process (or in eval mode) it is batch norm over any ``(N, C, *)`` input, as torch's fallback.
    Under an initialised ``torch.distributed`` group of more than one process, in training, each step
    all-reduces the per-channel sums and counts (then the squared deviations) so every replica normalises
    with the global mean and biased variance and moves its running statistics by the global ones (unbiased
    variance over the global count); the all-reduce's gradient is the all-reduce of the gradients, so the
    backward synchronises too. torch's kernels need GPU inputs for this; the composition here also runs on
    CPU (gloo). ``convert_sync_batchnorm`` swaps every ``BatchNorm*d`` of a model for one.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None, *,
                 bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)
        self.process_group = process_group

    def _check_input_dim(self, input) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")
        if input.shape[1] == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")

    def _needs_sync(self) -> bool:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return False
        return dist.get_world_size(self.process_group or dist.group.WORLD) > 1

    def forward(self, input):
        if not self._needs_sync():
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.data.add_(1)
            factor = 1.0 / float(self.num_batches_tracked.data) if self.momentum is None else self.momentum
        return _synced_batch_norm(self, input, factor)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every batch-norm layer (itself included) replaced by a ``SyncBatchNorm`` that shares
        its parameters, running statistics and training flag, as torch's."""
        converted = module
        if isinstance(module, _BatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                            process_group, bias=module.bias is not None)
            if module.affine:
                converted.weight = module.weight
                converted.bias = module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.training = module.training
            if hasattr(module, "qconfig"):
                converted.qconfig = module.qconfig
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted


class _InstanceNorm(_NormBase):
    """Normalises each channel of each sample over its spatial dims; running statistics only if
    ``track_running_stats`` (then used in eval mode). Unbatched inputs (no ``N``) are accepted, as torch."""

    _no_batch_dim: int  # the rank of an unbatched input

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def _check_input_dim(self, input) -> None:
        ranks = (self._no_batch_dim, self._no_batch_dim + 1)
        if input.dim() not in ranks:
            raise ValueError(f"expected {ranks[0]}D or {ranks[1]}D input (got {input.dim()}D input)")

    def _apply_instance_norm(self, input):
        return F.instance_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                               self.training or not self.track_running_stats,
                               self.momentum if self.momentum is not None else 0.0, self.eps)

    def forward(self, input):
        self._check_input_dim(input)
        feature_dim = input.dim() - self._no_batch_dim
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"expected input's size at dim={feature_dim} to match num_features "
                                 f"({self.num_features}), but got: {input.shape[feature_dim]}.")
            # torch only warns: without affine parameters num_features is unused
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        if input.dim() == self._no_batch_dim:
            return self._apply_instance_norm(input.unsqueeze(0)).squeeze(0)
        return self._apply_instance_norm(input)


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation over ``(N, C, L)`` or ``(C, L)`` inputs."""

    _no_batch_dim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation over ``(N, C, H, W)`` or ``(C, H, W)`` inputs."""

    _no_batch_dim = 3


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation over ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs."""

    _no_batch_dim = 4


class _LazyNormBase(LazyModuleMixin, _NormBase):
    """A norm layer whose ``num_features`` is read from dim 1 of the first input (torch's ``_LazyNormBase``):
    built with placeholder parameters and buffers, materialised and reset at the first forward."""

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        # affine and running statistics off at first: the placeholders below take their place
        super().__init__(0, eps, momentum, False, False, device, dtype, bias=False)
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = UninitializedParameter(device=device, dtype=dtype)
            if bias:
                self.bias = UninitializedParameter(device=device, dtype=dtype)
        if track_running_stats:
            self.running_mean = UninitializedBuffer(device=device, dtype=dtype)
            self.running_var = UninitializedBuffer(device=device, dtype=dtype)
            self.num_batches_tracked = torch.tensor(0, dtype=torch.long, device=device)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input) -> None:
        if not self.has_uninitialized_params() and self.num_features == 0:
            # materialised by load_state_dict before any forward: torch leaves num_features 0 (its repr says so);
            # neuronix reads it from the input, which its input check needs
            self.num_features = input.shape[1]
        if self.has_uninitialized_params():
            self.num_features = input.shape[1]
            if self.affine:
                self.weight.materialize((self.num_features,))
                if self.bias is not None:
                    self.bias.materialize((self.num_features,))
            if self.track_running_stats:
                self.running_mean.materialize((self.num_features,))
                self.running_var.materialize((self.num_features,))
            self.reset_parameters()


class LazyBatchNorm1d(_LazyNormBase, _BatchNorm):
    """``BatchNorm1d`` with ``num_features`` from the first input."""

    cls_to_become = BatchNorm1d
    _ranks, _layouts = BatchNorm1d._ranks, BatchNorm1d._layouts


class LazyBatchNorm2d(_LazyNormBase, _BatchNorm):
    """``BatchNorm2d`` with ``num_features`` from the first input."""

    cls_to_become = BatchNorm2d
    _ranks, _layouts = BatchNorm2d._ranks, BatchNorm2d._layouts


class LazyBatchNorm3d(_LazyNormBase, _BatchNorm):
    """``BatchNorm3d`` with ``num_features`` from the first input."""

    cls_to_become = BatchNorm3d
    _ranks, _layouts = BatchNorm3d._ranks, BatchNorm3d._layouts


class LazyInstanceNorm1d(_LazyNormBase, _InstanceNorm):
    """``InstanceNorm1d`` with ``num_features`` from the first input (dim 1, as torch, also for unbatched inputs)."""

    cls_to_become = InstanceNorm1d
    _no_batch_dim = 2


class LazyInstanceNorm2d(_LazyNormBase, _InstanceNorm):
    """``InstanceNorm2d`` with ``num_features`` from the first input."""

    cls_to_become = InstanceNorm2d
    _no_batch_dim = 3


class LazyInstanceNorm3d(_LazyNormBase, _InstanceNorm):
    """``InstanceNorm3d`` with ``num_features`` from the first input."""

    cls_to_become = InstanceNorm3d
    _no_batch_dim = 4


class LayerNorm(Module):
    """Normalises over the trailing ``normalized_shape`` dims, with elementwise affine weight and bias."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine_parameters(self, elementwise_affine, bias, self.normalized_shape, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        n = len(self.normalized_shape)
        if tuple(input.shape[input.ndim - n :]) != self.normalized_shape or input.ndim < n:
            raise ValueError(
                f"{self!r}: expected input of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                f"got shape {tuple(input.shape)}"
            )
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalises each of ``num_groups`` channel groups of an ``(N, C, *)`` input; per-channel affine."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels must be divisible by num_groups (num_channels={num_channels}, "
                             f"num_groups={num_groups})")
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine_parameters(self, affine, bias, (num_channels,), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset_affine(self)

    def forward(self, input):
        c = self.num_channels
        if input.ndim < 2 or input.shape[1] != c:
            raise ValueError(f"{self!r}: expected input of shape (N, {c}, *), got shape {tuple(input.shape)}")
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


class RMSNorm(Module):
    """``x / sqrt(mean(x^2) + eps)`` over the trailing ``normalized_shape`` dims, times an elementwise ``weight``.

    ``eps=None`` uses the input dtype's machine epsilon, as torch.
    """

    def __init__(self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(torch.empty(self.normalized_shape, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.elementwise_affine:
            init.ones_(self.weight)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class LocalResponseNorm(Module):
    """Divides each channel by ``(k + alpha / size * sum of squares over size neighbouring channels)^beta``."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


# ----- CrossMapLRN2d ------------------------------------------------------------------------------------------
# torch's CrossMapLRN2d is a legacy autograd Function with its own forward and backward, and they disagree:
# the forward's running window never drops channel 0 (it subtracts channel c - pre_pad only for c > pre_pad),
# and the backward sums the ratios over a window shifted by one channel, so torch's gradient is not the
# derivative of torch's output (torch.autograd.gradcheck fails on it). A composition would give the true
# derivative; users porting a torch model expect torch's numbers, so this is a primitive with torch's forward
# and torch's backward rule, written in tensor methods. torch's backward cannot be differentiated again
# (its out= arguments refuse autograd), so no second derivative is claimed.
def _lrn_windows(channels: int, size: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """0/1 matrices over channels: ``forward[c, j]`` = channel j is in the sum of squares for c (torch's running
    sum, channel 0 kept throughout); ``backward[c, j]`` = ratio j is in the accumulation for c (torch's backward)."""
    pre_pad = int((size - 1) / 2 + 1)
    inverse_pre_pad = int(size - (size - 1) / 2)
    fwd = torch.zeros(channels, channels, device=device, dtype=dtype)
    bwd = torch.zeros(channels, channels, device=device, dtype=dtype)
    for c in range(channels):
        hi = min(c + pre_pad - 1, channels - 1)
        lo = 0 if c <= pre_pad else c - pre_pad + 1
        fwd[c, lo : hi + 1] = 1
        fwd[c, 0] = 1
        bwd[c, max(0, c - inverse_pre_pad) : max(0, min(channels, c + size - inverse_pre_pad))] = 1
    return fwd, bwd


def _mix_channels(matrix, x):
    """``out[:, c] = sum_j matrix[c, j] * x[:, j]`` (tensor methods only: raw or recorded)."""
    return (x.unsqueeze(1) * matrix[None, :, :, None, None]).sum(2)


def _lrn_scale(x, size: int, alpha: float, k: float, window):
    return _mix_channels(window, x * x) * (alpha / size) + k


def _cross_map_lrn2d_forward(x, size, alpha, beta, k):
    window, _ = _lrn_windows(x.shape[1], size, x.device, x.dtype)
    return x * _lrn_scale(x, size, alpha, k, window).pow(-beta)


def _cross_map_lrn2d_grad(g, out, x, size, alpha, beta, k):
    if int(size - (size - 1) / 2) > size - 1:  # torch's backward narrows out of range for size 1
        raise RuntimeError(f"CrossMapLRN2d backward: size {size} is too small for torch's legacy backward (size >= 2)")
    window, accumulate = _lrn_windows(x.shape[1], size, x.device, x.dtype)
    scale = _lrn_scale(x, size, alpha, k, window)
    ratio = g * (x * scale.pow(-beta)) / scale
    return scale.pow(-beta) * g - x * _mix_channels(accumulate, ratio) * (2 * alpha * beta / size)


CROSS_MAP_LRN2D = defop("cross_map_lrn2d", _cross_map_lrn2d_forward, _cross_map_lrn2d_grad)


class CrossMapLRN2d(Module):
    """torch's legacy cross-channel LRN for ``(N, C, H, W)`` inputs: forward and gradient as torch computes them
    (which differ from ``LocalResponseNorm``'s and from each other; see ``CROSS_MAP_LRN2D``)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1) -> None:
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input):
        if input.dim() != 4:
            raise ValueError(f"CrossMapLRN2d: Expected input to be 4D, got {input.dim()}D instead.")
        return apply(CROSS_MAP_LRN2D, input, size=self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
