"""Mirrors of neuronix's internal ops that run only inside backward passes, against torch's aten twins.

Neuronix's rules apply registry ops of their own (``avg_pool2d_backward``, ``convolution_backward_input``,
``logit_backward``, ...). Their values are the public ops' gradients and their first rules the public
ops' second derivatives, which the public mirrors check; but their rules under ``create_graph`` run only
for a third derivative of a public op, above the highest order the harness checks (``python -m
conformance mutate`` found their recorded-only and upstream-gradient faults surviving). Mirroring the
internal op itself against the aten op torch differentiates (``torch.ops.aten.avg_pool2d_backward``, ...)
makes the harness's first and second derivatives of it the third and fourth order of the public op,
with every other check (finite differences, forward mode, special values) on top.

Names are ``aten.<torch's op>``: no public neuronix name, so coverage lists them apart (not as holes).
Each sample reuses a public mirror's draw (``nn_functional``) for the op's parameters and draws the
upstream gradient ``g`` in the shape torch's forward gives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

from conformance.mirror import FLOATS, OpMirror, Sample, register
from conformance.mirrors.nn_functional import _adaptive, _avg_pool, _embedding, _max_pool
from conformance.strategies import PROB, REAL, Domain, index_tensor, nonempty_shape, tensor
from neuronix.ops import activation, conv, dropout_embedding, elementwise, indexing, loss, padding, pool
from neuronix.ops.registry import apply
from neuronix.tensor import unwrap

_aten = torch.ops.aten


def _mirror(name: str, nx_fn, torch_fn, sample, **kw) -> OpMirror:
    # float32/float64 only: what these add is the orders above the second, which the harness checks in those
    # dtypes alone; the half values and gradients of these ops are the public ops' (their mirrors check them)
    return OpMirror(f"aten.{name}", nx_fn, torch_fn, sample, **{"dtypes": FLOATS, **kw})


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


# ----- pooling ---------------------------------------------------------------------------------------------
def _pool_params(kwargs: dict) -> dict:
    """``F.max_pool2d``/``F.avg_pool2d`` keywords as the backward ops take them (pairs, stride defaulted)."""
    kernel = _pair(kwargs["kernel_size"])
    return {"kernel_size": kernel, "stride": _pair(kwargs.get("stride") or kernel), "padding": _pair(kwargs["padding"])}


def _max_pool_backward_sample(draw, dtype, device):
    base = _max_pool(ceil=(False, True))(draw, dtype, device)
    x = base.args[0]
    a = {**_pool_params(base.kwargs), "dilation": _pair(base.kwargs["dilation"]), "ceil_mode": base.kwargs["ceil_mode"]}
    out, indices = _aten.max_pool2d_with_indices(x, *a.values())
    return Sample((tensor(draw, out.shape, dtype, device), x), {**a, "indices": indices})


def _nx_max_pool2d_backward(g, x, indices, **a):
    return apply(pool.MAX_POOL2D_BACKWARD, g, x, indices=unwrap(indices), **a)


def _torch_max_pool2d_backward(g, x, indices, kernel_size, stride, padding, dilation, ceil_mode):
    return _aten.max_pool2d_with_indices_backward(g, x, kernel_size, stride, padding, dilation, ceil_mode, indices)


def _avg_pool_backward_sample(draw, dtype, device):
    base = _avg_pool(divisor=(None, 1, 5))(draw, dtype, device)
    x = base.args[0]
    a = {**_pool_params(base.kwargs), **{k: base.kwargs[k] for k in ("ceil_mode", "count_include_pad", "divisor_override")}}
    out = TF.avg_pool2d(x, **a)
    return Sample((tensor(draw, out.shape, dtype, device), x), a)


def _avg_params(a: dict) -> tuple:
    return tuple(a[k] for k in ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"))


def _adaptive_max_backward_sample(draw, dtype, device):
    base = _adaptive(True)(draw, dtype, device)
    x = base.args[0]
    out, indices = TF.adaptive_max_pool2d(x, base.kwargs["output_size"], return_indices=True)
    return Sample((tensor(draw, out.shape, dtype, device), x), {"indices": indices})


def _adaptive_avg_backward_sample(draw, dtype, device):
    base = _adaptive(False)(draw, dtype, device)
    x = base.args[0]
    out = TF.adaptive_avg_pool2d(x, base.kwargs["output_size"])
    return Sample((tensor(draw, out.shape, dtype, device), x), {"output_size": tuple(out.shape[-2:])})


def _gather_sample(draw, dtype, device):
    """``max_pool_gather(h, indices)``: h of the pooled input's shape, the indices of a max pooling of it."""
    pooled = _max_pool_backward_sample(draw, dtype, device)
    x, indices = pooled.args[1], pooled.kwargs["indices"]
    return Sample((tensor(draw, x.shape, dtype, device),), {"indices": indices})


