"""``nx.save`` / ``nx.load``: checkpoints as safetensors files, never pickle.

A checkpoint is any nesting of dicts, lists and tuples whose leaves are tensors
(``torch.Tensor``, ``nx.Tensor``, numpy arrays) or plain JSON values (``None``, bools,
ints, floats, strings), plus ``torch.dtype`` / ``torch.device``. ``save`` splits it in two:

* every tensor goes into the safetensors body under a generated key (``t0``, ``t1``...);
* the structure, with each tensor replaced by a reference to its key, is JSON in the
  header's ``__metadata__`` (``neuronix.structure``), beside the neuronix and torch
  versions and a SHA-256 digest of the structure and the tensor bytes.

Loading parses that JSON and the safetensors header only; nothing in the file is ever
executed, so an untrusted checkpoint cannot run code. A truncated or corrupted file
(checked against the digest) or a file in another format (``torch.save``'s zip/pickle)
raises ``CheckpointError`` that says what is wrong.

Writes are atomic: the file is written to a temporary name in the same directory,
flushed to disk (``fsync``), renamed over the target (``os.replace``) and the directory
entry is flushed too, so a crash at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from neuronix.tensor import Tensor

FORMAT = "neuronix-checkpoint/1"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


class CheckpointError(RuntimeError):
    """A file that ``nx.load`` refuses: not a neuronix checkpoint, truncated or corrupted."""


# ----- structure <-> JSON ----------------------------------------------------------------
def _flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """``obj`` as JSON-able data, moving every tensor into ``tensors``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Tensor):
        return {"__tensor__": _store(obj.data, tensors), "kind": "nx"}
    if isinstance(obj, torch.Tensor):
        return {"__tensor__": _store(obj, tensors), "kind": "torch"}
    if isinstance(obj, np.ndarray):
        return {"__tensor__": _store(torch.from_numpy(np.ascontiguousarray(obj)), tensors), "kind": "numpy"}
    if isinstance(obj, np.generic):
        return _flatten(obj.item(), tensors, path)
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    if isinstance(obj, torch.device):
        return {"__device__": str(obj)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and "__tensor__" not in obj:
            return {k: _flatten(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        # JSON objects only have string keys: keep other keys (optimizer state's ints) as pairs
        return {"__items__": [[_key(k, path), _flatten(v, tensors, f"{path}[{k!r}]")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, f"{path}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"nx.save: cannot store {type(obj).__name__} at {path}; a checkpoint holds dicts, lists, tuples, tensors "
        "(torch, nx, numpy), None, bool, int, float, str, torch.dtype and torch.device"
    )


def _key(k: Any, path: str) -> Any:
    if k is None or isinstance(k, (bool, int, float, str)):
        return k
    raise TypeError(f"nx.save: dict key {k!r} ({type(k).__name__}) at {path} is not a str, int, float, bool or None")


def _store(t: torch.Tensor, tensors: dict[str, torch.Tensor]) -> str:
    key = f"t{len(tensors)}"
    # safetensors refuses tensors that share memory and needs dense data: give each its own copy
    tensors[key] = t.detach().to("cpu", copy=True).contiguous()
    return key


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor], map_location) -> Any:
    if isinstance(obj, list):
        return [_unflatten(v, tensors, map_location) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        t = tensors[obj["__tensor__"]]
        if obj["kind"] == "numpy":
            return t.numpy()
        if map_location is not None:
            t = t.to(map_location)
        return Tensor(t) if obj["kind"] == "nx" else t
    if "__tuple__" in obj:
        return tuple(_unflatten(v, tensors, map_location) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: _unflatten(v, tensors, map_location) for k, v in obj["__items__"]}
    if "__dtype__" in obj:
        return getattr(torch, obj["__dtype__"])
    if "__device__" in obj:
        return torch.device(obj["__device__"])
    return {k: _unflatten(v, tensors, map_location) for k, v in obj.items()}


def _digest(structure: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(structure.encode())
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


# ----- public API ------------------------------------------------------------------------
def save(obj: Any, f: str | os.PathLike) -> None:
    """Save ``obj`` (e.g. a ``state_dict``, or a dict of them) to the safetensors file ``f``, atomically.

    Mirrors ``torch.save(obj, f)`` for checkpoint-shaped objects, without pickle.
    """
    path = os.fspath(f)
    tensors: dict[str, torch.Tensor] = {}
    structure = json.dumps(_flatten(obj, tensors, "obj"), allow_nan=True)
    import neuronix

    metadata = {
        "format": FORMAT,
        "neuronix.version": neuronix.__version__,
        "torch.version": torch.__version__,
        "neuronix.structure": structure,
        "neuronix.sha256": _digest(structure, tensors),
    }
    payload = _st_save(tensors, metadata=metadata)
    _write_atomic(path, payload)


def _write_atomic(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    # the rename lives in the directory entry: flush it too, or a crash may forget it
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _describe_foreign(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (the format of torch.save)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (the legacy format of torch.save)"
    return None


def load(f: str | os.PathLike, map_location=None) -> Any:
    """Load an object saved with ``nx.save``; tensors come back as they went in (torch, nx or numpy).

    ``map_location`` (a device or device string) moves every tensor there, as in ``torch.load``.
    Raises ``CheckpointError`` for anything that is not an intact neuronix checkpoint; no code
    from the file is ever run.
    """
    path = os.fspath(f)
    with open(path, "rb") as fh:
        data = fh.read()
    where = f"nx.load({path!r})"
    foreign = _describe_foreign(data[:8])
    if foreign:
        raise CheckpointError(
            f"{where}: the file is {foreign}, not a safetensors checkpoint; nx.load never unpickles "
            "(that could run code from the file). Load it with torch.load(..., weights_only=True) and re-save with nx.save"
        )
    if len(data) < 8:
        raise CheckpointError(f"{where}: the file has {len(data)} bytes, too short for a safetensors header (truncated?)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER or 8 + header_len > len(data):
        raise CheckpointError(
            f"{where}: the header claims {header_len} bytes but the file has {len(data)}: "
            "it is truncated or is not a safetensors file"
        )
    try:
        header = json.loads(data[8 : 8 + header_len])
        metadata = header.get("__metadata__") or {}
    except (ValueError, AttributeError) as e:
        raise CheckpointError(f"{where}: the safetensors header is not valid JSON ({e}); the file is corrupted") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{where}: a safetensors file without neuronix checkpoint metadata (format={metadata.get('format')!r}, "
            f"expected {FORMAT!r}); for plain safetensors weights use safetensors.torch.load_file"
        )
    try:
        tensors = _st_load(data)
    except SafetensorError as e:
        raise CheckpointError(f"{where}: the file is truncated or corrupted: {e}") from None
    structure = metadata.get("neuronix.structure", "")
    if _digest(structure, tensors) != metadata.get("neuronix.sha256"):
        raise CheckpointError(
            f"{where}: checksum mismatch: the tensor data or structure does not match the SHA-256 recorded "
            "when it was saved; the file is corrupted"
        )
    try:
        return _unflatten(json.loads(structure), tensors, map_location)
    except (ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{where}: the structure metadata is corrupted ({e!r})") from None


def checkpoint_metadata(f: str | os.PathLike) -> dict[str, str]:
    """The header metadata of a checkpoint (format, neuronix and torch versions), without loading tensors."""
    path = os.fspath(f)
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    meta = dict(header.get("__metadata__") or {})
    meta.pop("neuronix.structure", None)
    return meta
