"""``nx.save`` / ``nx.load``: round trips, atomic writes, and refusal of bad files without running code."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save
from safetensors.torch import save_file

import neuronix as nx
from neuronix import serialization as ser
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
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
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


# ----- item 13: format detection by what safetensors is, not by a pickle sniff ---------------
def _header_length(path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def _padded_to(path, target: int):
    """Save a checkpoint at ``path`` whose safetensors header is exactly ``target`` bytes long."""
    nx.save({"w": torch.arange(3.0), "pad": ""}, path)
    start = max(0, target - _header_length(path) - 8)  # each padding byte adds one header byte
    for k in range(start, start + 16):
        obj = {"w": torch.arange(3.0), "pad": "x" * k}
        nx.save(obj, path)
        if _header_length(path) == target:
            return obj
    raise AssertionError(f"no padding gives a {target}-byte header")  # safetensors pads headers to 8 bytes


@pytest.fixture
def no_fsync(monkeypatch):
    """For tests that save thousands of files: durability is not what they check, and fsync costs ms."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_header_length_that_starts_like_a_pickle_loads(tmp_path, protocol, no_fsync):
    # a header of 0x0280/0x0380/0x0480/0x0580 bytes: the file starts with b"\x80\x02".."\x80\x05",
    # a pickle's first two bytes, and used to be refused as one
    path = tmp_path / "ck.safetensors"
    obj = _padded_to(path, 0x80 | protocol << 8)
    assert path.read_bytes()[:2] == bytes([0x80, protocol])
    _assert_same(obj, nx.load(path))
    assert checkpoint_metadata(path)["format"] == ser.FORMAT


def test_every_small_header_length_loads(tmp_path, no_fsync):
    # each 8 more bytes of padding move the (8-aligned) header to the next length: every length
    # from the smallest up to ~4 KiB, so every low-byte pattern of the length field, is tried once
    path = tmp_path / "ck.safetensors"
    seen = set()
    for k in range(0, 4000, 8):
        obj = {"w": torch.arange(3.0), "pad": "x" * k}
        nx.save(obj, path)
        seen.add(_header_length(path))
        _assert_same(obj, nx.load(path))
    assert len(seen) == 500 and {0x280, 0x380, 0x480, 0x580} <= seen


_MARKERISH = ["__dtype__", "__tuple__", "__items__", "__tensor__", "__device__", "kind", "__x__", "__", "____", "t0"]
_KEYS = st.one_of(st.text(max_size=6), st.sampled_from(_MARKERISH))
_TENSOR_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool]
_TENSOR_DTYPES += [torch.complex64, torch.complex128]


@st.composite
def _tensors(draw):
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    dtype = draw(st.sampled_from(_TENSOR_DTYPES))
    t = (torch.arange(math.prod(shape)).reshape(shape) % 7).to(dtype)
    kind = draw(st.sampled_from(["torch", "nx"] + ([] if dtype == torch.bfloat16 else ["numpy"])))
    return nx.Tensor(t) if kind == "nx" else t.numpy() if kind == "numpy" else t


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(_MARKERISH),
    _tensors(),
    st.sampled_from([torch.float32, torch.bfloat16, torch.int64, torch.bool]),
    st.sampled_from([torch.device("cpu"), torch.device("cuda", 1)]),
)
_CHECKPOINTS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(-5, 5), st.none(), _KEYS), inner, max_size=3),
    ),
    max_leaves=16,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=_CHECKPOINTS)
def test_random_small_checkpoints_round_trip(tmp_path, no_fsync, obj):
    # covers item 13 (random header lengths) and item 15 (user keys that look like our markers)
    path = tmp_path / "ck.safetensors"
    nx.save(obj, path)
    _assert_same(obj, nx.load(path))


