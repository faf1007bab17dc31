"""Which dtypes the mirrors claim beyond float32/float64: every exception in one table, with its reason.

Op and module mirrors claim float16 and bfloat16 by default (``mirror.WITH_HALF``): their values and
first derivatives are compared with torch's in the same dtype, their finite differences taken with a
per-dtype step (``kinds/op.py``). ``NO_HALF`` lists the names that opt out (torch's CPU kernels or
neuronix cannot do them in half), ``NO_HALF_FD`` those that keep half but whose finite differences
cannot work at a half step, and ``COMPLEX`` the names that also claim complex64/complex128 (forward
values only: neuronix refuses ``requires_grad`` on complex tensors). ``mirror.register`` applies them,
so ``mirror.dtypes`` is the claim everyone reads (the case list, ``conformance list``, the report).
Keys are mirror names or ``fnmatch`` globs over them (a name matches itself: ``[`` in a name is literal).
"""

from __future__ import annotations

import fnmatch

import torch

from conformance.mirror import COMPLEX as COMPLEX_DTYPES
from conformance.mirror import HALF

# In the float16/bfloat16 run every other op and module mirror compares equal with torch 2.13's CPU kernels
# in values and first derivatives (ResNet aside, which needs torchvision in every dtype). A key
# "NAME|DTYPE" opts out of that half dtype alone.
NO_HALF: dict[str, str] = {
    "nn.functional.conv2d[groups]|float16": (
        "torch 2.13's CPU float16 grouped conv2d segfaults (the process dies) on small inputs with a stride beyond the "
        "input and a dilated, padded width: F.conv2d(torch.randn(1, 2, 2, 1, dtype=torch.float16), "
        "torch.randn(2, 1, 2, 1, dtype=torch.float16), stride=3, dilation=(1, 2), groups=2, padding=(1, 2)); "
        "bfloat16 and float32 run it"),
    **dict.fromkeys(("nn.functional.conv1d|bfloat16", "nn.functional.conv1d[groups]|bfloat16", "nn.Conv1d|bfloat16"), (
        "torch 2.13's CPU bfloat16 conv1d backward returns uninitialised memory (from 1e-25 to 1e+22, changing from "
        "run to run) for weight-gradient elements that only meet padding when the stride passes the input: x = "
        "torch.randn(1, 1, 2, dtype=torch.bfloat16, requires_grad=True), w = torch.randn(4, 1, 2, dtype=torch.bfloat16, "
        "requires_grad=True), F.conv1d(x, w, stride=3, padding=1).sum().backward(): w.grad[..., 0] should be 0; "
        "neuronix calls the same kernel. float16, float32, conv2d/conv3d and padding=\"same\" (stride 1) are exact")),
}

# A half step displaces an input by up to 0.08 (kinds/op.py FD_STEP), float64's by 2e-6: the domains keep
# inputs ~0.1 from the kinks they know, but not from these, which a half step crosses in a few examples in a
# hundred (measured in the float16/bfloat16 run; values, gradients and float64 finite differences still run).
_JUMP = "a jump where x / y or x is an integer: a half step crosses it (float64's 2e-6 step does not)"
_TIE = "selects among values a half step reorders (bfloat16 rounds many drawn values to ties)"
NO_HALF_FD: dict[str, str] = {
    "*remainder*": _JUMP, "Tensor.__*mod__": _JUMP, "*frac*": _JUMP, "div[rounding_mode]": _JUMP,
    "max*": _TIE, "min*": _TIE, "Tensor.max*": _TIE, "Tensor.min*": _TIE, "*amax*": _TIE, "*amin*": _TIE,
    "*max_pool*": _TIE, "*clamp*": "the clamp bounds are drawn independently of x: a half step crosses them",
    "*clip*": "the clip bounds are drawn independently of x: a half step crosses them",
    **dict.fromkeys(("*sort*", "*topk*", "*kthvalue*", "*median*", "*cummax*", "*cummin*", "*aminmax*"), _TIE),
    "*std*": "std's kink where the values coincide (two elements: |x0 - x1| / sqrt 2) is within a half step",
    "nn.functional.binary_cross_entropy": "a half step (up to 0.08) carries a probability or target drawn near 0 or 1 out "
                                          "of [0, 1], where both libraries raise",
    "*grid_sample*": "the grid picks the pixels: a half step (up to 0.08 of [-1, 1], about a pixel) crosses the cell "
                     "edges where bilinear/bicubic weights kink and nearest sampling jumps",
}

