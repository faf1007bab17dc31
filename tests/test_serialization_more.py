"""nx.save / nx.load as unchanged torch programs use them: file objects, whole training checkpoints, torch's
arguments, devices and map_location, and the clear refusal to pickle a Module or an optimizer."""

from __future__ import annotations

import io
import math

import pytest
import torch

import neuronix as nx


def _trained():
    """A model, its optimizer, a scheduler and a GradScaler after two steps: state in all of them."""
    torch.manual_seed(0)
    model = nx.nn.Sequential(nx.nn.Linear(3, 4), nx.nn.ReLU(), nx.nn.BatchNorm1d(4), nx.nn.Linear(4, 2))
    opt = nx.optim.Adam(model.parameters(), lr=1e-2)
    sched = nx.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    plateau = nx.optim.lr_scheduler.ReduceLROnPlateau(nx.optim.SGD(model.parameters(), lr=0.1))
    scaler = nx.amp.GradScaler("cpu", init_scale=256.0)
    for _ in range(2):
        opt.zero_grad()
        loss = model(nx.randn(5, 3)).pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sched.step()
        plateau.step(loss.item())
    return model, opt, sched, plateau, scaler


def _checkpoint(model, opt, sched, plateau, scaler):
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "plateau": plateau.state_dict(), "scaler": scaler.state_dict(), "epoch": 3, "best": -math.inf,
            "history": [0.5, 0.25], "args": {"lr": 1e-2, "name": "run", "betas": (0.9, 0.999)}}


def _same(a, b, path="ckpt"):
    """``a`` (loaded) is ``b`` (saved) again; a state_dict's OrderedDict comes back as a dict in the same order."""
    assert type(a) is type(b) or (type(a) is dict and isinstance(b, dict)), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, (torch.Tensor, nx.Tensor)):
        x, y = (t.data if isinstance(t, nx.Tensor) else t for t in (a, b))
        assert x.dtype == y.dtype and torch.equal(x, y), path
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.parametrize("target", ["path", "str", "bytesio", "open file"])
def test_whole_training_checkpoint_round_trips(tmp_path, target):
    parts = _trained()
    ckpt = _checkpoint(*parts)
    path = tmp_path / "ckpt.pt"
    if target == "bytesio":
        f = io.BytesIO()
        nx.save(ckpt, f)
        f.seek(0)
        back = nx.load(f)
    elif target == "open file":
        with open(path, "wb") as f:
            nx.save(ckpt, f)
        with open(path, "rb") as f:
            back = nx.load(f)
    else:
        where = path if target == "path" else str(path)
        nx.save(ckpt, where)
        back = nx.load(where)
    _same(back, ckpt)
    assert isinstance(back["args"]["betas"], tuple) and back["best"] == -math.inf


def test_a_checkpoint_resumes_training_exactly(tmp_path):
    model, opt, sched, plateau, scaler = _trained()
    nx.save(_checkpoint(model, opt, sched, plateau, scaler), tmp_path / "ck")
    ck = nx.load(tmp_path / "ck", weights_only=True)
    torch.manual_seed(1)
    model2 = nx.nn.Sequential(nx.nn.Linear(3, 4), nx.nn.ReLU(), nx.nn.BatchNorm1d(4), nx.nn.Linear(4, 2))
    opt2 = nx.optim.Adam(model2.parameters(), lr=1e-2)
    sched2 = nx.optim.lr_scheduler.StepLR(opt2, step_size=1, gamma=0.5)
    scaler2 = nx.amp.GradScaler("cpu")
    model2.load_state_dict(ck["model"])
    opt2.load_state_dict(ck["optimizer"])
    sched2.load_state_dict(ck["scheduler"])
    scaler2.load_state_dict(ck["scaler"])
    x = nx.randn(5, 3)
    for m, o, s, sc in ((model, opt, sched, scaler), (model2, opt2, sched2, scaler2)):
        o.zero_grad()
        sc.scale(m(x).pow(2).mean()).backward()
        sc.step(o)
        sc.update()
        s.step()
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p.data, q.data)
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"] and scaler.get_scale() == scaler2.get_scale()


