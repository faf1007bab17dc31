"""``nx.save`` / ``nx.load``: round trips, atomic writes, and refusal of bad files without running code."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import neuronix as nx
from neuronix.serialization import CheckpointError, checkpoint_metadata


def _checkpoint():
    return {
        "model": {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(7), "empty": torch.zeros(0)},
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0), "momentum_buffer": torch.randn(5, dtype=torch.float64)}},
            "param_groups": [{"lr": 0.1, "params": [0, 1], "nesterov": True, "foreach": None, "betas": (0.9, 0.999)}],
        },
        "epoch": 4,
        "best": float("inf"),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "misc": [torch.randn(2, 2).bfloat16(), torch.tensor([True, False]), torch.randn(4, 4).t(), "text", None],
        "nx": nx.Tensor(torch.arange(3.0)),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
    }


def _assert_same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    elif isinstance(a, nx.Tensor):
        assert torch.equal(a.data, b.data)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    else:
        assert a == b


def test_round_trip_keeps_structure_types_and_bits(tmp_path):
    obj = _checkpoint()
    nx.save(obj, tmp_path / "ck.safetensors")
    _assert_same(obj, nx.load(tmp_path / "ck.safetensors"))


def test_loaded_rng_states_restore_the_generators(tmp_path):
    rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    expected = (torch.rand(3), np.random.rand(3), random.random())
    nx.save(rng, tmp_path / "rng.safetensors")
    back = nx.load(tmp_path / "rng.safetensors")
    torch.set_rng_state(back["torch"])
    np.random.set_state(back["numpy"])
    random.setstate(back["python"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_metadata_records_versions_and_file_is_plain_safetensors(tmp_path):
    nx.save({"w": torch.ones(2)}, tmp_path / "ck.safetensors")
    meta = checkpoint_metadata(tmp_path / "ck.safetensors")
    assert meta["neuronix.version"] == nx.__version__ and meta["torch.version"] == torch.__version__
    from safetensors.torch import load_file

    assert list(load_file(tmp_path / "ck.safetensors").values())[0].tolist() == [1.0, 1.0]


def test_map_location_and_unsupported_types(tmp_path):
    nx.save({"w": torch.ones(2)}, tmp_path / "ck.safetensors")
    assert nx.load(tmp_path / "ck.safetensors", map_location="cpu")["w"].device.type == "cpu"
    with pytest.raises(TypeError, match=r"cannot store object at obj\.bad"):
        nx.save({"bad": object()}, tmp_path / "x.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 8, 20, "half", -1])
def test_truncated_file_raises_clear_error(tmp_path, keep):
    path = tmp_path / "ck.safetensors"
    nx.save(_checkpoint(), path)
    data = path.read_bytes()
    n = len(data) // 2 if keep == "half" else (len(data) + keep if keep < 0 else keep)
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="truncated|too short"):
        nx.load(path)


def test_flipped_data_byte_fails_the_checksum(tmp_path):
    path = tmp_path / "ck.safetensors"
    nx.save({"w": torch.zeros(1000)}, path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        nx.load(path)


def test_garbled_header_raises_clear_error(tmp_path):
    path = tmp_path / "ck.safetensors"
    nx.save({"w": torch.zeros(10)}, path)
    data = bytearray(path.read_bytes())
    data[9:13] = b"\xff\xfe{]"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted"):
        nx.load(path)


class _Exploit:
    """Unpickling this would create a marker file: a loader that unpickles runs attacker code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_file_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(_Exploit(str(marker)), protocol=2))
    with pytest.raises(CheckpointError, match="pickle.*never unpickles"):
        nx.load(path)
    assert not marker.exists()


def test_torch_save_zip_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match="zip archive"):
        nx.load(path)


def test_foreign_safetensors_and_random_bytes_are_refused(tmp_path):
    save_file({"w": torch.ones(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="without neuronix checkpoint metadata"):
        nx.load(tmp_path / "plain.safetensors")
    (tmp_path / "junk.bin").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        nx.load(tmp_path / "junk.bin")


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ck.safetensors"
    nx.save({"epoch": 1, "w": torch.ones(3)}, path)

    def crash(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        nx.save({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert nx.load(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ck.safetensors"]  # the temporary file was removed


def test_save_fsyncs_file_and_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.path.realpath(f"/proc/self/fd/{fd}")), real(fd)))
    nx.save({"w": torch.ones(3)}, tmp_path / "ck.safetensors")
    assert len(synced) == 2 and synced[1] == os.path.realpath(tmp_path)
