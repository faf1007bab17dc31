"""The recurrent family and ``nn.utils.rnn`` against torch: names, init, values, gradients, packing, errors."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch
import torch.nn.utils.rnn as trnn

import neuronix as nx
from neuronix.nn.utils import rnn as nrnn


def _raw(x):
    return x.data if isinstance(x, nx.Tensor) else x


def _flat(value) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _flat(v)]
    return [value]


def _pair(name: str, *args, dtype=torch.float64, **kwargs):
    """torch's and neuronix's ``name`` built after the same seed (so with the same default init)."""
    torch.manual_seed(0)
    t = getattr(torch.nn, name)(*args, **kwargs).to(dtype)
    torch.manual_seed(0)
    n = getattr(nx.nn, name)(*args, **kwargs).to(dtype=dtype)
    return t, n


def _leaf(t: torch.Tensor):
    return t.detach().clone().requires_grad_(), nx.Tensor(t.detach().clone(), requires_grad=True)


def _close(actual, expected, dtype=torch.float64):
    tol = {"rtol": 1e-7, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(_raw(actual), expected, **tol)


def _check_run(t_mod, n_mod, t_inputs, n_inputs, dtype=torch.float64):
    """Forward both on the same inputs; compare every output and, under random upstream gradients for all
    outputs at once, the gradients of every leaf input and every parameter."""
    t_out = [o for o in _flat(t_mod(*t_inputs)) if o.is_floating_point()]
    n_out = [o for o in _flat(n_mod(*n_inputs)) if o.dtype.is_floating_point]
    assert len(t_out) == len(n_out)
    for a, b in zip(n_out, t_out):
        _close(a, b, dtype)
    gen = torch.Generator().manual_seed(1)
    ups = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.dtype) for o in t_out]
    t_wrt = [x for x in _flat(t_inputs) if isinstance(x, torch.Tensor) and x.requires_grad] + list(t_mod.parameters())
    n_wrt = [x for x in _flat(n_inputs) if isinstance(x, nx.Tensor) and x.requires_grad] + list(n_mod.parameters())
    t_grads = torch.autograd.grad(t_out, t_wrt, ups)
    n_grads = nx.autograd.grad(n_out, n_wrt, [nx.Tensor(u) for u in ups])
    for a, b in zip(n_grads, t_grads):
        _close(a, b, dtype)


# ----- construction: names, shapes, init, state_dict ---------------------------------------------------
LAYER_CONFIGS = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu", "num_layers": 2}), ("GRU", {"bidirectional": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True}), ("LSTM", {"proj_size": 2, "num_layers": 2, "bidirectional": True}),
    ("LSTM", {"bias": False, "proj_size": 1}), ("GRU", {"bias": False, "num_layers": 3}),
]


@pytest.mark.parametrize("name,kwargs", LAYER_CONFIGS)
def test_parameters_names_and_default_init_are_torchs(name, kwargs):
    t, n = _pair(name, 3, 4, **kwargs)
    t_state, n_state = t.state_dict(), n.state_dict()
    assert list(n_state) == list(t_state)
    for key, value in t_state.items():
        assert torch.equal(_raw(n_state[key]), value), key
    assert n._flat_weights_names == t._flat_weights_names
    assert [len(ps) for ps in n.all_weights] == [len(ps) for ps in t.all_weights]
    assert all(torch.equal(_raw(a), b) for ps, qs in zip(n.all_weights, t.all_weights) for a, b in zip(ps, qs))
    assert [p is q for p, q in zip(n._flat_weights, n.parameters())] == [True] * len(t._flat_weights)
    assert repr(n) == repr(t)
    n.flatten_parameters()  # a no-op, as torch's off cuDNN


@pytest.mark.parametrize("name,kwargs", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu", "bias": False}),
                                         ("LSTMCell", {}), ("GRUCell", {"bias": False})])
def test_cells_names_and_init_are_torchs(name, kwargs):
    t, n = _pair(name, 3, 5, **kwargs)
    assert list(n.state_dict()) == list(t.state_dict())
    for key, value in t.state_dict().items():
        assert torch.equal(_raw(n.state_dict()[key]), value)
    assert repr(n) == repr(t)


def test_torch_state_dict_loads_strictly_and_a_reassigned_weight_is_used():
    torch.manual_seed(3)
    t = torch.nn.LSTM(3, 4, 2, proj_size=2, bidirectional=True).double()
    n = nx.nn.LSTM(3, 4, 2, proj_size=2, bidirectional=True).double()
    missing, unexpected = n.load_state_dict(t.state_dict(), strict=True)
    assert not missing and not unexpected
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    _check_run(t, n, (x,), (nx.Tensor(x),))
    with torch.no_grad():
        t.weight_hh_l1_reverse.mul_(0.5)
    n.weight_hh_l1_reverse = nx.nn.Parameter(t.weight_hh_l1_reverse.detach().clone())
    assert n._flat_weights[n._flat_weights_names.index("weight_hh_l1_reverse")] is n.weight_hh_l1_reverse
    _check_run(t, n, (x,), (nx.Tensor(x),))


# ----- values and gradients -------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs", LAYER_CONFIGS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_state", [False, True])
def test_layers_match_torch(name, kwargs, batch_first, with_state):
    t, n = _pair(name, 3, 4, batch_first=batch_first, **kwargs)
    x_t, x_n = _leaf(torch.randn((2, 5, 3) if batch_first else (5, 2, 3), dtype=torch.float64))
    t_in, n_in = [x_t], [x_n]
    if with_state:
        stacked = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
        shapes = [(stacked, 2, kwargs.get("proj_size") or 4)] + ([(stacked, 2, 4)] if name == "LSTM" else [])
        pairs = [_leaf(torch.randn(s, dtype=torch.float64)) for s in shapes]
        t_in.append(tuple(p[0] for p in pairs) if name == "LSTM" else pairs[0][0])
        n_in.append(tuple(p[1] for p in pairs) if name == "LSTM" else pairs[0][1])
    _check_run(t, n, t_in, n_in)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_float32_within_float32_tolerance(name):
    t, n = _pair(name, 6, 8, num_layers=2, bidirectional=True, dtype=torch.float32)
    x_t, x_n = _leaf(torch.randn(7, 3, 6))
    _check_run(t, n, (x_t,), (x_n,), dtype=torch.float32)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_unbatched_input_and_state(name):
    t, n = _pair(name, 3, 4, num_layers=2)
    x_t, x_n = _leaf(torch.randn(5, 3, dtype=torch.float64))
    shapes = [(2, 4)] * (2 if name == "LSTM" else 1)
    pairs = [_leaf(torch.randn(s, dtype=torch.float64)) for s in shapes]
    h_t = tuple(p[0] for p in pairs) if name == "LSTM" else pairs[0][0]
    h_n = tuple(p[1] for p in pairs) if name == "LSTM" else pairs[0][1]
    out, state = n(x_n, h_n)
    assert out.shape == (5, 4) and _flat(state)[0].shape == (2, 4)
    _check_run(t, n, (x_t, h_t), (x_n, h_n))


def test_batch_of_one_and_empty_batch():
    t, n = _pair("GRU", 2, 3, num_layers=2, bidirectional=True)
    x_t, x_n = _leaf(torch.randn(4, 1, 2, dtype=torch.float64))
    _check_run(t, n, (x_t,), (x_n,))
    empty_t, empty_n = _leaf(torch.randn(4, 0, 2, dtype=torch.float64))
    t_out, t_h = t(empty_t)
    n_out, n_h = n(empty_n)
    assert n_out.shape == t_out.shape and n_h.shape == t_h.shape


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_second_derivatives_match_torch(name):
    t, n = _pair(name, 2, 3, num_layers=2, bidirectional=True)
    x_t, x_n = _leaf(torch.randn(3, 2, 2, dtype=torch.float64))
    t_out, n_out = t(x_t)[0], n(x_n)[0]
    up = torch.randn(t_out.shape, dtype=torch.float64)
    (g_t,) = torch.autograd.grad(t_out, x_t, up, create_graph=True)
    (g_n,) = nx.autograd.grad(n_out, x_n, nx.Tensor(up), create_graph=True)
    v = torch.randn(g_t.shape, dtype=torch.float64)
    t_second = torch.autograd.grad(g_t, [x_t, t.weight_hh_l0], v)
    n_second = nx.autograd.grad(g_n, [x_n, n.weight_hh_l0], nx.Tensor(v))
    for a, b in zip(n_second, t_second):
        _close(a, b)


def test_backward_twice_through_a_retained_graph_accumulates_like_torch():
    t, n = _pair("LSTM", 3, 4)
    x_t, x_n = _leaf(torch.randn(4, 2, 3, dtype=torch.float64))
    t_loss, n_loss = t(x_t)[0].sum(), n(x_n)[0].sum()
    for _ in range(2):
        t_loss.backward(retain_graph=True)
        n_loss.backward(retain_graph=True)
    _close(x_n.grad, x_t.grad)
    _close(n.weight_ih_l0.grad, t.weight_ih_l0.grad)


def test_nan_and_inf_propagate_as_torchs():
    t, n = _pair("LSTM", 2, 3)
    x = torch.randn(3, 2, 2, dtype=torch.float64)
    x[1, 0, 0] = float("inf")
    x[2, 1, 1] = float("-inf")
    x_t, x_n = _leaf(x)
    t_out, n_out = t(x_t)[0], n(x_n)[0]
    torch.testing.assert_close(_raw(n_out), t_out, equal_nan=True)
    up = torch.randn(t_out.shape, dtype=torch.float64)
    up[0, 1, 2] = float("nan")
    (g_t,) = torch.autograd.grad(t_out, x_t, up)
    (g_n,) = nx.autograd.grad(n_out, x_n, nx.Tensor(up))
    torch.testing.assert_close(_raw(g_n), g_t, equal_nan=True)


def test_works_under_no_grad_and_in_eval_mode():
    t, n = _pair("LSTM", 3, 4, num_layers=2, dropout=0.5)
    t.eval()
    n.eval()
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with nx.no_grad():
        out, _ = n(nx.Tensor(x))
    assert not out.requires_grad
    _close(out, t(x)[0].detach())


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_dropout_between_layers_draws_torchs_masks(name):
    t, n = _pair(name, 3, 4, num_layers=3, dropout=0.5, bidirectional=True)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.manual_seed(11)
    expected = t(x)[0]
    torch.manual_seed(11)
    actual = n(nx.Tensor(x))[0]
    _close(actual, expected.detach())
    torch.manual_seed(12)
    assert not torch.allclose(_raw(n(nx.Tensor(x))[0]), expected)  # a new seed, new masks: dropout is on


# ----- cells ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs,states", [("RNNCell", {}, 1), ("RNNCell", {"nonlinearity": "relu"}, 1),
                                                ("LSTMCell", {}, 2), ("GRUCell", {"bias": False}, 1)])
@pytest.mark.parametrize("batch", [None, 1, 3])
@pytest.mark.parametrize("with_state", [False, True])
def test_cells_match_torch(name, kwargs, states, batch, with_state):
    t, n = _pair(name, 3, 4, **kwargs)
    lead = () if batch is None else (batch,)
    x_t, x_n = _leaf(torch.randn(lead + (3,), dtype=torch.float64))
    t_in, n_in = [x_t], [x_n]
    if with_state:
        pairs = [_leaf(torch.randn(lead + (4,), dtype=torch.float64)) for _ in range(states)]
        t_in.append(tuple(p[0] for p in pairs) if states == 2 else pairs[0][0])
        n_in.append(tuple(p[1] for p in pairs) if states == 2 else pairs[0][1])
    _check_run(t, n, t_in, n_in)


def test_lstm_equals_its_cell_unrolled():
    torch.manual_seed(0)
    layer = nx.nn.LSTM(3, 4).double()
    cell = nx.nn.LSTMCell(3, 4).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = nx.Tensor(torch.randn(5, 2, 3, dtype=torch.float64))
    out, (h_n, c_n) = layer(x)
    state = None
    for t in range(5):
        state = cell(x[t], state)
        _close(out[t], _raw(state[0]))
    _close(h_n[0], _raw(state[0]))
    _close(c_n[0], _raw(state[1]))


# ----- packed sequences -------------------------------------------------------------------------------------
SEQS = [(2, 5, 3, 5, 1), (4,), (3, 3, 3)]


def _sequences(lengths, trailing=(3,)):
    gen = torch.Generator().manual_seed(len(lengths))
    return [torch.randn((n,) + trailing, generator=gen, dtype=torch.float64) for n in lengths]


def _same_packed(actual, expected):
    for a, e in zip(actual, expected):
        if e is None:
            assert a is None
        else:
            assert isinstance(a, nx.Tensor)
            assert torch.equal(_raw(a), e)


@pytest.mark.parametrize("lengths", SEQS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(lengths, batch_first, padding_side):
    seqs = _sequences(lengths, (2, 3))
    expected = trnn.pad_sequence(seqs, batch_first=batch_first, padding_value=-2.5, padding_side=padding_side)
    actual = nrnn.pad_sequence([nx.Tensor(s) for s in seqs], batch_first=batch_first, padding_value=-2.5,
                               padding_side=padding_side)
    assert torch.equal(_raw(actual), expected)


@pytest.mark.parametrize("lengths", SEQS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_pack_and_pad_round_trip_match_torch(lengths, batch_first, enforce_sorted):
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    padded = trnn.pad_sequence(_sequences(lengths), batch_first=batch_first)
    as_tensor = torch.tensor(lengths)
    expected = trnn.pack_padded_sequence(padded, as_tensor, batch_first=batch_first, enforce_sorted=enforce_sorted)
    actual = nrnn.pack_padded_sequence(nx.Tensor(padded), as_tensor, batch_first=batch_first,
                                       enforce_sorted=enforce_sorted)
    assert isinstance(actual, nrnn.PackedSequence) and isinstance(actual, tuple)
    _same_packed(actual, expected)
    for total in (None, max(lengths) + 2):
        t_pad, t_len = trnn.pad_packed_sequence(expected, batch_first, padding_value=7.0, total_length=total)
        n_pad, n_len = nrnn.pad_packed_sequence(actual, batch_first, padding_value=7.0, total_length=total)
        assert torch.equal(_raw(n_pad), t_pad) and torch.equal(_raw(n_len), t_len)


def test_pack_sequence_unpack_and_unpad_match_torch():
    seqs = _sequences((2, 5, 3, 5))
    expected = trnn.pack_sequence(seqs, enforce_sorted=False)
    actual = nrnn.pack_sequence([nx.Tensor(s) for s in seqs], enforce_sorted=False)
    _same_packed(actual, expected)
    for a, e in zip(nrnn.unpack_sequence(actual), trnn.unpack_sequence(expected)):
        assert torch.equal(_raw(a), e)
    padded = trnn.pad_sequence(seqs)
    lengths = torch.tensor([2, 5, 3, 5])
    for a, e in zip(nrnn.unpad_sequence(nx.Tensor(padded), lengths), trnn.unpad_sequence(padded.clone(), lengths)):
        assert torch.equal(_raw(a), e)


def test_packing_is_differentiable_through_data():
    seqs = _sequences((2, 5, 3))
    t_leaves, n_leaves = zip(*[_leaf(s) for s in seqs])
    t_packed = trnn.pack_sequence(list(t_leaves), enforce_sorted=False)
    n_packed = nrnn.pack_sequence(list(n_leaves), enforce_sorted=False)
    t_pad, _ = trnn.pad_packed_sequence(t_packed, batch_first=True, padding_value=1.0)
    n_pad, _ = nrnn.pad_packed_sequence(n_packed, batch_first=True, padding_value=1.0)
    up = torch.randn(t_pad.shape, dtype=torch.float64)
    t_grads = torch.autograd.grad([t_pad, t_packed.data], t_leaves, [up, torch.ones_like(t_packed.data)])
    n_grads = nx.autograd.grad([n_pad, n_packed.data], list(n_leaves), [nx.Tensor(up), nx.ones(n_packed.data.shape,
                                                                                                dtype=torch.float64)])
    for a, b in zip(n_grads, t_grads):
        _close(a, b)


@pytest.mark.parametrize("name,kwargs", LAYER_CONFIGS)
@pytest.mark.parametrize("with_state", [False, True])
def test_layers_on_packed_sequences_match_torch(name, kwargs, with_state):
    t, n = _pair(name, 3, 4, batch_first=True, **kwargs)
    lengths = [3, 5, 1, 5]  # unsorted, with a tie
    x_t, x_n = _leaf(torch.randn(4, 5, 3, dtype=torch.float64))
    t_in = [trnn.pack_padded_sequence(x_t, lengths, batch_first=True, enforce_sorted=False)]
    n_in = [nrnn.pack_padded_sequence(x_n, lengths, batch_first=True, enforce_sorted=False)]
    if with_state:
        stacked = kwargs.get("num_layers", 1) * (2 if kwargs.get("bidirectional") else 1)
        shapes = [(stacked, 4, kwargs.get("proj_size") or 4)] + ([(stacked, 4, 4)] if name == "LSTM" else [])
        pairs = [_leaf(torch.randn(s, dtype=torch.float64)) for s in shapes]
        t_in.append(tuple(p[0] for p in pairs) if name == "LSTM" else pairs[0][0])
        n_in.append(tuple(p[1] for p in pairs) if name == "LSTM" else pairs[0][1])
    n_out = n(*n_in)[0]
    assert isinstance(n_out, nrnn.PackedSequence)
    _same_packed(n_out[1:], t(*t_in)[0][1:])
    # the leaf x is reached through pack_padded_sequence's index_select: its gradient is compared too
    _check_run(t, n, t_in, n_in)
    g_t = torch.autograd.grad(t(*t_in)[0].data.sum(), x_t)[0]
    g_n = nx.autograd.grad(n(*n_in)[0].data.sum(), x_n)[0]
    _close(g_n, g_t)


def test_packed_sequence_constructor_and_to():
    data, sizes = torch.randn(5, 2), torch.tensor([3, 2])
    packed = nrnn.PackedSequence(nx.Tensor(data), sizes, torch.tensor([1, 0, 2]))
    assert torch.equal(_raw(packed.unsorted_indices), torch.tensor([1, 0, 2]))
    assert nrnn.PackedSequence((data, sizes)).batch_sizes.tolist() == [3, 2]
    assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    double = packed.to(torch.float64)
    assert double.data.dtype == torch.float64 and double.batch_sizes is packed.batch_sizes
    assert packed.to(torch.float32) is packed
    assert packed.double().float().data.dtype == torch.float32 and not packed.is_cuda
    with pytest.raises(AssertionError):
        nrnn.PackedSequence(nx.Tensor(data))
    assert nrnn.invert_permutation(None) is None


# ----- errors: torch's type, a message naming the layer and the sizes ----------------------------------------
def _as_nx(args) -> list:
    return [tuple(map(nx.Tensor, a)) if isinstance(a, tuple) else nx.Tensor(a) for a in args]


def _both_raise(t_call, n_call, match: str | None = None):
    with pytest.raises(Exception) as t_err:
        t_call()
    with pytest.raises(type(t_err.value), match=match):
        n_call()


@pytest.mark.parametrize("name,args,kwargs", [
    ("LSTM", (3, 4), {"dropout": 1.5}), ("LSTM", (3, 4), {"dropout": True}), ("LSTM", (3, 4), {"proj_size": 4}),
    ("LSTM", (3, 4), {"proj_size": -1}), ("GRU", (3, 4), {"proj_size": 2}), ("RNN", (3, 4), {"proj_size": 2}),
    ("RNN", (3, 4), {"nonlinearity": "sigmoid"}), ("LSTM", (0, 4), {}), ("LSTM", (3, 0), {}),
    ("LSTM", (3, 4), {"num_layers": 0}), ("LSTM", (3.0, 4), {}), ("LSTM", (3, 4), {"bias": 1}),
    ("LSTM", (3, 4), {"batch_first": None}), ("RNNBase", ("TANH", 3, 4), {}),
])
def test_constructor_errors_are_torchs(name, args, kwargs):
    _both_raise(lambda: getattr(torch.nn, name)(*args, **kwargs), lambda: getattr(nx.nn, name)(*args, **kwargs))


def test_dropout_with_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        nx.nn.GRU(3, 4, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nx.nn.GRU(3, 4, num_layers=2, dropout=0.2)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_forward_errors_are_torchs(name):
    t, n = _pair(name, 3, 4, num_layers=2)
    lstm = name == "LSTM"

    def state(*shape):
        h = torch.zeros(shape, dtype=torch.float64)
        return (h, h) if lstm else h

    cases = [
        ((torch.randn(5, 2, 2, dtype=torch.float64),), "input_size"),  # wrong feature size
        ((torch.randn(5, 2, 3, 1, dtype=torch.float64),), "2D or 3D"),
        ((torch.randn(5, 2, 3),), "dtype"),  # float32 input, float64 weights
        ((torch.randn(5, 2, 3, dtype=torch.float64), state(2, 3, 4)), r"size \(2, 2, 4\)"),  # wrong batch in hx
        ((torch.randn(5, 2, 3, dtype=torch.float64), state(2, 4)), "3-D"),  # 2-D state with a 3-D input
        ((torch.randn(5, 3, dtype=torch.float64), state(2, 1, 4)), "2-D"),  # 3-D state with a 2-D input
        ((torch.randn(0, 2, 3, dtype=torch.float64),), "sequence length"),
    ]
    for args, match in cases:
        _both_raise(lambda args=args: t(*args), lambda args=args: n(*_as_nx(args)), match)


@pytest.mark.parametrize("name,states", [("RNNCell", 1), ("LSTMCell", 2), ("GRUCell", 1)])
def test_cell_errors_are_torchs(name, states):
    t, n = _pair(name, 3, 4)

    def hx(*shape):
        hs = [torch.zeros(shape, dtype=torch.float64)] * states
        return tuple(hs) if states == 2 else hs[0]

    cases = [
        ((torch.randn(2, 2, 3, dtype=torch.float64),), "1D or 2D"),
        ((torch.randn(2, 5, dtype=torch.float64),), "input_size"),
        ((torch.randn(2, 3, dtype=torch.float64), hx(3, 4)), "batch size"),
        ((torch.randn(2, 3, dtype=torch.float64), hx(2, 5)), "hidden_size"),
        ((torch.randn(2, 3, dtype=torch.float64), hx(1, 2, 4)), "1D or 2D"),
    ]
    for args, match in cases:
        _both_raise(lambda args=args: t(*args), lambda args=args: n(*_as_nx(args)), match)
    bad_t, bad_n = _pair("RNNCell", 3, 4, nonlinearity="gelu")
    _both_raise(lambda: bad_t(torch.randn(2, 3, dtype=torch.float64)),
                lambda: bad_n(nx.Tensor(torch.randn(2, 3, dtype=torch.float64))), "nonlinearity")


@pytest.mark.parametrize("call", [
    lambda m: m.pad_sequence([]),
    lambda m: m.pad_sequence([torch.ones(2, 3), torch.ones(2, 4)]),
    lambda m: m.pad_sequence([torch.ones(2, 3)], padding_side="middle"),
    lambda m: m.pad_sequence(3),
    lambda m: m.pack_padded_sequence(torch.ones(3, 2, 1), [2, 3]),
    lambda m: m.pack_padded_sequence(torch.ones(3, 2, 1), [3, 0]),
    lambda m: m.pack_padded_sequence(torch.ones(3, 2, 1), [3]),
    lambda m: m.pack_padded_sequence(torch.ones(3, 0, 1), []),
    lambda m: m.pack_padded_sequence(torch.ones(3, 2, 1), torch.tensor([[3, 2]])),
    lambda m: m.pack_padded_sequence(torch.ones(3), [3]),
    lambda m: m.pad_packed_sequence(m.pack_padded_sequence(torch.ones(3, 2, 1), [3, 2]), total_length=2),
    lambda m: m.PackedSequence(torch.ones(2), torch.tensor([2]).to("meta")),
])
def test_packing_errors_are_torchs(call):
    _both_raise(lambda: call(trnn), lambda: call(nrnn))


def test_lengths_past_the_end_are_refused():
    # torch reads past the input's end here (garbage rows); neuronix refuses, naming the sizes
    with pytest.raises(RuntimeError, match="exceeds the 3 time steps"):
        nrnn.pack_padded_sequence(nx.Tensor(torch.ones(3, 2, 1)), [4, 3])


# ----- the bases: constructible with a mode / num_chunks, no forward (as torch's) -----------------------------
@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
def test_rnnbase_is_constructible_with_a_mode_and_has_no_forward(mode):
    t, n = _pair("RNNBase", mode, 3, 4, num_layers=2)
    assert list(n.state_dict()) == list(t.state_dict())
    assert all(torch.equal(_raw(n.state_dict()[k]), v) for k, v in t.state_dict().items())
    _both_raise(lambda: t(torch.randn(2, 1, 3, dtype=torch.float64)),
                lambda: n(nx.Tensor(torch.randn(2, 1, 3, dtype=torch.float64))))


def test_rnncellbase_is_constructible_with_num_chunks():
    t, n = _pair("RNNCellBase", 3, 4, True, 3)
    assert list(n.state_dict()) == list(t.state_dict())
    assert all(torch.equal(_raw(n.state_dict()[k]), v) for k, v in t.state_dict().items())
    assert n.weight_ih.shape == (12, 3)


def test_every_config_combination_builds_torchs_state_dict_keys():
    for name, layers, bias, bidirectional in itertools.product(["RNN", "LSTM", "GRU"], [1, 3], [True, False],
                                                               [True, False]):
        t, n = _pair(name, 2, 3, num_layers=layers, bias=bias, bidirectional=bidirectional)
        assert list(n.state_dict()) == list(t.state_dict())


def test_relu_rnn_at_its_kink_matches_torch():
    # zero weights and biases: every pre-activation is exactly 0, relu's kink; torch's gradient there is 0
    t, n = _pair("RNN", 2, 3, num_layers=2, nonlinearity="relu", bidirectional=True)
    for module in (t, n):
        for p in module.parameters():
            p.data.zero_()
    x_t, x_n = _leaf(torch.zeros(3, 2, 2, dtype=torch.float64))
    _check_run(t, n, (x_t,), (x_n,))


def test_a_weight_norm_parametrized_weight_is_the_one_the_layer_uses():
    # the layer reads its weights by name at each call, so a parametrization's computed weight is used
    pairs = []
    for lib in (torch, nx):
        torch.manual_seed(0)
        module = lib.nn.GRU(3, 4, 2).double()
        lib.nn.utils.parametrizations.weight_norm(module, "weight_hh_l1")
        pairs.append(module)
    t, n = pairs
    assert list(n.state_dict()) == list(t.state_dict())
    x_t, x_n = _leaf(torch.randn(4, 2, 3, dtype=torch.float64))
    _check_run(t, n, (x_t,), (x_n,))
