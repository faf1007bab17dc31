"""Spatial ops of nn.functional: interpolation kernels, fold/unfold (col2im/im2col), pixel and channel shuffles.

Each is linear in its input, so each comes with its adjoint and the pair closes under differentiation:

* an ``upsample_*`` kernel's VJP is torch's ``upsample_*_backward`` kernel, and that kernel's VJP in its
  upstream gradient is the upsampling again (torch's double backward is the same pair), for every mode:
  nearest, nearest-exact, (bi/tri)linear, bicubic and the antialiased ones;
* ``im2col`` (unfold) and ``col2im`` (fold) are each other's adjoints;
* ``pixel_shuffle`` and ``pixel_unshuffle`` are inverse permutations, as are ``channel_shuffle`` with ``g``
  groups and with ``C / g`` groups.

Forwards and first backwards are torch's kernels (so values and their rounding are torch's), and every
higher derivative is again one of these ops.
"""

from __future__ import annotations

import torch

from neuronix.autograd import mode
from neuronix.ops.registry import apply, defop
from neuronix.tensor import Tensor

_aten = torch.ops.aten


def composed_rule(composed, which: int):
    """The VJP for input ``which`` of an op whose forward and first backward are torch's kernels (its ``fused``)
    and whose higher derivatives torch also has: ``composed``, the op written in neuronix ops, differentiated by
    the engine itself, so under create_graph the rule records a graph of the right derivative (the kernel still
    gives the first derivative's value). On a plain backward it runs only where the kernel declined."""
    def rule(g, out, *inputs, **attrs):
        from neuronix.autograd.engine import grad  # the engine imports the registry, which this module does

        recorded = isinstance(g, Tensor)
        args = [t if isinstance(t, Tensor) or t is None else Tensor(t) for t in inputs]
        target = args[which]
        if not recorded or not target.requires_grad:  # a leaf of its own for this rule
            args[which] = target = target.detach().requires_grad_()
        with mode.enable_grad():
            (gradient,) = grad(composed(*args, **attrs), (target,), g if recorded else Tensor(g),
                               create_graph=recorded, allow_unused=True, materialize_grads=True)
        return gradient if recorded else gradient.data

    return rule


# ----- interpolation ----------------------------------------------------------------------------------------
# Attributes: output_size and input_size (full, (N, C, *spatial)) as tuples, align_corners (None for the modes
# without it: nearest, nearest-exact) and scales, the per-dim scale factors the kernel uses for its source
# coordinates (None where the size was given), as torch's interpolate passes them.
def _corners(align_corners) -> tuple:
    return () if align_corners is None else (align_corners,)


def _upsample_ops(kernel: str):
    forward = getattr(_aten, kernel)
    backward_kernel = getattr(_aten, f"{kernel}_backward")
    up = defop(
        kernel,
        lambda x, output_size, input_size, align_corners, scales: forward(
            x, output_size, *_corners(align_corners), *scales),
        lambda g, out, x, **a: apply(back, g, **a),
        saves=(),
    )
    back = defop(
        f"{kernel}_backward",
        lambda g, output_size, input_size, align_corners, scales: backward_kernel(
            g, output_size, input_size, *_corners(align_corners), *scales),
        lambda h, out, g, **a: apply(up, h, **a),
        saves=(),
    )
    return up


UPSAMPLE = {kernel: _upsample_ops(kernel) for kernel in (
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
    "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d",
    "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa", "_upsample_lanczos2d_aa",
)}


def upsample(kernel: str, x, output_size: tuple, align_corners, scales: tuple) -> Tensor:
    """``aten.<kernel>(x, output_size, [align_corners], *scales)``, differentiable to every order."""
    return apply(UPSAMPLE[kernel], x, output_size=tuple(output_size), input_size=tuple(x.shape),
                 align_corners=align_corners, scales=tuple(scales))


# ----- fold / unfold -------------------------------------------------------------------------------------
IM2COL = defop(
    "im2col",
    lambda x, kernel_size, dilation, padding, stride, image_size: _aten.im2col(x, kernel_size, dilation, padding, stride),
    lambda g, out, x, image_size, **a: apply(COL2IM, g, output_size=image_size, **a),
    saves=(),
)
COL2IM = defop(
    "col2im",
    lambda x, output_size, kernel_size, dilation, padding, stride: _aten.col2im(
        x, output_size, kernel_size, dilation, padding, stride),
    lambda g, out, x, output_size, **a: apply(IM2COL, g, image_size=output_size, **a),
    saves=(),
)


def im2col(x, kernel_size, dilation, padding, stride) -> Tensor:
    return apply(IM2COL, x, kernel_size=kernel_size, dilation=dilation, padding=padding, stride=stride,
                 image_size=tuple(x.shape[-2:]))


def col2im(x, output_size, kernel_size, dilation, padding, stride) -> Tensor:
    return apply(COL2IM, x, output_size=output_size, kernel_size=kernel_size, dilation=dilation, padding=padding,
                 stride=stride)


# ----- pixel and channel shuffles ---------------------------------------------------------------------------
PIXEL_SHUFFLE = defop(
    "pixel_shuffle",
    lambda x, upscale_factor: torch.pixel_shuffle(x, upscale_factor),
    lambda g, out, x, upscale_factor: apply(PIXEL_UNSHUFFLE, g, downscale_factor=upscale_factor),
    saves=(),
)
PIXEL_UNSHUFFLE = defop(
    "pixel_unshuffle",
    lambda x, downscale_factor: torch.pixel_unshuffle(x, downscale_factor),
    lambda g, out, x, downscale_factor: apply(PIXEL_SHUFFLE, g, upscale_factor=downscale_factor),
    saves=(),
)
# (C / g) groups of g channels, transposed: the inverse shuffle transposes back, with C / g groups
CHANNEL_SHUFFLE = defop(
    "channel_shuffle",
    lambda x, groups: torch.channel_shuffle(x, groups),
    lambda g, out, x, groups: apply(CHANNEL_SHUFFLE, g, groups=g.shape[1] // groups),
    saves=(),
)