# Found by trying every op mirror on complex64 inputs (independent real and imaginary draws from the
# mirror's domain): these compare equal with torch. Left out: what torch's CPU kernels refuse for complex
# (comparisons, rounding, max/min, clamp, pooling, convolution, most losses), and what draws only integer
# inputs (bitwise ops, randint), and softmax / log_softmax of a complex input (torch 2.13 has no complex128
# kernel; softmax[dtype] casts first). Confirmed by a complex64,complex128 run. Family -> exact mirror names.
COMPLEX: dict[str, tuple[str, ...]] = {
    "unary and binary math, their operators, in-place forms and casts (conformance/mirrors/elementwise.py, operators.py)": (
        "exp", "Tensor.exp", "expm1", "Tensor.expm1", "log", "Tensor.log", "log1p", "Tensor.log1p", "log2",
        "Tensor.log2", "log10", "Tensor.log10", "sqrt", "Tensor.sqrt", "rsqrt", "Tensor.rsqrt", "abs",
        "Tensor.abs", "neg", "Tensor.neg", "negative", "Tensor.negative", "sin", "Tensor.sin", "cos",
        "Tensor.cos", "tan", "Tensor.tan", "sinh", "Tensor.sinh", "cosh", "Tensor.cosh", "tanh", "Tensor.tanh",
        "sigmoid", "Tensor.sigmoid", "reciprocal", "Tensor.reciprocal", "square", "Tensor.square", "add",
        "Tensor.add", "sub", "Tensor.sub", "subtract", "Tensor.subtract", "mul", "Tensor.mul", "multiply",
        "Tensor.multiply", "div", "Tensor.div", "divide", "Tensor.divide", "true_divide", "Tensor.true_divide",
        "pow", "Tensor.pow", "add[alpha]", "sub[alpha]", "where", "Tensor.where", "lerp", "Tensor.lerp",
        "addcmul", "Tensor.addcmul", "addcdiv", "Tensor.addcdiv", "pow[scalar exponent]", "pow[scalar base]",
        "Tensor.__add__", "Tensor.__radd__", "Tensor.__sub__", "Tensor.__rsub__", "Tensor.__mul__",
        "Tensor.__rmul__", "Tensor.__truediv__", "Tensor.__rtruediv__", "Tensor.__pow__", "Tensor.__rpow__",
        "Tensor.__neg__", "Tensor.__pos__", "Tensor.__abs__", "Tensor.double", "Tensor.float", "Tensor.half",
        "Tensor.bfloat16", "Tensor.long", "Tensor.int", "Tensor.bool", "Tensor.to", "Tensor.type_as",
        "Tensor.cpu", "Tensor.exp_", "Tensor.expm1_", "Tensor.log_", "Tensor.log1p_", "Tensor.log2_",
        "Tensor.log10_", "Tensor.sqrt_", "Tensor.rsqrt_", "Tensor.neg_", "Tensor.negative_", "Tensor.sin_",
        "Tensor.cos_", "Tensor.tan_", "Tensor.sinh_", "Tensor.cosh_", "Tensor.tanh_", "Tensor.sigmoid_",
        "Tensor.reciprocal_", "Tensor.square_", "Tensor.add_", "Tensor.sub_", "Tensor.subtract_", "Tensor.mul_",
        "Tensor.multiply_", "Tensor.div_", "Tensor.divide_", "Tensor.true_divide_", "Tensor.pow_",
        "Tensor.lerp_", "Tensor.addcmul_", "Tensor.addcdiv_",
    ),
    "matrix products (linalg.py)": (
        "matmul", "Tensor.matmul", "mm", "Tensor.mm", "bmm", "Tensor.bmm", "mv", "Tensor.mv", "dot",
        "Tensor.dot", "outer", "Tensor.outer", "Tensor.__matmul__", "Tensor.__rmatmul__", "einsum",
    ),
    "shape, movement, indexing and scatter ops (movement.py)": (
        "reshape", "Tensor.reshape", "Tensor.view", "Tensor.view_as", "Tensor.reshape_as", "squeeze",
        "Tensor.squeeze", "unsqueeze", "Tensor.unsqueeze", "flatten", "Tensor.flatten", "unflatten",
        "Tensor.unflatten", "permute", "Tensor.permute", "transpose", "Tensor.transpose", "swapaxes",
        "Tensor.swapaxes", "swapdims", "Tensor.swapdims", "t", "Tensor.t", "movedim", "Tensor.movedim",
        "moveaxis", "Tensor.moveaxis", "Tensor.T", "Tensor.mT", "Tensor.expand", "Tensor.expand_as",
        "broadcast_to", "Tensor.broadcast_to", "Tensor.repeat", "tile", "Tensor.tile", "cat", "concat",
        "concatenate", "stack", "split", "Tensor.split", "chunk", "Tensor.chunk", "unbind", "Tensor.unbind",
        "narrow", "Tensor.narrow", "select", "Tensor.select", "gather", "Tensor.gather", "scatter_add",
        "Tensor.scatter_add", "scatter", "Tensor.scatter", "scatter[value]", "index_select",
        "Tensor.index_select", "index_add", "Tensor.index_add", "masked_fill", "Tensor.masked_fill",
        "masked_select", "Tensor.masked_select", "flip", "Tensor.flip", "fliplr", "Tensor.fliplr", "flipud",
        "Tensor.flipud", "roll", "Tensor.roll", "Tensor.contiguous", "clone", "Tensor.clone", "tril",
        "Tensor.tril", "triu", "Tensor.triu", "diagonal", "Tensor.diagonal", "Tensor.__getitem__",
        "Tensor.__getitem__[int tensor]", "Tensor.__getitem__[list]", "Tensor.__getitem__[bool mask]",
        "Tensor.__getitem__[mixed]", "Tensor.__setitem__", "Tensor.squeeze_", "Tensor.unsqueeze_",
        "Tensor.transpose_", "Tensor.swapaxes_", "Tensor.swapdims_", "Tensor.t_", "Tensor.scatter_add_",
        "Tensor.scatter_", "Tensor.index_add_", "Tensor.masked_fill_", "Tensor.tril_", "Tensor.triu_",
    ),
    "reductions, cumulative ops, softmax (reduce.py)": (
        "sum", "Tensor.sum", "sum[dtype]", "mean", "Tensor.mean", "mean[dtype]", "prod", "Tensor.prod",
        "prod[zeros]", "var", "Tensor.var", "var[unbiased]", "std", "Tensor.std", "std[unbiased]", "logsumexp",
        "Tensor.logsumexp", "norm", "Tensor.norm", "cumsum", "Tensor.cumsum", "cumsum[dtype]", "cumprod",
        "Tensor.cumprod", "cumprod[zeros]", "softmax[dtype]", "log_softmax[dtype]", "Tensor.cumsum_", "Tensor.cumprod_",
    ),
    "nn.functional: linear, embedding, pad, activations, l1 (nn_functional.py)": (
        "nn.functional.linear", "nn.functional.linear[shapes]", "nn.functional.embedding",
        "nn.functional.embedding[padding_idx]", "nn.functional.embedding[scale_grad_by_freq]",
        "nn.functional.pad", "nn.functional.pad[negative]", "nn.functional.pad[reflect]",
        "nn.functional.pad[reflect,negative]", "nn.functional.pad[replicate]",
        "nn.functional.pad[replicate,negative]", "nn.functional.pad[circular]",
        "nn.functional.pad[circular,negative]", "nn.functional.tanh", "nn.functional.sigmoid",
        "nn.functional.silu", "nn.functional.softmax[dtype]", "nn.functional.log_softmax[dtype]",
        "nn.functional.l1_loss", "nn.functional.smooth_l1_loss[beta=0]",
    ),
    "NaN/inf tests and closeness (compare.py)": (
        "isnan", "Tensor.isnan", "isinf", "Tensor.isinf", "isfinite", "Tensor.isfinite", "isclose",
        "Tensor.isclose", "allclose", "Tensor.allclose",
    ),
    "factories with dtype=complex (factories.py), copy/fill/zero (inplace.py)": (
        "zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "linspace", "logspace", "eye",
        "tensor", "as_tensor", "empty", "empty_like", "rand", "randn", "rand_like", "randn_like",
        "Tensor.copy_", "Tensor.fill_", "Tensor.zero_",
    ),
}
COMPLEX_NAMES = frozenset(n for names in COMPLEX.values() for n in names)