def test_torch_state_dicts_and_torch_optimizer_state_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt = {"model": model.state_dict(), "optimizer": opt.state_dict()}
    nx.save(ckpt, tmp_path / "t")
    back = nx.load(tmp_path / "t")
    _same(back, ckpt)
    torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).load_state_dict(back["optimizer"])


@pytest.mark.parametrize("make", ["module", "optimizer", "scheduler", "scaler", "nested module"])
def test_saving_an_object_names_the_state_dict_way(make, tmp_path):
    model = nx.nn.Linear(2, 2)
    opt = nx.optim.SGD(model.parameters(), lr=0.1)
    obj = {"module": model, "optimizer": opt, "scheduler": nx.optim.lr_scheduler.StepLR(opt, 1),
           "scaler": nx.amp.GradScaler("cpu"), "nested module": {"epoch": 1, "net": model}}[make]
    f = io.BytesIO()
    with pytest.raises(TypeError) as err:
        nx.save(obj, f)
    message = str(err.value)
    assert ".state_dict(), f)" in message and "load_state_dict(nx.load(f))" in message
    assert "never pickled" in message
    if make == "module":
        assert "nx.save(model.state_dict(), f)" in message and "Linear" in message
    if make == "optimizer":
        assert "nx.save(optimizer.state_dict(), f)" in message
    if make == "nested module":
        assert "obj.net" in message
    assert f.getvalue() == b""  # nothing written


def test_a_plain_object_is_refused_before_writing(tmp_path):
    class Config:
        pass

    with pytest.raises(TypeError, match="cannot store Config at obj.cfg"):
        nx.save({"cfg": Config()}, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_torch_call_forms_port_unchanged(tmp_path):
    sd = nx.nn.Linear(2, 3).state_dict()
    nx.save(sd, tmp_path / "a", pickle_protocol=2, _use_new_zipfile_serialization=True)
    for kwargs in ({}, {"weights_only": True}, {"weights_only": False}, {"map_location": "cpu", "mmap": False},
                   {"map_location": torch.device("cpu")}, {"map_location": {"cuda:0": "cpu"}},
                   {"map_location": lambda storage, loc: storage}):
        _same(nx.load(tmp_path / "a", **kwargs), sd)


def test_map_location_callable_sees_the_saved_location(tmp_path):
    nx.save({"w": torch.ones(2)}, tmp_path / "a")
    seen = []
    back = nx.load(tmp_path / "a", map_location=lambda t, loc: seen.append(loc) or t * 2)
    assert seen == ["cpu"] and torch.equal(back["w"], torch.full((2,), 2.0))


def test_a_cuda_tensor_records_its_device(tmp_path, monkeypatch):
    """Saved from CUDA, a tensor comes back on CUDA (torch.load's rule) or, without CUDA, raises torch's advice;
    map_location='cpu' loads it anywhere. The CUDA device is simulated where there is none."""
    from neuronix import serialization

    f = io.BytesIO()
    tensors: dict = {}
    node = serialization._tensor_node(torch.ones(2), "torch", tensors, "obj")
    assert "device" not in node  # CPU tensors: no field, files as before
    structure = {"w": {**node, "device": "cuda:0"}}
    if torch.cuda.is_available():
        nx.save({"w": torch.ones(2, device="cuda")}, f)
        f.seek(0)
        assert nx.load(f)["w"].device.type == "cuda"
        f.seek(0)
        assert nx.load(f, map_location="cpu")["w"].device.type == "cpu"
    else:
        with pytest.raises(RuntimeError, match="map_location=torch.device\\('cpu'\\)"):
            serialization._unflatten(structure, tensors, None)
        back = serialization._unflatten(structure, tensors, "cpu")
        assert back["w"].device.type == "cpu"
        back = serialization._unflatten(structure, tensors, {"cuda:0": "cpu"})
        assert back["w"].device.type == "cpu"
    with pytest.raises(serialization._Malformed, match="tensor device"):
        serialization._unflatten({"w": {**node, "device": "nowhere:1"}}, tensors, None)
