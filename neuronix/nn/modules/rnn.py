"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` (on ``RNNBase``) and the cells ``RNNCell``, ``LSTMCell``, ``GRUCell``.

Parameter names, shapes, registration order and the default initialisation (every parameter
~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), drawn in registration order) are torch's, so a
torch state_dict loads strictly and the same seed gives the same weights.

The layers are compositions of neuronix ops, recorded by the engine like any other code. For
speed, each layer and direction computes its input projection ``x @ W_ih^T + b_ih`` for all
time steps in one matmul; the time loop then does one matmul ``h @ W_hh^T + b_hh`` and the gate
arithmetic per step, in torch's order of operations (``(h W_hh^T + b_hh) + (x W_ih^T + b_ih)``).

Padded and packed inputs run through the same loop: a padded ``(T, B, *)`` input is the packed
sequence whose every step holds ``B`` rows. Dropout between layers (training only) calls
``F.dropout`` on the whole layer output, as torch's kernels do, so under the same seed the masks
are torch's (the mask is drawn over the ``(T, B, D * H)`` output, or the packed rows).
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch

from neuronix.nn import functional as F
from neuronix.nn import init
from neuronix.nn.module import Module
from neuronix.nn.parameter import Parameter
from neuronix.nn.utils.rnn import PackedSequence, is_packed, packed_fields
from neuronix.ops.movement import cat, stack
from neuronix.tensor import Tensor

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNBase", "RNNCell", "RNNCellBase"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


# ----- one time step of each kind (torch's cell arithmetic, in its order) --------------------------
def _lstm_step(projected, state, w_hh, b_hh, w_hr):
    h, c = state
    size = c.shape[1]
    gates = F.linear(h, w_hh, b_hh) + projected
    # one sigmoid over all four gates (the cell gate's share goes unused, so its slice gets no gradient):
    # fewer recorded ops per step than a sigmoid per gate, the same values element by element
    sig = gates.sigmoid()
    i, f, o = sig.narrow(1, 0, size), sig.narrow(1, size, size), sig.narrow(1, 3 * size, size)
    c = f * c + i * gates.narrow(1, 2 * size, size).tanh()
    h = o * c.tanh()
    if w_hr is not None:  # proj_size: the hidden state is projected, the cell state is not
        h = F.linear(h, w_hr, None)
    return h, (h, c)


def _gru_step(projected, h, w_hh, b_hh, w_hr):
    size = h.shape[1]
    hidden_gates = F.linear(h, w_hh, b_hh)
    # the reset and update gates in one add and one sigmoid (the same values as one per gate, fewer ops)
    reset, update = (hidden_gates.narrow(1, 0, 2 * size) + projected.narrow(1, 0, 2 * size)).sigmoid().chunk(2, 1)
    new = (projected.narrow(1, 2 * size, size) + hidden_gates.narrow(1, 2 * size, size) * reset).tanh()
    h = (h - new) * update + new
    return h, h


def _tanh_step(projected, h, w_hh, b_hh, w_hr):
    h = (F.linear(h, w_hh, b_hh) + projected).tanh()
    return h, h


def _relu_step(projected, h, w_hh, b_hh, w_hr):
    h = (F.linear(h, w_hh, b_hh) + projected).relu()
    return h, h


_STEPS = {"LSTM": _lstm_step, "GRU": _gru_step, "RNN_TANH": _tanh_step, "RNN_RELU": _relu_step}


# ----- the time loop of one layer and direction --------------------------------------------------
def _rows(state, start: int, stop: int):
    """Rows ``start:stop`` of a hidden state (a tensor, or LSTM's ``(h, c)``)."""
    if isinstance(state, tuple):
        return tuple(s[start:stop] for s in state)
    return state[start:stop]


