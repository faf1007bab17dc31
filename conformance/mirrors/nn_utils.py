"""Mirrors of ``nn.utils``' reparametrizations, applied to layers in each library and run as modules.

``nn.<Layer>[<util>]`` builds ``torch.nn.<Layer>`` and ``nx.nn.<Layer>`` from the same drawn constructor
arguments after the same seed, applies the util of its own library (the hook-based ``weight_norm`` /
``spectral_norm``, or ``parametrizations.weight_norm`` / ``spectral_norm``) with drawn keywords, and the
module driver checks the rest: the initial state_dict (torch's key names, ``weight_g``/``weight_v``,
``weight_orig``/``weight_u``/``weight_v``, ``parametrizations.weight.original0``/``original1``/``0._u``,
``0.base``, and the ``u``/``v`` (and orthogonal's random completion) drawn from torch's RNG as torch draws
them), strict loading of torch's
state_dict, outputs, the gradients of the input and of the originals, second derivatives, and the
buffers after each forward in train mode (a power step) and eval mode (none). The functions
themselves (and clipping, parameter vectors) are tested against torch in ``tests/test_nn_utils.py``.

Weight norm's second derivatives are not compared with torch's: for ``dim`` 0 or the last dimension
torch runs a fused kernel (``_weight_norm_interface``) whose double backward in ``v`` is wrong (it
fails ``torch.autograd.gradgradcheck``; torch's own composite ``v * (g / norm_except_dim(v, 2, dim))``
passes it), so ``tests/test_nn_utils.py`` compares neuronix's with that composite's instead. Spectral
norm of a one-element weight is drawn again: its output ``w / |w|`` is constant, and its float32 second
derivative is rounding noise that differs between any two evaluation orders.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, HALF, ModuleMirror, register
from conformance.mirrors import nn_modules as _nm

ints = st.integers

# util name -> (torch's function, neuronix's function)
UTILS = {
    "weight_norm": (torch.nn.utils.weight_norm, nx.nn.utils.weight_norm),
    "spectral_norm": (torch.nn.utils.spectral_norm, nx.nn.utils.spectral_norm),
    "parametrizations.weight_norm": (torch.nn.utils.parametrizations.weight_norm,
                                     nx.nn.utils.parametrizations.weight_norm),
    "parametrizations.spectral_norm": (torch.nn.utils.parametrizations.spectral_norm,
                                       nx.nn.utils.parametrizations.spectral_norm),
    "parametrizations.orthogonal": (torch.nn.utils.parametrizations.orthogonal, nx.nn.utils.parametrizations.orthogonal),
}

# layer -> (constructor draw, input draw, weight dimensions): nn_modules' own strategies
LAYERS = {
    "Linear": (_nm._linear_build, _nm._linear_sample, 2),
    "Conv1d": (_nm._conv_build(1), _nm._conv_sample(1), 3),
    "Conv2d": (_nm._conv_build(2), _nm._conv_sample(2), 4),
    "ConvTranspose2d": (_nm._conv_transpose_build, _nm._conv_transpose_sample, 4),
}


def _util_kwargs(draw, util: str, ndim: int) -> dict:
    """Keywords of the util: the default, a norm over a drawn dim (None: the whole tensor), power iterations."""
    if util.endswith("orthogonal"):  # a conv weight is a batch of (in, *kernel) matrices
        return {"orthogonal_map": draw(st.sampled_from([None, "matrix_exp", "cayley", "householder"])),
                "use_trivialization": draw(st.booleans())}
    if util.endswith("weight_norm"):
        return draw(st.sampled_from([{}, {"dim": None}, {"dim": draw(ints(-ndim, ndim - 1))}]))
    kwargs = {"n_power_iterations": draw(ints(1, 3))}
    if draw(st.booleans()):
        kwargs["dim"] = draw(ints(0, ndim - 1))  # the hook-based API takes a non-negative dim only
    if draw(st.booleans()):
        kwargs["eps"] = 1e-6
    return kwargs


def _weight_numel(layer: str, args, kwargs) -> int:
    """Elements of the layer's weight: (out, in / groups, *kernel), or (in, out / groups, *kernel) transposed."""
    in_ch, out_ch = args[0], args[1]
    if layer == "Linear":
        return in_ch * out_ch
    kernel = args[2] if isinstance(args[2], tuple) else (args[2],) * (1 if layer == "Conv1d" else 2)
    return in_ch * out_ch // kwargs.get("groups", 1) * int(torch.tensor(kernel).prod())


def _build(layer: str, util: str):
    layer_build, _, ndim = LAYERS[layer]

    def build(draw):
        args, kwargs = layer_build(draw)
        while util.endswith("spectral_norm") and _weight_numel(layer, args, kwargs) == 1:
            args, kwargs = layer_build(draw)
        return args, {**kwargs, "apply": _util_kwargs(draw, util, ndim)}

    return build


def _sample(layer: str):
    layer_sample = LAYERS[layer][1]

    def sample(draw, args, kwargs, dtype, device):
        return layer_sample(draw, args, {k: v for k, v in kwargs.items() if k != "apply"}, dtype, device)

    return sample


def _maker(lib, layer: str, util: str):
    """A builder: the library's layer with the library's util applied (``apply`` holds the util's keywords)."""
    cls = getattr(lib.nn, layer)
    fn = UTILS[util][0 if lib is torch else 1]

    def make(*args, apply, **kwargs):
        return fn(cls(*args, **kwargs), **apply)

    make.__name__ = f"{util}({layer})"
    return make


def _dtypes(layer: str, util: str) -> tuple:
    """Spectral norm claims float16 and bfloat16 too (measured equal within the half tolerances). Not claimed: weight
    norm in half (torch's fused half kernel rounds its norm differently: 1.01x the float16 tolerance measured), the
    orthogonal map in half (torch's CPU has no half Householder product, orgqr), and bfloat16 Conv1d (torch 2.13's
    CPU bfloat16 conv1d backward bug, conformance/dtype_claims.py)."""
    if not util.endswith("spectral_norm"):
        return FLOATS
    return FLOATS + ((torch.float16,) if layer == "Conv1d" else HALF)


register(*(
    ModuleMirror(f"nn.{layer}[{util}]", _maker(nx, layer, util), _maker(torch, layer, util), _build(layer, util),
                 _sample(layer), gradgrad=not util.endswith("weight_norm"), dtypes=_dtypes(layer, util),
                 note=f"nn.utils.{util} applied to nn.{layer}: state_dict keys, u/v buffers, grads of the originals")
    for layer in LAYERS for util in UTILS if not (util.endswith("orthogonal") and layer.startswith("ConvTranspose"))
))