def _torch_gather(h, indices):
    return h.flatten(-2).gather(-1, indices.flatten(-2)).view(indices.shape)


def _scatter_sample(draw, dtype, device):
    """``max_pool_scatter(g, indices, shape)``: g of the pooled output's shape, scattered into the input's."""
    pooled = _max_pool_backward_sample(draw, dtype, device)
    return Sample((pooled.args[0],), {"indices": pooled.kwargs["indices"], "shape": tuple(pooled.args[1].shape)})


def _torch_scatter(g, indices, shape):
    out = g.new_zeros(shape)
    return out.flatten(-2).scatter_add(-1, indices.flatten(-2), g.flatten(-2)).view(shape)


register(
    _mirror("max_pool2d_with_indices_backward", _nx_max_pool2d_backward, _torch_max_pool2d_backward,
            _max_pool_backward_sample),
    _mirror("avg_pool2d_backward", lambda g, x, **a: apply(pool.AVG_POOL2D_BACKWARD, g, x, **a),
            lambda g, x, **a: _aten.avg_pool2d_backward(g, x, *_avg_params(a)), _avg_pool_backward_sample),
    _mirror("adaptive_max_pool2d_backward",
            lambda g, x, indices: apply(pool.ADAPTIVE_MAX_POOL2D_BACKWARD, g, x, indices=unwrap(indices)),
            _aten.adaptive_max_pool2d_backward, _adaptive_max_backward_sample),
    _mirror("_adaptive_avg_pool2d_backward",
            lambda g, x, output_size: apply(pool.ADAPTIVE_AVG_POOL2D_BACKWARD, g, x, output_size=output_size,
                                            in_shape=tuple(x.shape)),
            lambda g, x, output_size: _aten._adaptive_avg_pool2d_backward(g, x), _adaptive_avg_backward_sample),
    # neuronix's max pooling double backward pair (torch's max_pool_double_backward is a gather, its adjoint the
    # scatter of max_pool2d_with_indices_backward); torch differentiates both compositions
    _mirror("max_pool_double_backward",
            lambda h, indices: apply(pool.MAX_POOL_GATHER, h, indices=unwrap(indices), shape=tuple(h.shape)),
            _torch_gather, _gather_sample),
    _mirror("max_pool_double_backward[scatter]",
            lambda g, indices, shape: apply(pool.MAX_POOL_SCATTER, g, indices=unwrap(indices), shape=shape),
            _torch_scatter, _scatter_sample),
)