def _joined(parts):
    """Concatenate hidden-state pieces along the batch (tensors, or LSTM's ``(h, c)`` pairs)."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], tuple):
        return tuple(cat([p[k] for p in parts], 0) for k in range(len(parts[0])))
    return cat(parts, 0)


def _split_steps(rows, batch_sizes: list[int]) -> list:
    """``rows`` cut into the time steps' pieces, by halving recursively.

    A piece's gradient is zero-padded to the size of what it was cut from, so cutting all ``T``
    steps from the whole sequence would cost ``T`` full-size gradients in the backward; halving
    costs ``log2(T)`` (each level's pieces add up to one full size).
    """
    if len(batch_sizes) == 1:
        return [rows]
    half = len(batch_sizes) // 2
    first = sum(batch_sizes[:half])
    head, tail = rows.split([first, rows.shape[0] - first], 0)
    return _split_steps(head, batch_sizes[:half]) + _split_steps(tail, batch_sizes[half:])


def _run_direction(step, projected, batch_sizes: list[int], state0, weights, reverse: bool):
    """Run ``step`` over the packed rows ``projected`` (step ``t`` is the next ``batch_sizes[t]`` rows).

    Returns the outputs (packed rows, in time order) and the final state of every sequence (batch
    order). Sequences end at different steps in a packed batch: forwards, the state of the
    sequences that just ended is set aside; backwards, a sequence joins (from ``state0``) at its
    last step.
    """
    per_step = _split_steps(projected, batch_sizes)
    outputs = [None] * len(batch_sizes)
    if not reverse:
        state, finished = state0, []
        for t, rows in enumerate(batch_sizes):
            if t and rows < batch_sizes[t - 1]:
                finished.append(_rows(state, rows, batch_sizes[t - 1]))
                state = _rows(state, 0, rows)
            outputs[t], state = step(per_step[t], state, *weights)
        return outputs, _joined([state] + finished[::-1])
    state = _rows(state0, 0, batch_sizes[-1])
    for t in range(len(batch_sizes) - 1, -1, -1):
        rows = batch_sizes[t]
        if t < len(batch_sizes) - 1 and rows > batch_sizes[t + 1]:
            state = _joined([state, _rows(state0, batch_sizes[t + 1], rows)])
        outputs[t], state = step(per_step[t], state, *weights)
    return outputs, state


class RNNBase(Module):
    """Base class of ``RNN``, ``LSTM`` and ``GRU`` (as ``torch.nn.RNNBase``): parameters, their names and init.

    ``mode`` is ``"LSTM"``, ``"GRU"``, ``"RNN_TANH"`` or ``"RNN_RELU"``. Like torch's, it defines no
    ``forward``: the subclasses do.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        _check_arguments(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        directions = 2 if bidirectional else 1
        factory = {"device": device, "dtype": dtype}
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            for direction in range(directions):
                suffix = f"_l{layer}{'_reverse' if direction else ''}"
                layer_input = input_size if layer == 0 else real_hidden * directions
                shapes = {"weight_ih": (gate_size, layer_input), "weight_hh": (gate_size, real_hidden)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size > 0:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = [name + suffix for name in shapes]
                for name, shape in zip(names, shapes.values()):
                    setattr(self, name, Parameter(torch.empty(shape, **factory)))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), in registration order (torch's)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    @property
    def _flat_weights(self) -> list:
        """The parameters in torch's flat order (read live, so a reassigned or loaded weight is seen)."""
        return [getattr(self, name, None) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """Per layer and direction, its parameters: ``[[w_ih, w_hh, b_ih, b_hh(, w_hr)], ...]``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op, as torch's off cuDNN: neuronix keeps each weight as its own tensor."""

    # ----- forward, shared by the subclasses -----------------------------------------------------
    def _real_hidden(self) -> int:
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def _zeros_state(self, batch: int, like):
        shape = (self.num_layers * (2 if self.bidirectional else 1), batch)
        kind = {"dtype": like.dtype, "device": like.device}
        h = Tensor(torch.zeros(shape + (self._real_hidden(),), **kind))
        return (h, Tensor(torch.zeros(shape + (self.hidden_size,), **kind))) if self.mode == "LSTM" else h

    def _forward(self, input, hx):
        """The shared forward of RNN, LSTM and GRU: ``(output, h_n)`` or ``(output, (h_n, c_n))``."""
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        if is_packed(input):
            data, batch_sizes, sorted_indices, unsorted_indices = packed_fields(input)
            self._check_input(data, packed=True)
            if hx is None:
                hx = self._zeros_state(batch_sizes[0], data)
            else:
                hx = self._check_state(hx, data.ndim, batch_sizes[0], packed=True)
                hx = _permute(hx, sorted_indices)
            output, hidden = self._layers(data, batch_sizes, hx)
            return PackedSequence(output, input.batch_sizes, sorted_indices, unsorted_indices), _permute(hidden,
                                                                                                          unsorted_indices)
        if not isinstance(input, (Tensor, torch.Tensor)):
            raise TypeError(f"{name}: input must be a Tensor or a PackedSequence, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead "
                             f"(shape {tuple(input.shape)})")
        batched = input.ndim == 3
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
        if hx is not None:
            hx = self._check_state(hx, 3 if batched else 2, input.shape[batch_dim], packed=False)
        self._check_input(input, packed=False)
        if hx is None:
            hx = self._zeros_state(input.shape[batch_dim], input)
        if self.batch_first:
            input = input.transpose(0, 1)
        steps, batch = input.shape[0], input.shape[1]
        if steps == 0:
            raise RuntimeError(f"{name}: Expected sequence length to be larger than 0 in RNN, got an input of shape "
                               f"{tuple(input.shape)} (batch_first={self.batch_first})")
        rows, hidden = self._layers(input.reshape(steps * batch, input.shape[2]), [batch] * steps, hx)
        output = rows.reshape(steps, batch, rows.shape[-1])
        if self.batch_first:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(batch_dim)
            hidden = tuple(h.squeeze(1) for h in hidden) if lstm else hidden.squeeze(1)
        return output, hidden

    def _layers(self, rows, batch_sizes: list[int], hx):
        """All layers and directions over packed ``rows``: ``(output rows, final states stacked)``."""
        step = _STEPS[self.mode]
        directions = 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(directions):
                index = layer * directions + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(index)
                state0 = tuple(s[index] for s in hx) if isinstance(hx, tuple) else hx[index]
                projected = F.linear(rows, w_ih, b_ih)  # every time step's input projection in one matmul
                steps_out, final = _run_direction(step, projected, batch_sizes, state0, (w_hh, b_hh, w_hr),
                                                  reverse=direction == 1)
                outs.append(cat(steps_out, 0) if len(steps_out) > 1 else steps_out[0])
                finals.append(final)
            rows = cat(outs, 1) if directions == 2 else outs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                rows = F.dropout(rows, self.dropout, training=True)
        if isinstance(finals[0], tuple):
            return rows, (stack([f[0] for f in finals], 0), stack([f[1] for f in finals], 0))
        return rows, stack(finals, 0)

    def _weights(self, index: int) -> tuple:
        names = dict.fromkeys(("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"))
        for name in self._all_weights[index]:
            names[name.rsplit("_l", 1)[0]] = getattr(self, name)
        return tuple(names.values())

    def _check_input(self, input, packed: bool) -> None:
        name = type(self).__name__
        weight = self._flat_weights[0]
        if input.dtype != weight.dtype:
            raise ValueError(f"{name}: input dtype ({input.dtype}) does not match weight dtype ({weight.dtype}). "
                             f"Convert input: input.to({weight.dtype}), or convert model: model.to({input.dtype})")
        expected = 2 if packed else 3
        if input.ndim != expected:
            raise RuntimeError(f"{name}: input must have {expected} dimensions, got {input.ndim}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.shape[-1]}")

    def _check_state(self, hx, ndim: int, batch: int, packed: bool):
        """Check the initial state's dims and sizes; return it batched (unbatched input: a batch dim added)."""
        name = type(self).__name__
        lstm = self.mode == "LSTM"
        parts = _state_parts(hx, lstm, name)
        if not packed:
            if any(p.ndim != ndim for p in parts):
                what = "hx and cx" if lstm else "hx"
                dims = ", ".join(f"{p.ndim}-D" for p in parts)
                kind = "batched 3-D" if ndim == 3 else "unbatched 2-D"
                raise RuntimeError(f"{name}: For {kind} input, {what} should also be {ndim}-D but got ({dims}) tensor(s)")
            if ndim == 2:
                parts = [p.unsqueeze(1) for p in parts]
        layers = self.num_layers * (2 if self.bidirectional else 1)
        sizes = [(layers, batch, self._real_hidden())] + ([(layers, batch, self.hidden_size)] if lstm else [])
        for k, (p, size) in enumerate(zip(parts, sizes)):
            if tuple(p.shape) != size:
                which = f"hidden[{k}]" if lstm else "hidden"
                raise RuntimeError(f"{name}: Expected {which} size {size}, got {list(p.shape)}")
            if p.dtype != self._flat_weights[0].dtype:
                raise RuntimeError(f"{name}: {which if lstm else 'hx'} dtype {p.dtype} does not match the weights' "
                                   f"dtype {self._flat_weights[0].dtype}")
        return tuple(parts) if lstm else parts[0]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


def _check_arguments(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, proj_size) -> None:
    """torch's constructor checks, in its order."""
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the probability of an element being "
                         f"zeroed, got {dropout!r}")
    if dropout > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                      f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}", stacklevel=3)
    for what, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{what} should be of type bool, got: {type(value).__name__}")
    for what, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int):
            raise TypeError(f"{what} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{what} must be greater than zero, got {value}")
    if num_layers <= 0:
        raise ValueError(f"num_layers must be greater than zero, got {num_layers}")
    if proj_size < 0:
        raise ValueError(f"proj_size should be a positive integer or zero to disable projections, got {proj_size}")
    if proj_size >= hidden_size:
        raise ValueError(f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} and "
                         f"hidden_size={hidden_size}")
    if mode not in _GATES:
        raise ValueError(f"Unrecognized RNN mode: {mode} (valid: {', '.join(_GATES)})")