# ----- item 14: atomic saves that leave nothing behind, permissions by the umask ------------------
# One process imports neuronix once (~seconds) and forks a saver per kill (~ms): many kills fit
# in a few seconds. The zygote never computes with torch itself, so forking it is safe.
_ZYGOTE = r"""
import os, sys, time
import safetensors.torch, torch
from neuronix import serialization as ser
target, numel = sys.argv[1], int(sys.argv[2])
real_fsync = os.fsync
def slow_fsync(fd):  # a slow disk: most of a save is spent writing, so most kills land mid-write
    time.sleep(0.01)
    real_fsync(fd)
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg, mode = line.split()
    if cmd == "spawn":
        pid = os.fork()
        if pid == 0:
            ser._USE_O_TMPFILE = mode == "unnamed"
            os.fsync = slow_fsync
            step = int(arg)
            while True:
                step += 1
                ser.save({"step": step, "w": torch.full((numel,), float(step))}, target)
        print(pid, flush=True)
    else:
        os.waitpid(int(arg), 0)
        print("reaped", flush=True)
"""


def _partials(directory):
    return sorted(n for n in os.listdir(directory) if n != "ck.safetensors")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkilled_saves_leave_old_or_new_file_and_no_partial(tmp_path):
    target, numel, rng = tmp_path / "ck.safetensors", 250_000, random.Random(0)
    nx.save({"step": 0, "w": torch.zeros(numel)}, target)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    zygote = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE, str(target), str(numel)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    modes = ["unnamed", "named"] if ser._USE_O_TMPFILE else ["named"]
    kills = {m: 0 for m in modes}
    left = {m: 0 for m in modes}  # partial files found right after a kill, before the next load
    last = 0
    try:
        assert zygote.stdout.readline().strip() == "ready"
        start, i = time.monotonic(), 0
        # 40 kills per mode, or fewer on a slow machine: the test stays under ~10 s
        while min(kills.values()) < 40 and time.monotonic() - start < 5.0:
            i += 1
            mode = modes[i % len(modes)]
            base = 1000 * i
            zygote.stdin.write(f"spawn {base} {mode}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            time.sleep(rng.uniform(0.0, 0.04))  # a save of this 1 MB checkpoint takes ~25 ms
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"reap {pid} -\n")
            zygote.stdin.flush()
            assert zygote.stdout.readline().strip() == "reaped"
            kills[mode] += 1
            left[mode] += len(_partials(tmp_path))
            back = nx.load(target)  # never partial: a complete old or new file, its digest checked
            step = back["step"]
            assert step == last or base < step < base + 1000, (step, last, base)
            assert back["w"].shape == (numel,) and bool((back["w"] == step).all())
            last = step
            assert _partials(tmp_path) == []  # the load removed what the killed saver left
    finally:
        zygote.kill()
        zygote.wait()
    print(f"kills {kills}, partial files left by the kills (removed by the next load) {left}")
    assert min(kills.values()) >= 10 and left["named"] > 0, (kills, left)  # the kills did land mid-write
    nx.save({"step": -1}, target)
    assert os.listdir(tmp_path) == ["ck.safetensors"] and nx.load(target) == {"step": -1}


@pytest.mark.skipif(not ser._USE_O_TMPFILE, reason="O_TMPFILE unavailable")
def test_unnamed_write_has_no_directory_entry_while_it_runs(tmp_path, monkeypatch):
    seen = []
    real = ser._write_all
    monkeypatch.setattr(ser, "_write_all", lambda fd, payload: (seen.append(os.listdir(tmp_path)), real(fd, payload)))
    nx.save({"w": torch.ones(3)}, tmp_path / "ck.safetensors")
    assert seen == [[]] and os.listdir(tmp_path) == ["ck.safetensors"]


def test_partials_of_live_or_remote_writers_are_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = ser._host_tag()
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    stale = f".ck.safetensors.nx-partial-{host}-{dead.pid}-0badf00d"
    live = f".ck.safetensors.nx-partial-{host}-{os.getpid()}-0badf00d"
    remote = f".ck.safetensors.nx-partial-{other_host}-{dead.pid}-0badf00d"
    unrelated = ".ck.safetensors.tmp"
    for name in (stale, live, remote, unrelated):
        (tmp_path / name).write_bytes(b"x")
    nx.save({"w": torch.ones(1)}, tmp_path / "ck.safetensors")
    assert sorted(os.listdir(tmp_path)) == sorted(["ck.safetensors", live, remote, unrelated])


