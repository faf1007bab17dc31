"""Mirrors of the recurrent layers (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``, their base and cells) against torch's.

The module driver compares the default initialisation, then (torch's state_dict loaded) every
output of the nested result ``(output, h_n)`` / ``(output, (h_n, c_n))``, and the gradients of the
input, of the initial state(s) and of every parameter under random upstream gradients for all the
outputs at once, in train mode (dropout between layers, masks drawn from torch's RNG) and eval mode.
Drawn: 1 or 2 layers, bias or not, batch_first, bidirectional, proj_size (LSTM), an initial state
or none, a batch of 1, an unbatched 2-D input.

``[packed]`` variants run the layer on ``pack_padded_sequence(x, lengths, enforce_sorted=False)``
(lengths drawn with ties, so the sort order matters) and compare the packed output's data, the
re-padded output (``pad_packed_sequence``) and the final state in the caller's batch order.

On CUDA torch's layers run with cuDNN off (``_without_cudnn``): cuDNN draws its own dropout masks, may use
TF32 and has no second derivative; torch's native CUDA path is the composition neuronix's layers mirror.

``nn.RNNBase`` and ``nn.RNNCellBase`` define no forward (as torch's): their mirrors build the base
with a drawn ``mode`` / ``num_chunks`` and run it with the forward of the matching subclass, the
same borrowed method on both sides.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import FLOATS, ModuleMirror, Sample, register
from conformance.strategies import tensor

ints = st.integers


# ----- the layers ------------------------------------------------------------------------------------
def _layer_build(mode: str, base: bool = False):
    """Constructor args for ``nn.<mode>`` (or ``RNNBase(mode, ...)`` when ``base``)."""

    def build(draw):
        hidden = draw(ints(1, 4))
        layers = draw(ints(1, 2))
        kwargs = {"num_layers": layers, "bias": draw(st.booleans()), "batch_first": draw(st.booleans()),
                  "bidirectional": draw(st.booleans())}
        if layers > 1:
            kwargs["dropout"] = draw(st.sampled_from([0.0, 0.5]))
        if mode == "LSTM" and hidden > 1 and draw(st.booleans()):
            kwargs["proj_size"] = draw(ints(1, hidden - 1))
        if mode == "RNN":
            kwargs["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
        args = (draw(ints(1, 3)), hidden)
        if base:
            kind = mode if mode != "RNN" else {"tanh": "RNN_TANH", "relu": "RNN_RELU"}[kwargs.pop("nonlinearity")]
            args = (kind,) + args
        return args, kwargs

    return build


def _sizes(args, kwargs) -> tuple[int, int, int, int]:
    """``(input_size, hidden_size, real hidden size, layers * directions)`` of drawn constructor args."""
    if isinstance(args[0], str):
        args = args[1:]
    input_size, hidden = args
    real = kwargs.get("proj_size", 0) or hidden
    return input_size, hidden, real, kwargs["num_layers"] * (2 if kwargs["bidirectional"] else 1)


def _state(draw, lstm: bool, shape_h, shape_c, dtype, device):
    h = tensor(draw, shape_h, dtype, device)
    return (h, tensor(draw, shape_c, dtype, device)) if lstm else h


def _layer_sample(lstm: bool):
    def sample(draw, args, kwargs, dtype, device):
        input_size, hidden, real, stacked = _sizes(args, kwargs)
        steps = draw(ints(1, 4))
        batched = draw(ints(0, 4)) > 0
        batch = draw(ints(1, 3)) if batched else None
        if batched:
            x_shape = (batch, steps, input_size) if kwargs["batch_first"] else (steps, batch, input_size)
            h_shape, c_shape = (stacked, batch, real), (stacked, batch, hidden)
        else:
            x_shape, h_shape, c_shape = (steps, input_size), (stacked, real), (stacked, hidden)
        x = tensor(draw, x_shape, dtype, device)
        if draw(st.booleans()):
            return Sample((x, _state(draw, lstm, h_shape, c_shape, dtype, device)))
        return Sample((x,))

    return sample


def _mirror(name: str, nx_cls, torch_cls, build, sample, **kw) -> ModuleMirror:
    return ModuleMirror(name, nx_cls, torch_cls, build, sample, gradgrad=True, dtypes=FLOATS, **kw)


def _without_cudnn(cls):
    """A subclass of torch's ``cls`` whose forward runs with cuDNN disabled (no effect on the CPU)."""

    class NoCudnn(cls):
        def forward(self, *args, **kwargs):
            with torch.backends.cudnn.flags(enabled=False):
                return super().forward(*args, **kwargs)

    NoCudnn.__name__ = cls.__name__
    return NoCudnn


# ----- packed inputs: the layer run on pack_padded_sequence(x, lengths), outputs re-padded -----------------
def _packed_class(lib, base):
    """A subclass of ``base`` whose forward packs ``x`` with ``lengths``, runs the layer, and returns
    ``(packed data, re-padded output, final state)`` (same parameters and state_dict keys)."""
    utils = lib.nn.utils.rnn

    class Packed(base):
        def forward(self, x, lengths, hx=None):
            packed = utils.pack_padded_sequence(x, lengths, batch_first=self.batch_first, enforce_sorted=False)
            out, state = super().forward(packed, hx)
            padded, _ = utils.pad_packed_sequence(out, batch_first=self.batch_first, total_length=x.shape[1 if
                                                  self.batch_first else 0])
            return out.data, padded, state

    Packed.__name__ = base.__name__
    return Packed