def _state_parts(hx, lstm: bool, name: str) -> list:
    if lstm:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{name}: hx must be a tuple (h_0, c_0) of two tensors, got {type(hx).__name__}")
        return [_as_tensor(h) for h in hx]
    if isinstance(hx, (tuple, list)):
        raise TypeError(f"{name}: hx must be a tensor h_0, got a {type(hx).__name__}")
    return [_as_tensor(hx)]


def _as_tensor(t):
    return Tensor(t) if isinstance(t, torch.Tensor) else t


def _permute(state, permutation):
    """A state's batch dim (dim 1) reordered by ``permutation`` (a packed batch's sort order)."""
    if permutation is None:
        return state
    if isinstance(state, tuple):
        return tuple(s.index_select(1, permutation) for s in state)
    return state.index_select(1, permutation)


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (``nonlinearity="relu"``: relu)."""

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:  # torch's positional order: (input_size, hidden_size, num_layers, nonlinearity, bias, ...)
            nonlinearity, args = args[3], args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", *args, **kwargs)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        """``(output, h_n)``; ``input`` is ``(L, N, H_in)`` (``(N, L, H_in)`` batch_first), ``(L, H_in)`` or packed."""
        return self._forward(input, hx)


class LSTM(RNNBase):
    """Long short-term memory, gates in torch's order (input, forget, cell, output); ``proj_size`` projects h."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("LSTM", *args, **kwargs)

    def forward(self, input, hx=None):
        """``(output, (h_n, c_n))``; ``hx`` is ``(h_0, c_0)`` or None (zeros)."""
        return self._forward(input, hx)


