"""nx.nn.Module: registration, traversal, modes, conversions, hooks, state_dict, containers."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch

import neuronix as nx
from neuronix import nn


def _scale_module(lib_nn, n: int = 3):
    """``y = x * w + b`` with a buffer, written once for both libraries."""

    class Scale(lib_nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = lib_nn.Parameter(torch.linspace(0.5, 1.5, n))
            self.b = lib_nn.Parameter(torch.linspace(-1.0, 1.0, n))
            self.register_buffer("count", torch.zeros((), dtype=torch.long))
            self.register_buffer("cache", torch.ones(n), persistent=False)

        def forward(self, x):
            return x * self.w + self.b

    return Scale()


class Pair(nn.Module):
    def forward(self, x, y):
        return x * y + x, y * 2


class TorchPair(torch.nn.Module):
    def forward(self, x, y):
        return x * y + x, y * 2


# ----- registration and traversal -------------------------------------------------------
def test_attributes_register_parameters_buffers_and_children():
    m = _scale_module(nn)
    assert [n for n, _ in m.named_parameters()] == ["w", "b"]
    assert [n for n, _ in m.named_buffers()] == ["count", "cache"]
    assert isinstance(m.w, nn.Parameter) and m.w.requires_grad
    seq = nn.Sequential(m, _scale_module(nn))
    assert [n for n, _ in seq.named_parameters()] == ["0.w", "0.b", "1.w", "1.b"]
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert list(seq.children())[0] is m


def test_shared_parameters_and_modules_are_counted_once():
    shared = _scale_module(nn)
    seq = nn.Sequential(shared, _scale_module(nn), shared)
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert len(list(seq.parameters())) == 4
    assert len(list(seq.named_parameters(remove_duplicate=False))) == 6
    outer = nn.Module()
    outer.a = shared
    outer.tied = shared.w  # the same Parameter under a second name: listed once, where first met
    assert [n for n, _ in outer.named_parameters()] == ["tied", "a.b"]
    # torch keeps shared tensors under every name in the state_dict, as do we
    assert list(seq.state_dict()) == ["0.w", "0.b", "0.count", "1.w", "1.b", "1.count", "2.w", "2.b", "2.count"]


def test_named_modules_prefix_and_named_parameters_prefix_match_torch():
    def build(lib_nn):
        return lib_nn.Sequential(OrderedDict(a=lib_nn.Sequential(_scale_module(lib_nn)), b=_scale_module(lib_nn)))

    n, t = build(nn), build(torch.nn)
    assert [k for k, _ in n.named_modules(prefix="net")] == [k for k, _ in t.named_modules(prefix="net")]
    assert [k for k, _ in n.named_parameters(prefix="p")] == [k for k, _ in t.named_parameters(prefix="p")]
    assert [k for k, _ in n.named_parameters(recurse=False)] == []
    assert list(n.state_dict()) == list(t.state_dict())


def test_assignment_errors():
    m = _scale_module(nn)
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = nx.ones(3)
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("x", nx.ones(3))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("forward", torch.ones(1))

    class Early(nn.Module):
        def __init__(self) -> None:
            self.w = nn.Parameter(torch.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()
    m.w = None  # a parameter may be unset
    assert "w" not in dict(m.named_parameters())
    del m.b
    assert "b" not in m.state_dict()
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        m.nothing  # noqa: B018


def test_plain_tensors_attributes_are_not_registered_but_buffers_accept_torch_tensors():
    m = nn.Module()
    m.plain = nx.ones(2)
    assert list(m.named_buffers()) == [] and list(m.named_parameters()) == []
    m.register_buffer("stats", torch.zeros(2))
    assert isinstance(m.stats, nx.Tensor)
    m.stats = torch.ones(2)  # re-assigning a buffer keeps it a buffer
    assert isinstance(m.stats, nx.Tensor) and m.state_dict()["stats"].tolist() == [1.0, 1.0]


def test_train_eval_and_requires_grad():
    seq = nn.Sequential(_scale_module(nn), nn.Sequential(_scale_module(nn)))
    assert all(m.training for m in seq.modules())
    assert seq.eval() is seq and not any(m.training for m in seq.modules())
    seq.train()
    assert all(m.training for m in seq.modules())
    seq.requires_grad_(False)
    assert not any(p.requires_grad for p in seq.parameters())


def test_zero_grad():
    m = _scale_module(nn)
    m(nx.ones(3)).sum().backward()
    assert m.w.grad is not None
    m.zero_grad(set_to_none=False)
    assert m.w.grad.tolist() == [0.0, 0.0, 0.0]
    m.zero_grad()
    assert m.w.grad is None and m.b.grad is None


def test_to_converts_in_place_and_keeps_identity():
    m = _scale_module(nn)
    w = m.w
    m(nx.ones(3)).sum().backward()
    assert m.to(torch.float64) is m
    assert m.w is w and w.dtype == torch.float64 and w.grad.dtype == torch.float64
    assert m.count.dtype == torch.long  # integer buffers keep their dtype
    m.float()
    assert w.dtype == torch.float32
    m.to("cpu", dtype=torch.float64)
    assert w.dtype == torch.float64 and m.cache.dtype == torch.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(torch.int64)


def test_apply_visits_children_first():
    seq = nn.Sequential(_scale_module(nn), nn.Sequential(_scale_module(nn)))
    order = []
    seq.apply(lambda mod: order.append(type(mod).__name__))
    assert order == ["Scale", "Scale", "Sequential", "Sequential"]


def test_deepcopy_keeps_types_and_sharing():
    shared = _scale_module(nn)
    seq = nn.Sequential(shared, shared)
    clone = copy.deepcopy(seq)
    assert isinstance(clone[0].w, nn.Parameter) and clone[0] is clone[1]
    assert clone[0].w is not shared.w and clone[0].w.tolist() == shared.w.tolist()


def test_get_submodule_parameter_buffer():
    seq = nn.Sequential(nn.Sequential(_scale_module(nn)))
    assert seq.get_submodule("0.0") is seq[0][0]
    assert seq.get_parameter("0.0.w") is seq[0][0].w
    assert seq.get_buffer("0.0.count") is seq[0][0].count
    with pytest.raises(AttributeError, match="has no attribute `x`"):
        seq.get_submodule("0.x")


def test_forward_raises_when_not_implemented():
    with pytest.raises(NotImplementedError, match='missing the required "forward"'):
        nn.Module()(nx.ones(1))


# ----- hooks --------------------------------------------------------------------------
def test_forward_pre_and_post_hooks_modify_and_remove():
    m = _scale_module(nn)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    h2 = m.register_forward_hook(lambda mod, args, out: out + 100)
    h3 = m.register_forward_pre_hook(lambda mod, args: calls.append("first"), prepend=True)
    x = nx.ones(3)
    expected = (x * 2 * m.w + m.b + 100).tolist()
    assert m(x).tolist() == expected and calls == ["first"]
    h1.remove()
    h2.remove()
    h3.remove()
    assert m(x).tolist() == (x * m.w + m.b).tolist() and calls == ["first"]
    with m.register_forward_hook(lambda mod, args, kwargs, out: out * 0, with_kwargs=True):
        assert m(x).tolist() == [0.0, 0.0, 0.0]
    assert m(x).tolist() != [0.0, 0.0, 0.0]


def test_always_call_forward_hook_runs_when_forward_raises():
    m = _scale_module(nn)
    seen = []
    m.register_forward_hook(lambda mod, args, out: seen.append(out), always_call=True)
    m.register_forward_hook(lambda mod, args, out: seen.append("normal"))
    with pytest.raises(RuntimeError):
        m(nx.ones(4))  # shape mismatch inside forward
    assert seen == [None]


def test_to_memory_format():
    m = nn.Module()
    m.w = nn.Parameter(torch.randn(2, 3, 4, 4))
    m.b = nn.Parameter(torch.randn(2))
    m.to(memory_format=torch.channels_last)
    assert m.w.data.is_contiguous(memory_format=torch.channels_last) and m.b.dim() == 1


def test_forward_pre_hook_with_kwargs():
    m = Pair()
    m.register_forward_pre_hook(lambda mod, args, kwargs: ((args[0],), {"y": kwargs["y"] * 0}), with_kwargs=True)
    a, b = m(nx.ones(2), y=nx.ones(2))
    assert a.tolist() == [1.0, 1.0] and b.tolist() == [0.0, 0.0]


def _both_backward_hooks(n_mod, t_mod, n_inputs, t_inputs, upstream):
    records = {}
    n_mod.register_full_backward_hook(lambda m, gi, go: records.__setitem__("nx", (gi, go)))
    t_mod.register_full_backward_hook(lambda m, gi, go: records.__setitem__("torch", (gi, go)))
    n_out, t_out = n_mod(*n_inputs), t_mod(*t_inputs)
    n_out = n_out if isinstance(n_out, tuple) else (n_out,)
    t_out = t_out if isinstance(t_out, tuple) else (t_out,)
    pairs = [(o, u) for o, u in zip(n_out, upstream) if o.requires_grad]
    nx.autograd.backward([o for o, _ in pairs], [nx.Tensor(u) for _, u in pairs])
    pairs = [(o, u) for o, u in zip(t_out, upstream) if o.requires_grad]
    torch.autograd.backward([o for o, _ in pairs], [u for _, u in pairs])
    return records["nx"], records["torch"]


def _same(n_tuple, t_tuple):
    assert len(n_tuple) == len(t_tuple)
    for n, t in zip(n_tuple, t_tuple):
        assert (n is None) == (t is None)
        if n is not None:
            torch.testing.assert_close(n.data, t, rtol=0, atol=0)


def test_full_backward_hook_matches_torch():
    torch.manual_seed(0)
    x = torch.randn(3)
    up = torch.randn(3)
    n_mod, t_mod = _scale_module(nn), _scale_module(torch.nn)
    (n_gi, n_go), (t_gi, t_go) = _both_backward_hooks(
        n_mod, t_mod, [nx.Tensor(x, requires_grad=True)], [x.clone().requires_grad_()], [up]
    )
    _same(n_gi, t_gi)
    _same(n_go, t_go)


def test_full_backward_hook_two_inputs_two_outputs_one_without_grad():
    torch.manual_seed(1)
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    ups = [torch.randn(2, 3), torch.randn(2, 3)]
    (n_gi, n_go), (t_gi, t_go) = _both_backward_hooks(
        Pair(), TorchPair(), [nx.Tensor(x, requires_grad=True), nx.Tensor(y)], [x.clone().requires_grad_(), y], ups
    )
    _same(n_gi, t_gi)
    _same(n_go, t_go)


def test_full_backward_hook_replaces_grad_input_and_removes():
    m = _scale_module(nn)
    handle = m.register_full_backward_hook(lambda mod, gi, go: (gi[0] * 10,))
    x = nx.ones(3, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.tolist() == (m.w * 10).tolist()
    assert m.w.grad.tolist() == [1.0, 1.0, 1.0]  # parameter gradients are not affected
    handle.remove()
    x.grad = None
    m(x).sum().backward()
    assert x.grad.tolist() == m.w.tolist()


def test_full_backward_hook_double_backward():
    m = _scale_module(nn)
    m.register_full_backward_hook(lambda mod, gi, go: None)
    x = nx.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = m(x * x).sum()
    (g,) = nx.autograd.grad(y, [x], create_graph=True)
    (gg,) = nx.autograd.grad(g.sum(), [x])
    assert gg.tolist() == (m.w * 2).tolist()


def test_full_backward_pre_hook_replaces_grad_output():
    m = _scale_module(nn)
    seen = []
    m.register_full_backward_pre_hook(lambda mod, go: (go[0] * 0 + 1,))
    m.register_full_backward_hook(lambda mod, gi, go: seen.append(go[0].tolist()))
    x = nx.ones(3, requires_grad=True)
    (m(x) * 5).sum().backward()
    assert seen == [[1.0, 1.0, 1.0]] and x.grad.tolist() == m.w.tolist()


def test_backward_hooks_leave_no_graph_behind():
    import gc

    m = _scale_module(nn)
    m.register_full_backward_hook(lambda mod, gi, go: None)
    gc.disable()
    try:
        with nx.AutogradGraph() as graph:
            x = nx.ones(3, requires_grad=True)
            m(x).sum().backward()
            del x
        assert graph.live_nodes() == 0
    finally:
        gc.enable()


# ----- state_dict ---------------------------------------------------------------------
def test_state_dict_round_trip_with_torch():
    n, t = _scale_module(nn), _scale_module(torch.nn)
    with torch.no_grad():
        t.w.mul_(3)
        t.count.fill_(7)
    result = n.load_state_dict(t.state_dict())
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    assert n.w.tolist() == t.w.tolist() and n.count.item() == 7
    sd = n.state_dict()
    assert list(sd) == list(t.state_dict()) == ["w", "b", "count"]  # non-persistent "cache" left out
    assert isinstance(sd["w"], torch.Tensor)
    t2 = _scale_module(torch.nn)
    t2.load_state_dict(n.state_dict())  # and back into torch
    assert t2.w.tolist() == n.w.tolist()
    n.load_state_dict({k: nx.Tensor(v * 2) for k, v in t.state_dict().items()})  # neuronix tensors too
    assert n.w.tolist() == (t.w * 2).tolist()
    assert n.state_dict(keep_vars=True)["w"] is n.w


def test_load_state_dict_copies_not_aliases():
    n, t = _scale_module(nn), _scale_module(torch.nn)
    n.load_state_dict(t.state_dict())
    with torch.no_grad():
        t.w.add_(1)
    assert n.w.tolist() != t.w.tolist()


def test_load_state_dict_errors_name_keys_and_shapes():
    n = nn.Sequential(_scale_module(nn))
    sd = n.state_dict()
    bad = {**sd, "0.extra": torch.ones(1)}
    del bad["0.b"]
    with pytest.raises(RuntimeError) as err:
        n.load_state_dict(bad)
    msg = str(err.value)
    assert 'Missing key(s) in state_dict: "0.b"' in msg and 'Unexpected key(s) in state_dict: "0.extra"' in msg
    assert "Error(s) in loading state_dict for Sequential" in msg
    result = n.load_state_dict(bad, strict=False)
    assert result.missing_keys == ["0.b"] and result.unexpected_keys == ["0.extra"]
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.w: copying a param with shape torch\.Size\(\[4\]\) "
                                           r"from checkpoint, the shape in current model is torch\.Size\(\[3\]\)"):
        n.load_state_dict({**sd, "0.w": torch.ones(4)}, strict=False)


def test_load_state_dict_assign():
    n = _scale_module(nn)
    w = torch.arange(3.0)
    n.load_state_dict({**n.state_dict(), "w": w}, assign=True)
    assert n.w.data is w and isinstance(n.w, nn.Parameter)


# ----- containers ---------------------------------------------------------------------
def test_sequential_indexing_slicing_append():
    a, b, c = _scale_module(nn), _scale_module(nn), _scale_module(nn)
    seq = nn.Sequential(a, b)
    assert seq[0] is a and seq[-1] is b and len(seq) == 2 and list(seq) == [a, b]
    seq.append(c)
    assert seq[2] is c and list(seq.state_dict())[-3:] == ["2.w", "2.b", "2.count"]
    part = seq[1:]
    assert isinstance(part, nn.Sequential) and list(part) == [b, c] and list(dict(part.named_children())) == ["1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]  # noqa: B018
    del seq[0]
    assert list(seq) == [b, c] and list(dict(seq.named_children())) == ["0", "1"]
    x = nx.ones(3)
    assert seq(x).tolist() == c(b(x)).tolist()
    named = nn.Sequential(OrderedDict(first=a))
    assert named.first is a and list(named.state_dict())[0] == "first.w"


def test_module_list_and_dict():
    a, b = _scale_module(nn), _scale_module(nn)
    ml = nn.ModuleList([a])
    ml.append(b)
    ml += [_scale_module(nn)]
    assert len(ml) == 3 and ml[1] is b and ml[-1] is not b
    assert isinstance(ml[:2], nn.ModuleList) and list(ml[:2]) == [a, b]
    assert [n for n, _ in ml.named_parameters()][:2] == ["0.w", "0.b"]
    md = nn.ModuleDict({"x": a})
    md["y"] = b
    assert list(md) == ["x", "y"] and md["y"] is b and "x" in md and len(md) == 2
    assert list(md.state_dict())[:3] == ["x.w", "x.b", "x.count"]
    with pytest.raises(TypeError, match="iterable"):
        nn.ModuleList(a)


def test_repr_matches_torch_for_containers():
    def build(lib_nn):
        return lib_nn.Sequential(lib_nn.ModuleList([lib_nn.Module(), lib_nn.Module()]),
                                 lib_nn.ModuleDict({"a": lib_nn.Module()}))

    assert repr(build(nn)) == repr(build(torch.nn))
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList())


def test_parameter_repr_and_module_under_no_grad():
    p = nn.Parameter(torch.ones(2))
    assert repr(p).startswith("Parameter containing:\ntensor([1., 1.], requires_grad=True)")
    m = _scale_module(nn)
    with nx.no_grad():
        y = m(nx.ones(3, requires_grad=True))
    assert y.grad_fn is None and not y.requires_grad