def _packed_sample(lstm: bool):
    def sample(draw, args, kwargs, dtype, device):
        input_size, hidden, real, stacked = _sizes(args, kwargs)
        steps, batch = draw(ints(1, 4)), draw(ints(1, 4))
        lengths = draw(st.lists(ints(1, steps), min_size=batch, max_size=batch))  # ties included
        x_shape = (batch, steps, input_size) if kwargs["batch_first"] else (steps, batch, input_size)
        x = tensor(draw, x_shape, dtype, device)
        if draw(st.booleans()):
            return Sample((x, lengths, _state(draw, lstm, (stacked, batch, real), (stacked, batch, hidden), dtype, device)))
        return Sample((x, lengths))

    return sample


for _name in ("RNN", "LSTM", "GRU"):
    _lstm = _name == "LSTM"
    register(
        _mirror(f"nn.{_name}", getattr(nx.nn, _name), _without_cudnn(getattr(torch.nn, _name)), _layer_build(_name),
                _layer_sample(_lstm)),
        _mirror(f"nn.{_name}[packed]", _packed_class(nx, getattr(nx.nn, _name)),
                _packed_class(torch, _without_cudnn(getattr(torch.nn, _name))), _layer_build(_name), _packed_sample(_lstm)),
    )


# ----- nn.RNNBase: built with a mode, run with that mode's forward ------------------------------------------
_TORCH_FORWARD = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN}
_BORROWED = ("forward", "check_forward_args", "permute_hidden", "get_expected_cell_size")
_TORCH_BASES = {mode: _without_cudnn(type("RNNBase", (torch.nn.RNNBase,), {k: getattr(cls, k) for k in _BORROWED
                                                                            if k in vars(cls)}))
                for mode, cls in _TORCH_FORWARD.items()}


class _NxBaseRun(nx.nn.RNNBase):
    forward = nx.nn.LSTM.forward  # the same shared forward as RNN's and GRU's (it reads self.mode)


def _torch_base(mode, *args, **kwargs):
    return _TORCH_BASES[mode](mode, *args, **kwargs)


def _base_mode_build(draw):
    return _layer_build(draw(st.sampled_from(["LSTM", "GRU", "RNN"])), base=True)(draw)


def _base_sample(draw, args, kwargs, dtype, device):
    return _layer_sample(args[0] == "LSTM")(draw, args, kwargs, dtype, device)


register(_mirror("nn.RNNBase", _NxBaseRun, _torch_base, _base_mode_build, _base_sample))


# ----- cells ------------------------------------------------------------------------------------------
def _cell_build(with_nonlinearity: bool):
    def build(draw):
        kwargs = {"bias": draw(st.booleans())}
        if with_nonlinearity:
            kwargs["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
        return (draw(ints(1, 3)), draw(ints(1, 4))), kwargs

    return build


def _cell_sample(states: int):
    def sample(draw, args, kwargs, dtype, device):
        input_size, hidden = args[:2]
        batch = draw(ints(0, 3))  # 0: an unbatched 1-D input
        lead = (batch,) if batch else ()
        x = tensor(draw, lead + (input_size,), dtype, device)
        if draw(st.booleans()):
            return Sample((x,))
        hs = [tensor(draw, lead + (hidden,), dtype, device) for _ in range(states)]
        return Sample((x, tuple(hs) if states == 2 else hs[0]))

    return sample


register(
    _mirror("nn.RNNCell", nx.nn.RNNCell, torch.nn.RNNCell, _cell_build(True), _cell_sample(1)),
    _mirror("nn.LSTMCell", nx.nn.LSTMCell, torch.nn.LSTMCell, _cell_build(False), _cell_sample(2)),
    _mirror("nn.GRUCell", nx.nn.GRUCell, torch.nn.GRUCell, _cell_build(False), _cell_sample(1)),
)

# nn.RNNCellBase(input_size, hidden_size, bias, num_chunks): 1 chunk runs as RNNCell (tanh), 3 as GRUCell, 4 as LSTMCell
_CELLS = {1: "RNNCell", 3: "GRUCell", 4: "LSTMCell"}


def _cell_base(lib):
    class CellBaseRun(lib.nn.RNNCellBase):
        nonlinearity = "tanh"

        def forward(self, input, hx=None):
            cell = getattr(lib.nn, _CELLS[self.weight_ih.shape[0] // self.hidden_size])
            return cell.forward(self, input, hx)

    CellBaseRun.__name__ = "RNNCellBase"
    return CellBaseRun


def _cell_base_build(draw):
    return (draw(ints(1, 3)), draw(ints(1, 4)), draw(st.booleans()), draw(st.sampled_from(sorted(_CELLS)))), {}


def _cell_base_sample(draw, args, kwargs, dtype, device):
    return _cell_sample(2 if args[3] == 4 else 1)(draw, args, kwargs, dtype, device)


register(_mirror("nn.RNNCellBase", _cell_base(nx), _cell_base(torch), _cell_base_build, _cell_base_sample))
