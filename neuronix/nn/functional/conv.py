"""``nn.functional`` linear maps and convolutions: shape checks, ``'same'`` padding, unbatched inputs."""

from __future__ import annotations

from neuronix.nn.functional.arguments import add_batch, check_rank, drop_batch, int_tuple, shape_of
from neuronix.ops import conv as _conv
from neuronix.ops import linear as _linear
from neuronix.ops import padding as _padding
from neuronix.ops.public import public


@public(namespace="nn.functional")
def linear(input, weight, bias=None):
    """``y = input @ weight.T + bias`` (``torch.nn.functional.linear``); a 1-D ``weight`` gives one output
    with the feature dim dropped, and ``bias`` may be any shape that broadcasts with the product, as torch."""
    if input.ndim and weight.ndim and input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"linear: input of shape {shape_of(input)} has {input.shape[-1]} features in its last dim, but weight of "
            f"shape {shape_of(weight)} expects {weight.shape[-1]} (in_features)"
        )
    if input.ndim == 1 and weight.ndim == 2 and bias is not None and bias.ndim == 2:
        # torch adds the bias to the input as one row, (1, out), then drops that row: a (1, out) bias
        # gives an (out,) result, so its gradient must gain the row back
        return _linear.linear(input.unsqueeze(0), weight, bias).squeeze(0)
    if input.ndim >= 3 and not input.is_contiguous():
        # torch's matmul folds the batch dims of a contiguous copy of such an input and saves that copy: writing
        # the input in place after the forward is then no error in torch (a contiguous one is saved as a view)
        input = input.contiguous()
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
    batched = check_rank(op, input, spatial)
    if weight.ndim != spatial + 2:
        raise ValueError(f"{op}: expected a {spatial + 2}-D weight, got shape {shape_of(weight)}")
    channels = input.shape[1 if batched else 0]
    if groups < 1 or (not transposed and weight.shape[0] % groups):
        raise ValueError(f"{op}: groups={groups} must be positive and divide out_channels={weight.shape[0]}")
    expected = weight.shape[0] if transposed else weight.shape[1] * groups
    if channels != expected:
        layout = "in_channels = weight.shape[0]" if transposed else "in_channels = weight.shape[1] * groups"
        raise RuntimeError(
            f"{op}: expected input with {expected} channels ({layout}; weight {shape_of(weight)}, groups={groups}), "
            f"got {channels} channels in input of shape {shape_of(input)}"
        )
    out_channels = weight.shape[1] * groups if transposed else weight.shape[0]
    if bias is not None and shape_of(bias) != (out_channels,):
        raise RuntimeError(f"{op}: expected bias of shape ({out_channels},), got {shape_of(bias)}")
    stride = int_tuple(stride, spatial, op, "stride")
    dilation = int_tuple(dilation, spatial, op, "dilation")
    x = add_batch(input, batched)
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * spatial
        elif padding == "same":
            x, padding = _same_padding(op, x, weight, stride, dilation, spatial)
        else:
            raise ValueError(f"{op}: padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    padding = int_tuple(padding, spatial, op, "padding")
    output_padding = int_tuple(output_padding, spatial, op, "output_padding")
    out = _conv.convolution(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    return drop_batch(out, batched)


@public(namespace="nn.functional")
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d convolution over (N, C_in, L) or (C_in, L); ``padding`` may be ``'valid'`` or ``'same'``."""
    return _convolution("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


@public(namespace="nn.functional")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution over (N, C_in, H, W) or (C_in, H, W); ``padding`` may be ``'valid'`` or ``'same'``."""
    return _convolution("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


@public(namespace="nn.functional")
def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-d convolution over (N, C_in, D, H, W) or (C_in, D, H, W); ``padding`` may be ``'valid'`` or ``'same'``."""
    return _convolution("conv3d", 3, input, weight, bias, stride, padding, dilation, groups)


def _transposed(op, spatial, input, weight, bias, stride, padding, output_padding, groups, dilation):
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a tuple of ints, got {padding!r}")
    return _convolution(op, spatial, input, weight, bias, stride, padding, dilation, groups, True, output_padding)


@public(namespace="nn.functional")
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """1-d transposed convolution; ``weight`` is (C_in, C_out / groups, kL) as in torch."""
    return _transposed("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups, dilation)


@public(namespace="nn.functional")
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-d transposed convolution; ``weight`` is (C_in, C_out / groups, kH, kW) as in torch."""
    return _transposed("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups, dilation)


@public(namespace="nn.functional")
def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """3-d transposed convolution; ``weight`` is (C_in, C_out / groups, kD, kH, kW) as in torch."""
    return _transposed("conv_transpose3d", 3, input, weight, bias, stride, padding, output_padding, groups, dilation)


# torch.conv1d ... torch.conv_transpose3d: the same functions, signatures and defaults at the top level
for _fn in (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d):
    public(_fn, method=False)



@public(method=False)
def convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    """``torch.convolution``: every convolution in one call, all parameters explicit (batched input, no checks
    beyond torch's kernel's)."""
    for position, (value, what) in enumerate(((stride, "stride"), (padding, "padding"), (dilation, "dilation")), 4):
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"convolution(): argument '{what}' (position {position}) must be tuple of ints, not "
                            f"{type(value).__name__}")
    spatial = weight.ndim - 2
    tuples = [int_tuple(v, spatial, "convolution", what) for v, what in (
        (stride, "stride"), (padding, "padding"), (dilation, "dilation"), (output_padding, "output_padding"))]
    return _conv.convolution(input, weight, bias, tuples[0], tuples[1], tuples[2], bool(transposed), tuples[3],
                             int(groups))


@public(namespace="nn.functional")
def conv_tbc(input, weight, bias, pad=0):
    """1-d convolution of a (time, batch, in_channels) sequence with a (kernel, in_channels, out_channels) weight,
    giving (time', batch, out_channels): torch's kernels, conv1d on the permuted tensors for higher derivatives."""
    if input.ndim != 3 or weight.ndim != 3:
        raise RuntimeError(f"conv_tbc: expected a 3-D input (T, B, C_in) and a 3-D weight (K, C_in, C_out), got input "
                           f"{shape_of(input)} and weight {shape_of(weight)}")
    if bias is None or bias.ndim != 1 or bias.shape[0] != weight.shape[2]:
        raise RuntimeError(f"conv_tbc: expected a bias of shape ({weight.shape[2]},) (C_out), got "
                           f"{None if bias is None else shape_of(bias)}")
    return _conv.conv_tbc(input, weight, bias, int(pad))


public(conv_tbc, method=False)  # torch.conv_tbc: the same function