@pytest.mark.parametrize("unnamed", [True, False])
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o000])
def test_file_mode_follows_the_umask(tmp_path, monkeypatch, umask, unnamed):
    if unnamed and not ser._USE_O_TMPFILE:
        pytest.skip("O_TMPFILE unavailable")
    monkeypatch.setattr(ser, "_USE_O_TMPFILE", unnamed)
    old = os.umask(umask)
    try:
        nx.save({"w": torch.ones(2)}, tmp_path / "ck.safetensors")  # new file
        nx.save({"w": torch.ones(3)}, tmp_path / "ck.safetensors")  # replaced file
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "ck.safetensors").st_mode & 0o777) == oct(0o666 & ~umask)


# ----- item 15: structure escaping, malformed files, the closed allowlist ---------------------
def test_user_keys_that_look_like_markers_round_trip(tmp_path):
    obj = {
        "__dtype__": "float32",
        "__tuple__": [1, 2],
        "__items__": 3,
        "__device__": "cpu",
        "__tensor__": "t0",
        "kind": "nx",
        "nested": [{"__dtype__": "load"}, {"__tuple__": (1,)}, {"__tensor__": torch.ones(2), "kind": "numpy"}],
        "__future_marker__": {"x": 1},
        "w": torch.ones(2),
    }
    nx.save(obj, tmp_path / "ck.safetensors")
    _assert_same(obj, nx.load(tmp_path / "ck.safetensors"))


def _craft(path, structure: str, tensors=None, header_extra=None):
    """A file as nx.save writes it, but with any structure JSON, and a digest that matches it."""
    tensors = {"t0": torch.arange(3.0), "t1": torch.ones(2, dtype=torch.bfloat16)} if tensors is None else tensors
    meta = {"format": ser.FORMAT, "neuronix.structure": structure, "neuronix.sha256": ser._digest(structure, tensors)}
    path.write_bytes(st_save(tensors, metadata=meta))


def test_crafted_valid_structure_loads(tmp_path):
    structure = {"a": {"__tensor__": "t0", "kind": "nx"}, "d": {"__dtype__": "bfloat16"}, "v": {"__device__": "cuda:1"}}
    _craft(tmp_path / "ok", json.dumps(structure))
    back = nx.load(tmp_path / "ok")
    assert torch.equal(back["a"].data, torch.arange(3.0)) and back["d"] is torch.bfloat16 and back["v"] == torch.device("cuda", 1)


_BAD_STRUCTURES = {
    "torch.load via dtype": ('{"__dtype__": "load"}', "__dtype__ 'load' is not one of the dtypes"),
    "torch.save via dtype": ('{"__dtype__": "save"}', "not one of the dtypes"),
    "class via dtype": ('{"__dtype__": "Tensor"}', "not one of the dtypes"),
    "dunder via dtype": ('{"__dtype__": "__builtins__"}', "not one of the dtypes"),
    "dtype not a string": ('{"__dtype__": 5}', "not one of the dtypes"),
    "dtype a list": ('{"__dtype__": ["float32"]}', "not one of the dtypes"),
    "bad device": ('{"__device__": "nonsense"}', "is not a device"),
    "device int": ('{"__device__": 3}', "is not a device"),
    "device negative index": ('{"__device__": "cuda:-1"}', "is not a device"),
    "missing tensor": ('{"__tensor__": "t9", "kind": "torch"}', "names no tensor"),
    "tensor key a list": ('{"__tensor__": ["t0"], "kind": "torch"}', "names no tensor"),
    "tensor without kind": ('{"__tensor__": "t0"}', "exactly the keys"),
    "unknown tensor kind": ('{"__tensor__": "t0", "kind": "pickle"}', "tensor kind 'pickle'"),
    "bfloat16 as numpy": ('{"__tensor__": "t1", "kind": "numpy"}', "numpy does not have"),
    "tuple of int": ('{"__tuple__": 5}', "expected a list"),
    "tuple with extra key": ('{"__tuple__": [1], "x": 2}', "exactly the keys"),
    "two markers": ('{"__tuple__": [1], "__items__": []}', "exactly the keys"),
    "items not a list": ('{"__items__": {"a": 1}}', "expected a list of"),
    "items not pairs": ('{"__items__": [1, 2]}', "expected a \\[key, value\\] pair"),
    "items triple": ('{"__items__": [[1, 2, 3]]}', "expected a \\[key, value\\] pair"),
    "items list key": ('{"__items__": [[[1], 2]]}', "a key is a str"),
    "items dict key": ('{"__items__": [[{"a": 1}, 2]]}', "a key is a str"),
    "deep lists": ("[" * 150 + "]" * 150, "nested more than"),
    "deep dicts": ('{"a": ' * 150 + "1" + "}" * 150, "nested more than"),
    "deep tuples": ('{"__tuple__": [' * 150 + "]}" * 150, "nested more than"),
    "very deep lists": ("[" * 100_000 + "]" * 100_000, "malformed"),
    "complex of a 1-d float32": (
        '{"__tensor__": "t0", "kind": "torch", "dtype": "complex64"}',
        "stored as torch.float32 .* trailing",
    ),
    "complex of the wrong parts": ('{"__tensor__": "t0", "kind": "torch", "dtype": "complex128"}', "stored as torch.float64"),
    "complex of bfloat16": ('{"__tensor__": "t1", "kind": "torch", "dtype": "complex32"}', "stored as torch.float16"),
    "encoded as a plain dtype": ('{"__tensor__": "t0", "kind": "torch", "dtype": "float32"}', "not one of the encoded dtypes"),
    "encoded as torch.load": ('{"__tensor__": "t0", "kind": "torch", "dtype": "load"}', "not one of the encoded dtypes"),
    "encoded dtype not a string": ('{"__tensor__": "t0", "kind": "torch", "dtype": 5}', "not one of the encoded dtypes"),
    "tensor with an unknown key": ('{"__tensor__": "t0", "kind": "torch", "complex": "complex64"}', "exactly the keys"),
    "empty": ("", "malformed"),
    "not json": ("not json", "malformed"),
    "unclosed": ("[1, 2", "malformed"),
}