class GRU(RNNBase):
    """Gated recurrent unit, gates in torch's order (reset, update, new)."""

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)

    def forward(self, input, hx=None):
        """``(output, h_n)``; ``hx`` is ``h_0`` or None (zeros)."""
        return self._forward(input, hx)


# ----- cells ---------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Base class of the cells: ``weight_ih (chunks*hidden, input)``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None, dtype=None) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = Parameter(torch.empty((num_chunks * hidden_size, input_size), **factory))
        self.weight_hh = Parameter(torch.empty((num_chunks * hidden_size, hidden_size), **factory))
        if bias:
            self.bias_ih = Parameter(torch.empty(num_chunks * hidden_size, **factory))
            self.bias_hh = Parameter(torch.empty(num_chunks * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), in registration order (torch's)."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _step(self, input, hx, states: int, step_of):
        """Check the input and state(s), run ``step_of()`` (the step function) batched; the result unbatched
        again for a 1-D input."""
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead (shape {tuple(input.shape)})")
        parts = None
        if hx is not None:
            parts = [_as_tensor(h) for h in (hx if states == 2 else (hx,))]
            for k, p in enumerate(parts):
                if p.ndim not in (1, 2):
                    which = f"hx[{k}]" if states == 2 else "hidden"
                    raise ValueError(f"{name}: Expected {which} to be 1D or 2D, got {p.ndim}D instead")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
        if parts is None:
            zeros = Tensor(torch.zeros(input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device))
            parts = [zeros] * states
        elif not batched:
            parts = [p.unsqueeze(0) for p in parts]
        self._check_cell(input, parts)
        projected = F.linear(input, self.weight_ih, self.bias_ih)
        _, state = step_of()(projected, tuple(parts) if states == 2 else parts[0], self.weight_hh, self.bias_hh, None)
        if not batched:
            state = tuple(s.squeeze(0) for s in state) if states == 2 else state.squeeze(0)
        return state

    def _check_cell(self, input, parts) -> None:
        """torch's cell checks: feature sizes, matching batch sizes, one dtype."""
        name = type(self).__name__
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"{name}: input has inconsistent input_size: got {input.shape[1]}, expected {self.input_size}")
        for k, p in enumerate(parts):
            which = f"hx[{k}]" if len(parts) == 2 else "hidden"
            if p.ndim != 2 or p.shape[0] != input.shape[0]:
                raise RuntimeError(f"{name}: Input batch size {input.shape[0]} doesn't match {which} batch size "
                                   f"{p.shape[0] if p.ndim else None} (input {tuple(input.shape)}, {which} {tuple(p.shape)})")
            if p.shape[1] != self.hidden_size:
                raise RuntimeError(f"{name}: {which} has inconsistent hidden_size: got {p.shape[1]}, "
                                   f"expected {self.hidden_size}")
        dtypes = {input.dtype, self.weight_ih.dtype} | {p.dtype for p in parts}
        if len(dtypes) > 1:
            raise RuntimeError(f"{name}: expected the input, the state(s) and the weights to have one dtype, got "
                               f"{sorted(str(d) for d in dtypes)}")


def _cell_activation(cell):
    if cell.nonlinearity == "tanh":
        return _tanh_step
    if cell.nonlinearity == "relu":
        return _relu_step
    raise RuntimeError(f"{type(cell).__name__}: Unknown nonlinearity: {cell.nonlinearity}")


class RNNCell(RNNCellBase):
    """One Elman RNN step: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", device=None,
                 dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        """``h'`` of shape ``(N, hidden_size)`` (or ``(hidden_size,)`` for a 1-D input); ``hx`` None is zeros."""
        return self._step(input, hx, 1, lambda: _cell_activation(self))


class LSTMCell(RNNCellBase):
    """One LSTM step: ``(h', c')`` from ``x`` and ``(h, c)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        """``(h', c')``; ``hx`` is ``(h, c)`` or None (zeros)."""
        return self._step(input, hx, 2, lambda: _lstm_step)


class GRUCell(RNNCellBase):
    """One GRU step: ``h'`` from ``x`` and ``h``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        """``h'``; ``hx`` None is zeros."""
        return self._step(input, hx, 1, lambda: _gru_step)