# ----- convolution -----------------------------------------------------------------------------------------
def _conv_sample(draw, dtype, device):
    """A convolution's (x, w) and parameters (1-3 spatial dims, maybe transposed) plus its upstream gradient g."""
    spatial, transposed = draw(st.integers(1, 2)), draw(st.booleans())
    groups = draw(st.sampled_from((1, 2)))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(spatial))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(spatial))
    pad = tuple(draw(st.integers(0, (d * (k - 1)) // 2)) for d, k in zip(dil, kernel))
    # no output_padding: torch's double backward of a transposed convolution_backward with one raises (it
    # passes it on to a non-transposed convolution), so torch has no third derivative to compare there
    out_pad = (0,) * spatial
    size = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 4)) for d, k in zip(dil, kernel))
    x = tensor(draw, (draw(st.integers(1, 2)), cin) + size, dtype, device)
    w = tensor(draw, ((cin, cout // groups) if transposed else (cout, cin // groups)) + kernel, dtype, device)
    a = {"stride": stride, "padding": pad, "dilation": dil, "transposed": transposed, "output_padding": out_pad,
         "groups": groups}
    out = _aten.convolution(x, w, None, *a.values())
    return x, w, tensor(draw, out.shape, dtype, device), a


def _input_backward_sample(draw, dtype, device):
    x, w, g, a = _conv_sample(draw, dtype, device)
    return Sample((g, w, x), a, raw_args=(2,))  # x gives the input's shape only (the op keeps it raw)


def _weight_backward_sample(draw, dtype, device):
    x, w, g, a = _conv_sample(draw, dtype, device)
    return Sample((g, x, w), a, raw_args=(2,))


def _conv_params(a: dict) -> tuple:
    return tuple(a[k] for k in ("stride", "padding", "dilation", "transposed", "output_padding", "groups"))


# float64 only: in float32 torch's convolution kernels and the formula of its convolution double backward differ in
# where an inf upstream gradient meets zeros (NaN patterns at special values: 0 * inf grouped otherwise, found in the
# thorough profile), and round 2e-6 apart; in float64 they agree, and so does neuronix (whose rules apply the kernels)
_CONV_DTYPES = {"dtypes": (torch.float64,), "note": "float64 only: torch's float32 kernels and its double-backward "
                "formula differ in NaN patterns under inf upstream gradients"}
register(
    _mirror("convolution_backward[input]", lambda g, w, x, **a: apply(conv.BACKWARD_INPUT, g, w, x, **a),
            lambda g, w, x, **a: _aten.convolution_backward(g, x, w, None, *_conv_params(a), [True, False, False])[0],
            _input_backward_sample, **_CONV_DTYPES),
    _mirror("convolution_backward[weight]", lambda g, x, w, **a: apply(conv.BACKWARD_WEIGHT, g, x, w, **a),
            lambda g, x, w, **a: _aten.convolution_backward(g, x, w, None, *_conv_params(a), [False, True, False])[1],
            _weight_backward_sample, **_CONV_DTYPES),
)


# ----- embedding, nll_loss, pad, diagonal ------------------------------------------------------------------
def _embedding_backward_sample(draw, dtype, device):
    base = _embedding(padding=(None, 0, -1))(draw, dtype, device)
    indices, w = base.args
    pad = base.kwargs["padding_idx"]
    a = {"num_weights": w.shape[0], "padding_idx": -1 if pad is None else pad % w.shape[0], "scale_grad_by_freq": False}
    return Sample((tensor(draw, indices.shape + w.shape[1:], dtype, device),), {"indices": indices, **a})


def _nll_backward_sample(draw, dtype, device):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    shape = (n, c) if draw(st.booleans()) else (c,)
    target = index_tensor(draw, shape[:-1], c, device)
    weight = tensor(draw, (c,), dtype, device, Domain(0.1, 2.0)) if draw(st.booleans()) else None
    reduction = draw(st.sampled_from(("none", "mean", "sum")))
    ignore = draw(st.sampled_from((-100, 0)))
    if reduction == "mean" and bool((target == ignore).all()):
        # every target ignored under 'mean': nll_loss is 0 / 0 = NaN, so the derivative torch and neuronix give this
        # op (nll_loss itself) is NaN where its values are constant 0; the public nll_loss mirror meets that point
        ignore = -100
    g = tensor(draw, target.shape if reduction == "none" else (), dtype, device)
    return Sample((g,), {"target": target, "weight": weight, "reduction": reduction, "ignore_index": ignore,
                         "shape": shape})


def _nx_nll_backward(g, target, weight, reduction, ignore_index, shape):
    return apply(loss.NLL_LOSS_BACKWARD, g, unwrap(target), weight, reduction=reduction, ignore_index=ignore_index,
                 shape=shape, class_dim=len(shape) - 1)


def _torch_nll_backward(g, target, weight, reduction, ignore_index, shape):
    x = g.new_zeros(shape)  # read for its shape only
    valid = target != ignore_index
    w = torch.ones(shape[-1], dtype=g.dtype) if weight is None else weight
    total = (w[target.masked_fill(~valid, 0)] * valid).sum() if reduction == "mean" else g.new_zeros(())
    enum = {"none": 0, "mean": 1, "sum": 2}[reduction]
    return _aten.nll_loss_backward(g, x, target, weight, enum, ignore_index, total.detach())


def _pad_backward_sample(draw, dtype, device):
    mode = draw(st.sampled_from(("reflect", "replicate")))
    dims = draw(st.integers(1, 2))
    x = tensor(draw, tuple(draw(st.integers(3, 5)) for _ in range(dims + 1)), dtype, device)
    pads = tuple(draw(st.integers(0, 2)) for _ in range(2 * dims))
    out = TF.pad(x, pads, mode)
    return Sample((tensor(draw, out.shape, dtype, device), x), {"pad": pads, "mode": mode})


def _torch_pad_backward(g, x, pad, mode):
    op = {"reflect": "reflection_pad", "replicate": "replication_pad"}[mode] + f"{len(pad) // 2}d_backward"
    return getattr(_aten, op)(g, x, list(pad))


def _diagonal_backward_sample(draw, dtype, device):
    shape = nonempty_shape(draw, 2, 3)
    dim1, dim2 = draw(st.permutations(range(len(shape))))[:2]
    offset = draw(st.integers(-2, 2))
    diag = torch.empty(shape).diagonal(offset, dim1, dim2)
    return Sample((tensor(draw, diag.shape, dtype, device),), {"offset": offset, "dim1": dim1, "dim2": dim2,
                                                                 "shape": shape})


register(
    _mirror("embedding_dense_backward",
            lambda g, indices, **a: apply(dropout_embedding.EMBEDDING_BACKWARD, g, unwrap(indices), **a),
            lambda g, indices, num_weights, padding_idx, scale_grad_by_freq: _aten.embedding_dense_backward(
                g, indices, num_weights, padding_idx, scale_grad_by_freq),
            _embedding_backward_sample),
    _mirror("nll_loss_backward", _nx_nll_backward, _torch_nll_backward, _nll_backward_sample),
    _mirror("pad_backward", lambda g, x, pad, mode: apply(padding.PAD_BACKWARD, g, x, pad=pad, mode=mode,
                                                          shape=tuple(x.shape)),
            _torch_pad_backward, _pad_backward_sample),
    _mirror("diagonal_backward", lambda g, **a: apply(indexing._DIAGONAL_BACKWARD, g, **a),
            lambda g, offset, dim1, dim2, shape: _aten.diagonal_backward(g, shape, offset, dim1, dim2),
            _diagonal_backward_sample),
)


# ----- elementwise helpers of rules ------------------------------------------------------------------------
def _unary(domain: Domain):
    def sample(draw, dtype, device):
        return Sample((tensor(draw, nonempty_shape(draw, 1, 3), dtype, device, domain),))

    return sample


def _logit_backward_sample(draw, dtype, device):
    x = tensor(draw, nonempty_shape(draw, 1, 3), dtype, device, PROB)
    return Sample((tensor(draw, x.shape, dtype, device), x))


def _anchored_sample(draw, dtype, device):
    # the anchor is a constant: its derivative is exactly 0 in neuronix (no NaN from 0 * inf) and torch's twin
    # neither saves it nor masks it; only the value's rule has something to check
    shape = nonempty_shape(draw, 1, 3)
    return Sample((tensor(draw, shape, dtype, device), tensor(draw, shape, dtype, device)), grad_args=(0,))


def _inside_unit_interval(fn, position: int):
    """``fn``, refusing (on both sides alike, so the harness skips the draw) an argument at ``position`` outside the
    open interval (0, 1): there torch's logit derivative is a composite under create_graph and its kernel otherwise,
    which differ at 0, -0.0, 1 and outside (inf signs, NaN); neuronix's rules use the kernel in both modes, and the
    public ops that apply these (binary_cross_entropy's target gradient) are checked at those points themselves."""

    def guarded(*args):
        x = unwrap(args[position])
        if not bool(((x > 0) & (x < 1)).all()):
            raise ValueError("outside the open unit interval: the rules' domain here")
        return fn(*args)

    return guarded


def _torch_logit_backward(g, x):
    # torch's own formula under create_graph (it does not differentiate aten.logit_backward, the kernel)
    return g / (x * (1 - x))


register(
    _mirror("log_sigmoid_forward", lambda x: apply(activation.LOG_SIGMOID, x), TF.logsigmoid, _unary(REAL)),
    _mirror("logit", _inside_unit_interval(lambda x: apply(loss.LOGIT, x), 0),
            _inside_unit_interval(torch.logit, 0), _unary(PROB)),
    _mirror("logit_backward", _inside_unit_interval(lambda g, x: apply(loss.LOGIT_BACKWARD, g, x), 1),
            _inside_unit_interval(_torch_logit_backward, 1), _logit_backward_sample, dtypes=(torch.float64,),
            note="float64 only: in float32 torch's derivatives of its composite and neuronix's rules (the kernel's "
                 "form) round up to 1e-4 apart (cancellation in (1 - x) - x near x = 1/2); neither is the reference"),
    # ``anchored(value, anchor)`` is value itself, in anchor's graph with derivative 0: torch's twin is an alias
    _mirror("anchored", lambda value, anchor: apply(elementwise._ANCHORED, value, anchor),
            lambda value, anchor: value.view_as(value), _anchored_sample),
)