@pytest.mark.parametrize("name", list(_BAD_STRUCTURES))
def test_malformed_structure_raises_checkpoint_error(tmp_path, name):
    structure, message = _BAD_STRUCTURES[name]
    _craft(tmp_path / "bad", structure)
    with pytest.raises(CheckpointError, match=message):
        nx.load(tmp_path / "bad")


def _header_file(header: bytes, n: int | None = None, body: bytes = b"") -> bytes:
    return (len(header) if n is None else n).to_bytes(8, "little") + header + body


_BAD_HEADERS = {
    "empty": (b"", "too short"),
    "3 bytes": (b"\x10\x00\x00", "too short"),
    "8 bytes": ((64).to_bytes(8, "little"), "too short"),
    "huge length": (_header_file(b"{}", n=2**64 - 1), "above safetensors' limit"),
    "2**40 length": (_header_file(b"{}", n=2**40), "above safetensors' limit"),
    "length past the end": (_header_file(b"{}", n=1000), "truncated"),
    "not json": (_header_file(b"{garbage"), "not valid JSON"),
    "not utf-8": (_header_file(b'{"\xff": 1}'), "not valid JSON"),
    "utf-16 looking": (_header_file('{"a": 1}'.encode("utf-16-le")), "not valid JSON"),
    "deep nesting": (_header_file(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "not valid JSON"),
    "no brace": (_header_file(b'["__metadata__"]'), "byte 8"),
    "metadata a list": (_header_file(b'{"__metadata__": [1]}'), "__metadata__ is not an object of strings"),
    "metadata int values": (_header_file(b'{"__metadata__": {"format": 1}}'), "__metadata__ is not an object of strings"),
    "tensor entry not an object": (_header_file(b'{"t0": 5}'), "a tensor entry has a dtype"),
    "unknown dtype": (_header_file(b'{"t0": {"dtype": "X99", "shape": [1], "data_offsets": [0, 1]}}', body=b"x"), "dtype"),
    "dtype a list": (_header_file(b'{"t0": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}', body=b"xxxx"), "dtype"),
}


@pytest.mark.parametrize("name", list(_BAD_HEADERS))
def test_bad_header_raises_checkpoint_error_from_load_and_metadata(tmp_path, name):
    data, message = _BAD_HEADERS[name]
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(CheckpointError, match=message):
        nx.load(tmp_path / "bad")
    with pytest.raises(CheckpointError, match=message):
        checkpoint_metadata(tmp_path / "bad")


@pytest.mark.parametrize("entry", ['{"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}', '{"dtype": "F32", "shape": [1]}'])
def test_tensor_entry_inconsistent_with_its_data_raises_checkpoint_error(tmp_path, entry):
    meta = json.dumps({"format": ser.FORMAT, "neuronix.structure": "[]", "neuronix.sha256": "0"})
    (tmp_path / "bad").write_bytes(_header_file(f'{{"__metadata__": {meta}, "t0": {entry}}}'.encode(), body=b"xxxx"))
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        nx.load(tmp_path / "bad")


def test_save_refuses_too_deep_or_self_containing_structures(tmp_path):
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested more than .* a container hold itself"):
        nx.save(loop, tmp_path / "ck.safetensors")
    deep = 1
    for _ in range(ser._MAX_DEPTH):
        deep = [deep]
    nx.save(deep, tmp_path / "ck.safetensors")
    assert nx.load(tmp_path / "ck.safetensors") == deep


_ALLOWED_LEAVES = (type(None), bool, int, float, str, torch.Tensor, nx.Tensor, np.ndarray, torch.device)


def _only_allowlisted(obj):
    if isinstance(obj, (list, tuple)):
        return all(_only_allowlisted(v) for v in obj)
    if isinstance(obj, dict):
        return all(_only_allowlisted(k) and _only_allowlisted(v) for k, v in obj.items())
    if isinstance(obj, torch.dtype):
        return obj in ser._DTYPE_NAMES
    return type(obj) in _ALLOWED_LEAVES


def _random_node(rng, depth=0):
    r = rng.random()
    if depth > 4 or r < 0.3:
        atoms = [None, True, 0, -1, 1.5, "x", "t0", "t1", "t2", "t9", "float32", "load", "cpu", "cuda:0", "numpy", "nx", "torch"]
        atoms += ["complex64", "complex128", "complex32", "float8_e8m0fnu"]
        return rng.choice(atoms + [[], {}])
    if r < 0.45:
        return [_random_node(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if r < 0.55:
        return [[_random_node(rng, depth + 1), _random_node(rng, depth + 1)] for _ in range(rng.randint(0, 2))]
    keys = ["__tensor__", "kind", "dtype", "__tuple__", "__items__", "__dtype__", "__device__", "a", "__x__"]
    return {k: _random_node(rng, depth + 1) for k in rng.sample(keys, rng.randint(1, 3))}


def test_fuzz_crafted_structures_load_allowlisted_objects_or_raise(tmp_path, no_fsync):
    rng, loaded, refused = random.Random(1), 0, 0
    tensors = {"t0": torch.arange(3.0), "t1": torch.ones(2, dtype=torch.bfloat16), "t2": torch.ones(2, 2, dtype=torch.float64)}
    for _ in range(1500):
        _craft(tmp_path / "f", json.dumps(_random_node(rng)), tensors)
        try:
            obj = nx.load(tmp_path / "f")
        except CheckpointError:
            refused += 1
        else:
            loaded += 1
            assert _only_allowlisted(obj), obj
    assert loaded > 100 and refused > 100, (loaded, refused)


def test_fuzz_mutated_and_truncated_files_load_correctly_or_raise(tmp_path, no_fsync):
    good = tmp_path / "good"
    obj = {"model": {"w": torch.randn(3, 2), "b": torch.zeros(2, dtype=torch.float64)}, "step": (3, "x"), 7: [None, 1.5]}
    nx.save(obj, good)
    data = good.read_bytes()
    rng, outcomes = random.Random(2), {"same": 0, "refused": 0}
    for i in range(1500):
        bad = bytearray(data)
        how = i % 4
        if how == 0:  # flip a few bytes anywhere
            for _ in range(rng.randint(1, 3)):
                bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        elif how == 1:  # truncate
            bad = bad[: rng.randrange(len(bad))]
        elif how == 2:  # random bytes in the header
            j = rng.randrange(8, 8 + _header_length(good))
            bad[j : j + rng.randint(1, 4)] = os.urandom(rng.randint(0, 4))
        else:  # another header length
            bad[:8] = rng.choice([rng.randrange(2**64), rng.randrange(2**16), len(bad) - 8]).to_bytes(8, "little")
        (tmp_path / "f").write_bytes(bytes(bad))
        try:
            checkpoint_metadata(tmp_path / "f")
        except CheckpointError:
            pass
        try:
            back = nx.load(tmp_path / "f")
        except CheckpointError:
            outcomes["refused"] += 1
        else:
            _assert_same(obj, back)
            outcomes["same"] += 1
    assert outcomes["refused"] > 1000, outcomes


# ----- item 19: importing neuronix needs no safetensors (it is imported when saving/loading) -----
def test_import_and_backward_without_safetensors():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'safetensors':\n"
        "            raise ImportError('safetensors blocked by the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import neuronix as nx\n"
        "x = nx.tensor([3.0], requires_grad=True)\n"
        "(x * x).sum().backward()\n"
        "assert x.grad.tolist() == [6.0], x.grad\n"
        "assert 'safetensors' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ----- file objects (SPEC: nx.save(obj, path_or_file)) ------------------------------------------
def test_bytesio_round_trip_is_the_same_file_as_a_path(tmp_path):
    obj = _checkpoint()
    buf = io.BytesIO()
    nx.save(obj, buf)
    buf.seek(0)
    _assert_same(obj, nx.load(buf))
    assert buf.tell() == len(buf.getvalue())  # load read it to the end
    # the same format as a file: the bytes read as a path, and the path's bytes read as a stream
    (tmp_path / "from_buf.safetensors").write_bytes(buf.getvalue())
    _assert_same(obj, nx.load(tmp_path / "from_buf.safetensors"))
    nx.save(obj, tmp_path / "ck.safetensors")
    _assert_same(obj, nx.load(io.BytesIO((tmp_path / "ck.safetensors").read_bytes())))
    assert checkpoint_metadata(io.BytesIO(buf.getvalue()))["format"] == ser.FORMAT


def test_open_files_and_path_types(tmp_path):
    obj = {"w": torch.randn(3, 4), "step": 7, "nested": [{"b": torch.zeros(2, dtype=torch.int64)}, (1, "x")]}
    path = tmp_path / "ck.safetensors"
    with open(path, "wb") as fh:
        nx.save(obj, fh)
        assert not fh.closed  # the caller's file: left open
    with open(path, "rb") as fh:
        _assert_same(obj, nx.load(fh))
    with open(path, "rb") as fh:
        assert checkpoint_metadata(fh)["neuronix.version"] == nx.__version__
    with open(path, "rb", buffering=0) as fh:  # a raw file: read() is readall()
        _assert_same(obj, nx.load(fh))
    with open(tmp_path / "raw", "wb", buffering=0) as fh:
        nx.save(obj, fh)
    _assert_same(obj, nx.load(tmp_path / "raw"))
    for f in (str(path), os.fsencode(path), path):  # str, bytes, os.PathLike
        nx.save(obj, f)
        _assert_same(obj, nx.load(f))
    assert sorted(os.listdir(tmp_path)) == ["ck.safetensors", "raw"]


def test_file_object_is_written_with_one_write_and_flushed():
    class Writer:  # the minimal file-like: write() returning None, as many do
        def __init__(self):
            self.calls, self.flushed = [], 0

        def write(self, data):
            self.calls.append(bytes(data))

        def flush(self):
            self.flushed += 1

    w = Writer()
    nx.save({"w": torch.ones(1000)}, w)
    assert len(w.calls) == 1 and w.flushed == 1
    _assert_same({"w": torch.ones(1000)}, nx.load(io.BytesIO(w.calls[0])))


def test_short_writes_of_a_raw_stream_are_completed():
    class ShortWriter(io.RawIOBase):  # a raw stream that takes at most 100 bytes a call
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, b):
            chunk = bytes(b[:100])
            self.data += chunk
            return len(chunk)

    w = ShortWriter()
    obj = {"w": torch.arange(500.0)}
    nx.save(obj, w)
    _assert_same(obj, nx.load(io.BytesIO(bytes(w.data))))


def test_load_reads_from_the_current_position():
    buf = io.BytesIO()
    buf.write(b"prefix of the caller")
    nx.save({"a": torch.ones(2)}, buf)
    buf.seek(len(b"prefix of the caller"))
    _assert_same({"a": torch.ones(2)}, nx.load(buf))


@pytest.mark.parametrize("keep", [0, 5, 8, 9, 20, "half", -1])
def test_truncated_bytesio_raises_checkpoint_error(keep):
    buf = io.BytesIO()
    nx.save(_checkpoint(), buf)
    data = buf.getvalue()
    n = len(data) // 2 if keep == "half" else (len(data) + keep if keep < 0 else keep)
    with pytest.raises(CheckpointError, match=r"nx\.load\(<BytesIO>\).*(truncated|too short)"):
        nx.load(io.BytesIO(data[:n]))
    if keep != -1:  # the header is whole in a file cut only at its end
        with pytest.raises(CheckpointError, match="truncated|too short"):
            checkpoint_metadata(io.BytesIO(data[:n]))


def test_foreign_streams_are_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(CheckpointError, match="pickle.*never unpickles"):
        nx.load(io.BytesIO(pickle.dumps(_Exploit(str(marker)), protocol=2)))
    assert not marker.exists()
    zipped = io.BytesIO()
    torch.save({"w": torch.ones(2)}, zipped)
    zipped.seek(0)
    with pytest.raises(CheckpointError, match="zip archive"):
        nx.load(zipped)
    with pytest.raises(CheckpointError):
        nx.load(io.BytesIO(os.urandom(4096)))


def test_bad_file_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="path .* or a binary file object with write"):
        nx.save({}, object())
    with pytest.raises(TypeError, match="path .* or a binary file object with read"):
        nx.load(42)
    with open(tmp_path / "t.txt", "w") as fh, pytest.raises(TypeError, match="text-mode file.*'wb'"):
        nx.save({}, fh)
    (tmp_path / "t.txt").write_bytes(b"x" * 20)
    with open(tmp_path / "t.txt") as fh, pytest.raises(TypeError, match="text-mode file.*'rb'"):
        nx.load(fh)
    buf = io.BytesIO()
    with pytest.raises(TypeError, match=r"cannot store object at obj\.bad"):
        nx.save({"ok": torch.ones(2), "bad": object()}, buf)
    assert buf.getvalue() == b""  # nothing written before the object was known to be storable


# ----- every tensor dtype: bit-exact round trip, or a clear error before writing -----------------
_ALL_DTYPES = sorted({v for v in vars(torch).values() if isinstance(v, torch.dtype)}, key=str)
_MUST_ROUND_TRIP = {
    *(torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64),
    *(torch.float16, torch.bfloat16, torch.float32, torch.float64),
    *(torch.complex32, torch.complex64, torch.complex128),
    *(getattr(torch, n) for n in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz") if hasattr(torch, n)),
    *(getattr(torch, n) for n in ("uint16", "uint32", "uint64", "float8_e8m0fnu", "float4_e2m1fn_x2") if hasattr(torch, n)),
}


def _random_bits(dtype, shape):
    """A tensor of ``dtype`` with random bits (NaN payloads, -0.0, subnormals...): exactness is bit-exactness."""
    n = math.prod(shape)
    if dtype == torch.bool:  # only 0 and 1 are bools
        return torch.randint(0, 2, shape, dtype=torch.bool)
    size = torch.empty((), dtype=dtype).element_size()
    return torch.randint(0, 256, (max(n, 1) * size,), dtype=torch.uint8).view(dtype)[:n].reshape(shape)


def _bits(t):
    return t.reshape(-1).view(torch.uint8)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental", "ignore:.*quantized tensor creation functions")
@pytest.mark.parametrize("dtype", _ALL_DTYPES, ids=str)
def test_every_dtype_round_trips_exactly_or_fails_clearly(tmp_path, dtype):
    if dtype in _MUST_ROUND_TRIP:
        obj = {"x": [0, _random_bits(dtype, (3, 5))], "s": _random_bits(dtype, ()), "e": torch.empty(0, 2, dtype=dtype)}
        obj["nx"] = nx.Tensor(_random_bits(dtype, (4,)))
        nx.save(obj, tmp_path / "ck.safetensors")
        back = nx.load(tmp_path / "ck.safetensors")
        for got, want in (
            (back["x"][1], obj["x"][1]),
            (back["s"], obj["s"]),
            (back["e"], obj["e"]),
            (back["nx"].data, obj["nx"].data),
        ):
            assert got.dtype == dtype and got.shape == want.shape and torch.equal(_bits(got), _bits(want))
        assert isinstance(back["nx"], nx.Tensor)
        return
    try:
        t = torch.empty(2, dtype=dtype)
    except (RuntimeError, TypeError):
        pytest.skip(f"this torch cannot make a {dtype} tensor")
    with pytest.raises(
        TypeError, match=rf"at obj\.x\[1\]: its dtype {re.escape(str(dtype))} .* storable tensor dtypes: .*complex128"
    ):
        nx.save({"x": [0, t]}, tmp_path / "ck.safetensors")
    assert not (tmp_path / "ck.safetensors").exists()


def test_complex_views_and_numpy_complex_round_trip(tmp_path):
    z = torch.randn(3, dtype=torch.complex128)
    obj = {
        "conj": z.conj(),  # a lazily conjugated view: stored as the values it shows
        "neg": z.conj().imag,  # a lazily negated view
        "strided": torch.randn(4, 6, dtype=torch.complex64)[:, ::2].t(),
        "np64": np.array([1 + 2j, -0.0 - 1j], dtype=np.complex64),
        "np128": np.array([[np.nan + 1j, np.inf - 3j]]),
        "scalar": np.complex128(1 - 1j),  # a numpy scalar becomes a Python complex: not storable
    }
    with pytest.raises(TypeError, match=r"cannot store complex at obj\.scalar"):
        nx.save(obj, tmp_path / "ck.safetensors")
    del obj["scalar"]
    nx.save(obj, tmp_path / "ck.safetensors")
    back = nx.load(tmp_path / "ck.safetensors")
    assert (
        torch.equal(back["conj"], z.conj()) and torch.equal(back["neg"], -z.imag) and torch.equal(back["strided"], obj["strided"])
    )
    for k in ("np64", "np128"):
        assert back[k].dtype == obj[k].dtype and np.array_equal(back[k], obj[k], equal_nan=True)
    assert not (back["conj"].is_conj() or back["neg"].is_neg())


def test_complex_is_stored_as_its_real_view(tmp_path):
    from safetensors.torch import load_file

    z = torch.randn(2, 3, dtype=torch.complex128)
    nx.save({"z": z}, tmp_path / "ck.safetensors")
    (stored,) = load_file(tmp_path / "ck.safetensors").values()  # what any safetensors reader sees
    assert stored.dtype == torch.float64 and torch.equal(stored, torch.view_as_real(z))
    from safetensors import safe_open

    with safe_open(tmp_path / "ck.safetensors", "pt") as fh:
        structure = json.loads(fh.metadata()["neuronix.structure"])
    assert structure == {"z": {"__tensor__": "t0", "kind": "torch", "dtype": "complex128"}}


def test_unstorable_tensors_fail_clearly(tmp_path):
    cases = {
        "sparse": (torch.randn(3).to_sparse(), r"torch\.sparse_coo tensor at obj\.sparse.*dense"),
        "meta": (torch.empty(3, device="meta"), r"meta tensor at obj\.meta: it has no data"),
        "strings": (np.array(["a", "b"]), r"numpy array at obj\.strings: torch has no dtype for numpy's <U1"),
        "objects": (np.array([None, 1]), r"numpy array at obj\.objects: torch has no dtype for numpy's object"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(TypeError, match=message):
            nx.save({key: value}, tmp_path / "ck.safetensors")
    assert os.listdir(tmp_path) == []


def test_crafted_encoded_tensors_load(tmp_path):
    pairs = torch.randn(2, 2, dtype=torch.float64)
    structure = {"z": {"__tensor__": "t0", "kind": "nx", "dtype": "complex128"}}
    _craft(tmp_path / "ok", json.dumps(structure), {"t0": pairs})
    back = nx.load(tmp_path / "ok")
    assert isinstance(back["z"], nx.Tensor) and torch.equal(back["z"].data, torch.view_as_complex(pairs))


def test_complex64_stored_natively_by_earlier_versions_loads(tmp_path):
    z = torch.randn(3, dtype=torch.complex64)
    try:
        _craft(tmp_path / "old", '{"z": {"__tensor__": "t0", "kind": "torch"}}', {"t0": z})
    except (KeyError, ValueError, TypeError):
        pytest.skip("this safetensors has no C64")
    assert torch.equal(nx.load(tmp_path / "old")["z"], z)