def _reason(table: dict[str, str], name: str, dtype: str = "") -> str | None:
    """The reason of the first entry ``PATTERN`` or ``PATTERN|DTYPE`` (that dtype only) matching ``name``."""
    for key, why in table.items():
        pattern, _, only = key.partition("|")
        if (name == pattern or fnmatch.fnmatchcase(name, pattern)) and (not only or only == dtype):
            return why
    return None


def claimed(mirror) -> tuple:
    """``mirror.dtypes`` after the tables: half removed where opted out, complex where ``COMPLEX`` names it
    (and only there: a mirror derived from another, as the in-place ones are, inherits its dtypes)."""
    dtypes = tuple(d for d in mirror.dtypes if d not in COMPLEX_DTYPES)
    dtypes = tuple(d for d in dtypes if d not in HALF or _reason(NO_HALF, mirror.name, str(d).removeprefix("torch.")) is None)
    if mirror.kind == "op" and torch.float64 in dtypes and mirror.name in COMPLEX_NAMES:
        dtypes += tuple(d for d in COMPLEX_DTYPES if d not in dtypes)
    return dtypes


def half_finite_differences(name: str) -> bool:
    """Whether a mirror that claims half also takes its finite differences in half."""
    return _reason(NO_HALF_FD, name) is None


def claims_of(names) -> dict[str, dict[str, list[str]]]:
    """The dtypes and device types each registered name in ``names`` claims, for the report: the matrix
    shows a claimed dtype that a run did not cover as a grey "not run" cell."""
    import conformance.mirrors  # noqa: F401  (fills the registry)
    from conformance.mirror import REGISTRY

    return {n: {"dtypes": [str(d).removeprefix("torch.") for d in REGISTRY[n].dtypes],
                "devices": list(getattr(REGISTRY[n], "devices", ("cpu", "cuda")))}
            for n in sorted(names) if n in REGISTRY}
