"""``nx.nn.utils`` (mirrors ``torch.nn.utils``): gradient clipping, parameter vectors, weight and spectral
normalisation (the hook-based functions and the ``parametrize``/``parametrizations`` API), conv/linear +
BatchNorm fusion, ``skip_init``, conv weight memory formats and ``rnn``'s sequence packing."""

from __future__ import annotations

from neuronix.nn.utils import rnn  # noqa: F401  (recurrent helper)
from neuronix.nn.utils.clip_grad import clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from neuronix.nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
from neuronix.nn.utils.fusion import fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights
from neuronix.nn.utils.init import skip_init
from neuronix.nn.utils.memory_format import convert_conv2d_weight_memory_format, convert_conv3d_weight_memory_format
from neuronix.nn.utils.spectral_norm import remove_spectral_norm, spectral_norm
from neuronix.nn.utils.weight_norm import remove_weight_norm, weight_norm

from . import parametrizations, parametrize  # submodules, as torch.nn.utils's

__all__ = [
    "clip_grad_norm", "clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm",
    "convert_conv2d_weight_memory_format", "convert_conv3d_weight_memory_format", "fuse_conv_bn_eval",
    "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights", "skip_init",
    "parameters_to_vector", "parametrizations", "parametrize", "remove_spectral_norm", "remove_weight_norm", "rnn",
    "spectral_norm", "vector_to_parameters", "weight_norm",
]
