"""Autocast's per-op casting policy: the one table, keyed by torch's op names, per device type.

The lists are torch's (``aten/src/ATen/autocast_mode.cpp`` and ``autocast_mode.h``: the
``AT_FORALL_*`` lists the CUDA key uses, and the ``AutocastCPU`` registrations). A policy says what
happens to the floating-point tensor arguments of an op called inside an autocast region:

* ``lower``: cast to the autocast dtype (float16/bfloat16), so the op runs in lower precision;
* ``fp32``: cast to float32 (ops whose range or accuracy lower precision would ruin);
* ``fp32_dtype``: torch's ``fp32_set_opt_dtype`` (softmax, sum, cumsum, ...): when the first input is
  eligible and no ``dtype=`` was given, run with ``dtype=torch.float32``;
* ``promote``: cast every input to the widest floating type among them (ops that take several);
* ``banned``: refused (CUDA's binary_cross_entropy: unsafe in float16, torch names the safe way).

An op not named here runs in whatever dtypes its inputs have (torch's fallthrough). The names are
torch's ``aten`` names; ``ALIASES`` maps the few Neuronix public names that differ (``cross_entropy``
is ``cross_entropy_loss`` in aten). This module imports nothing of neuronix: ``ops/public.py`` reads
it while the ops are still being defined.
"""

from __future__ import annotations

_LOWER_COMMON = """
    _convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d convolution
    prelu addmm addbmm baddbmm bmm mm matmul linear linalg_vecdot scaled_dot_product_attention
"""
# the CUDA key's lower-precision list has more matrix products and the fused recurrent cells
_LOWER_CUDA_ONLY = "addmv addr einsum mv chain_matmul linalg_multi_dot lstm_cell gru_cell rnn_tanh_cell rnn_relu_cell"
_LOWER_CPU_ONLY = "_native_multi_head_attention mkldnn_rnn_layer _addmm_activation"

_FP32_CUDA = """
    acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow softplus layer_norm
    native_layer_norm group_norm frobenius_norm nuclear_norm cosine_similarity poisson_nll_loss
    cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss kl_div l1_loss smooth_l1_loss huber_loss
    mse_loss margin_ranking_loss multilabel_margin_loss soft_margin_loss triplet_margin_loss multi_margin_loss
    binary_cross_entropy_with_logits dist pdist cdist renorm logsumexp
    upsample_nearest1d upsample_nearest2d upsample_nearest3d upsample_linear1d upsample_bilinear2d
    upsample_trilinear3d upsample_bicubic2d interpolate upsample upsample_nearest upsample_bilinear
"""
_FP32_DTYPE_CUDA = "prod softmax log_softmax cumprod cumsum linalg_vector_norm linalg_matrix_norm sum norm"
_PROMOTE_CUDA = "addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot scatter_add"

_FP32_CPU = """
    avg_pool3d binary_cross_entropy grid_sampler grid_sampler_2d grid_sampler_3d polar prod quantile nanquantile
    stft cdist trace view_as_complex cholesky cholesky_inverse cholesky_solve inverse lu_solve orgqr ormqr
    pinverse max_pool3d max_unpool2d max_unpool3d adaptive_avg_pool3d reflection_pad1d reflection_pad2d
    replication_pad1d replication_pad2d replication_pad3d mse_loss cosine_embedding_loss nll_loss nll_loss2d
    hinge_embedding_loss poisson_nll_loss smooth_l1_loss cross_entropy_loss l1_loss huber_loss
    margin_ranking_loss soft_margin_loss triplet_margin_loss multi_margin_loss ctc_loss kl_div
    multilabel_margin_loss binary_cross_entropy_with_logits
    fft_fft fft_ifft fft_fft2 fft_ifft2 fft_fftn fft_ifftn fft_rfft fft_irfft fft_rfft2 fft_irfft2 fft_rfftn
    fft_irfftn fft_hfft fft_ihfft
    linalg_cond linalg_matrix_rank linalg_solve linalg_cholesky linalg_svdvals linalg_eigvals linalg_eigvalsh
    linalg_inv linalg_householder_product linalg_tensorinv linalg_tensorsolve fake_quantize_per_tensor_affine
    geqrf qr svd triangular_solve fractional_max_pool2d fractional_max_pool3d adaptive_max_pool3d linalg_qr
    linalg_cholesky_ex linalg_svd linalg_eig linalg_eigh linalg_lstsq linalg_inv_ex
"""
_PROMOTE_CPU = "stack cat index_copy"


def _table(**lists: str) -> dict[str, str]:
    return {op: policy for policy, names in lists.items() for op in names.split()}


# device type -> torch op name -> policy
POLICIES: dict[str, dict[str, str]] = {
    "cuda": _table(lower=_LOWER_COMMON + _LOWER_CUDA_ONLY, fp32=_FP32_CUDA, fp32_dtype=_FP32_DTYPE_CUDA,
                   promote=_PROMOTE_CUDA, banned="binary_cross_entropy"),
    "cpu": _table(lower=_LOWER_COMMON + _LOWER_CPU_ONLY, fp32=_FP32_CPU, promote=_PROMOTE_CPU),
}

# Neuronix public names (namespace-qualified, as ops/public.py spells them) whose torch op has another name
ALIASES = {
    "nn.functional.cross_entropy": "cross_entropy_loss",
    "nn.functional.grid_sample": "grid_sampler",
}


def _pad_op(args, kwargs) -> str | None:
    """``F.pad`` is torch's ``constant_pad_nd``/``reflection_padNd``/``replication_padNd`` by its mode."""
    pad = kwargs.get("pad", args[1] if len(args) > 1 else ())
    mode = kwargs.get("mode", args[2] if len(args) > 2 else "constant")
    kind = {"reflect": "reflection", "replicate": "replication"}.get(mode)
    return None if kind is None else f"{kind}_pad{len(pad) // 2}d"


def _max_pool3d_op(args, kwargs) -> str:
    indices = kwargs.get("return_indices", args[6] if len(args) > 6 else False)
    return "max_pool3d_with_indices" if indices else "max_pool3d"


def _interpolate_op(args, kwargs) -> str | None:
    mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
    return None if mode == "area" else "interpolate"  # 'area' is adaptive_avg_pool in torch, on no list


# public functions that are one torch op or another by their arguments: name -> (args, kwargs) -> torch op name
BY_ARGUMENTS = {"pad": _pad_op, "max_pool3d": _max_pool3d_op, "interpolate": _interpolate_op}

_PREFIXES = {"nn.functional": "", "linalg": "linalg_", "fft": "fft_", "special": "special_", "": ""}


def torch_op_name(qualified: str) -> str | None:
    """The torch op name of a Neuronix public name (``nn.functional.linear`` -> ``linear``), or None."""
    if qualified in ALIASES:
        return ALIASES[qualified]
    namespace, _, name = qualified.rpartition(".")
    prefix = _PREFIXES.get(namespace)
    return None if prefix is None else prefix + name


def autocast_op(qualified: str) -> str | None:
    """The torch op name under which autocast handles ``qualified``, or None if no device's list names it."""
    op = torch_op_name(qualified)
    known = op in BY_ARGUMENTS or any(op in table for table in POLICIES.values())
    return op if op is not None and known else None
