"""``nx.save`` / ``nx.load``: checkpoints as safetensors files, never pickle.

A checkpoint is any nesting of dicts, lists and tuples whose leaves are tensors
(``torch.Tensor``, ``nx.Tensor``, numpy arrays) or plain JSON values (``None``, bools,
ints, floats, strings), plus ``torch.dtype`` / ``torch.device``. ``save`` splits it in two:

* every tensor goes into the safetensors body under a generated key (``t0``, ``t1``...);
* the structure, with each tensor replaced by a reference to its key, is JSON in the
  header's ``__metadata__`` (``neuronix.structure``), beside the neuronix and torch
  versions and a SHA-256 digest of the structure and the tensor bytes.

Structure encoding. A JSON object in the structure is either a *marker node*, one of

  ``{"__tensor__": key, "kind": "torch"|"nx"|"numpy"}`` (plus ``"dtype": name`` for an encoded
  tensor, below, and ``"device": spec`` for one saved from a device other than the CPU, where
  ``load`` puts it back as ``torch.load`` does), ``{"__tuple__": [...]}``,
  ``{"__items__": [[key, value], ...]}`` (a dict), ``{"__dtype__": name}``, ``{"__device__": spec}``

or a plain dict. A user dict is written as a plain JSON object only when every key is a
string that does not look like a marker (``"__name__"``); any other dict (int keys, or a key
such as ``"__dtype__"``) is written as ``__items__`` pairs, where keys are data and are never
interpreted. So no user key can be mistaken for a marker, now or when markers are added.

Tensor dtypes. A tensor whose dtype safetensors stores (``_ST_CODES``) is stored as it is. One
whose dtype safetensors lacks but that has an exact encoding in one it has (``_ENCODINGS``) is
stored encoded, its node naming the original dtype: complex32/64/128 as their real view
(``torch.view_as_real``: float16/32/64 pairs in a trailing dimension of 2), float8_e8m0fnu and
float4_e2m1fn_x2 as their bytes (uint8, same shape). Both are bit-exact both ways. Any other
dtype (quantized, bits, sub-byte int/uint) makes ``save`` raise a ``TypeError`` naming the key
path, the dtype and the dtypes it can store, before anything is written.

Files and streams. ``f`` is a path (``str``, ``bytes``, ``os.PathLike``) or a binary file object.
A path is written atomically (see ``_write_atomic``); a file object gets the whole file in one
``write()`` call, and its atomicity and durability are the caller's. ``load`` reads a file
object from its current position to its end and checks those bytes exactly as a file's.

Loading parses that JSON and the safetensors header only; nothing in the file is ever
executed, and every object it can produce comes from a closed allowlist: the JSON values,
containers, tensors of the dtypes in ``_TENSOR_DTYPES`` (or decoded per ``_ENCODINGS``),
``torch.dtype`` objects named in ``_DTYPES`` and devices of the types in ``_DEVICE_TYPES``. Anything else in the file — a
truncated or corrupted file (checked against the digest), a malformed structure, a file in
another format (``torch.save``'s zip/pickle) — raises ``CheckpointError`` saying what is wrong.

Format detection is by what a safetensors file *is* (an 8-byte little-endian header length,
then a JSON header that starts with ``{``), never by sniffing magic bytes first: the header
length's low bytes are arbitrary, and 0x80 0x02..0x05 (a pickle's opening) is a header of
640, 896, 1152 or 1408 bytes. Other formats are only named in the error once the file has
failed to be safetensors.

Writes to a path are atomic and leave nothing behind when killed, see ``_write_atomic``.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import os
import re
import struct
from collections.abc import Callable
from typing import IO, Any

import numpy as np
import torch

from neuronix.tensor import Tensor

FORMAT = "neuronix-checkpoint/1"
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
# Far deeper than any state_dict/optimizer/RNG nesting, far below Python's recursion limit:
# save and load both stop here with a clear error instead of a RecursionError.
_MAX_DEPTH = 100


class CheckpointError(RuntimeError):
    """A file that ``nx.load`` refuses: not a neuronix checkpoint, truncated, corrupted or malformed."""


class _Malformed(ValueError):
    """Raised inside the structure decoder; ``load`` turns it into a ``CheckpointError`` naming the file."""


# ----- the closed allowlists ------------------------------------------------------------
# torch.dtype objects a structure may name ({"__dtype__": name}). An explicit table, never
# getattr(torch, name) on a name from the file: that would hand back any torch attribute.
_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex32": torch.complex32,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
    "bool": torch.bool,
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
}
for _name in (
    *("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"),
    *("float8_e8m0fnu", "float4_e2m1fn_x2"),
):
    # newer dtypes, present from some torch version on (this is our own fixed list of names)
    if isinstance(getattr(torch, _name, None), torch.dtype):
        _DTYPES[_name] = getattr(torch, _name)
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}

# torch dtype name -> the safetensors code it is stored as. Our own table, not safetensors' private
# one: it fixes the format, and save and load agree on it whatever safetensors version is installed
# (``_safetensors_round_trips`` checks that this one really writes and reads each code).
_ST_CODES: dict[str, str] = {
    **{"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64"},
    **{"uint16": "U16", "uint32": "U32", "uint64": "U64"},
    **{"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"},
    **{"float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2", "float8_e4m3fnuz": "F8_E4M3FNUZ", "float8_e5m2fnuz": "F8_E5M2FNUZ"},
}
# safetensors dtype codes a tensor in the file may have (checked before safetensors reads it). C64:
# complex64 was stored natively before complex tensors were encoded, and such files still load.
_TENSOR_DTYPES = frozenset(_ST_CODES.values()) | {"C64"}


class _Encoding:
    """How a dtype safetensors lacks is stored, exactly, as a tensor of a dtype it has.

    The stored tensor has dtype ``stored`` and the original's shape plus ``trailing`` dimensions.
    """

    def __init__(self, stored: torch.dtype, trailing: tuple[int, ...], encode: Callable, decode: Callable):
        self.stored, self.trailing, self.encode, self.decode = stored, trailing, encode, decode

    def fits(self, t: torch.Tensor) -> bool:
        """Whether ``t`` (from a file that may be crafted) is something ``encode`` makes, so ``decode`` takes it."""
        k = len(self.trailing)
        return t.dtype == self.stored and t.dim() >= k and tuple(t.shape[t.dim() - k :]) == self.trailing

    def describe(self) -> str:
        return f"{self.stored} with the original shape" + (f" plus trailing dims {self.trailing}" if self.trailing else "")


def _complex(parts: torch.dtype) -> _Encoding:
    # view_as_real/view_as_complex reinterpret the same bytes: every bit (NaN payloads, -0.0) survives
    return _Encoding(parts, (2,), torch.view_as_real, torch.view_as_complex)


def _raw_bytes(dtype: torch.dtype) -> _Encoding:
    return _Encoding(torch.uint8, (), lambda t: t.view(torch.uint8), lambda t: t.view(dtype))


# dtype name -> its encoding, for the dtypes of this torch only (older ones lack the float8/float4 types).
# float8_e8m0fnu and float4_e2m1fn_x2: recent safetensors writes F8_E8M0/F4 but cannot read them back,
# and F4 counts elements differently from torch, so their bytes are stored instead.
_ENCODINGS: dict[str, _Encoding] = {
    "complex32": _complex(torch.float16),
    "complex64": _complex(torch.float32),
    "complex128": _complex(torch.float64),
    **{name: _raw_bytes(_DTYPES[name]) for name in ("float8_e8m0fnu", "float4_e2m1fn_x2") if name in _DTYPES},
}
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "meta", "hpu", "xla", "mtia")
_DEVICE_RE = re.compile(rf"({'|'.join(_DEVICE_TYPES)})(:[0-9]{{1,4}})?")
_TENSOR_KINDS = ("torch", "nx", "numpy")
_MARKERS = {  # marker -> (the keys its node must have, the keys it may have besides)
    "__tensor__": ({"__tensor__", "kind"}, {"dtype", "device"}),
    "__tuple__": ({"__tuple__"}, set()),
    "__items__": ({"__items__"}, set()),
    "__dtype__": ({"__dtype__"}, set()),
    "__device__": ({"__device__"}, set()),
}


def _looks_like_marker(key: str) -> bool:
    # every "__name__" key, not only today's markers: a marker added later cannot collide with a key saved now
    return len(key) >= 4 and key.startswith("__") and key.endswith("__")


# ----- structure -> JSON ------------------------------------------------------------------
def _flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str, depth: int = 0) -> Any:
    """``obj`` as JSON-able data, moving every tensor into ``tensors``."""
    if depth > _MAX_DEPTH:
        raise ValueError(
            f"nx.save: {path} is nested more than {_MAX_DEPTH} containers deep (does a container hold itself?); "
            f"a checkpoint may nest dicts/lists/tuples at most {_MAX_DEPTH} deep"
        )
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Tensor):
        return _tensor_node(obj.data, "nx", tensors, path)
    if isinstance(obj, torch.Tensor):
        return _tensor_node(obj, "torch", tensors, path)
    if isinstance(obj, np.ndarray):
        try:
            # ascontiguousarray makes a 0-d array 1-d: put the shape back
            t = torch.from_numpy(np.ascontiguousarray(obj)).reshape(obj.shape)
        except TypeError:  # object, str, datetime, longdouble, structured...: torch has no such dtype
            raise TypeError(
                f"nx.save: cannot store the numpy array at {path}: torch has no dtype for numpy's {obj.dtype}; "
                "a checkpoint holds numpy arrays of bool, (u)int8-64, float16/32/64 and complex64/128"
            ) from None
        return _tensor_node(t, "numpy", tensors, path)
    if isinstance(obj, np.generic):
        return _flatten(obj.item(), tensors, path, depth)
    if isinstance(obj, torch.dtype):
        if obj not in _DTYPE_NAMES:
            raise TypeError(f"nx.save: cannot store dtype {obj} at {path}; storable dtypes: {', '.join(_DTYPES)}")
        return {"__dtype__": _DTYPE_NAMES[obj]}
    if isinstance(obj, torch.device):
        if obj.type not in _DEVICE_TYPES:
            raise TypeError(f"nx.save: cannot store device {obj} at {path}; storable device types: {', '.join(_DEVICE_TYPES)}")
        return {"__device__": str(obj)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not _looks_like_marker(k) for k in obj):
            return {k: _flatten(v, tensors, f"{path}.{k}", depth + 1) for k, v in obj.items()}
        # keys that JSON objects cannot hold (optimizer state's ints) or that look like our markers:
        # as [key, value] pairs, where a key is data and never read as a marker
        return {"__items__": [[_key(k, path), _flatten(v, tensors, f"{path}[{k!r}]", depth + 1)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, tensors, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj)]
    if callable(getattr(obj, "state_dict", None)):  # a Module, an optimizer, a scheduler, a GradScaler...
        kind = type(obj).__name__
        name = "model" if callable(getattr(obj, "parameters", None)) else "optimizer" if hasattr(obj, "param_groups") else "obj"
        raise TypeError(
            f"nx.save: cannot store the {kind} object at {path}: a checkpoint holds data, never pickled objects "
            f"(loading one could run code). Save its state instead: nx.save({name}.state_dict(), f), and restore it "
            f"into a new {kind} with {name}.load_state_dict(nx.load(f)); several go in one dict: "
            "nx.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(), 'epoch': epoch}, f)"
        )
    raise TypeError(
        f"nx.save: cannot store {type(obj).__name__} at {path}; a checkpoint holds dicts, lists, tuples, tensors "
        "(torch, nx, numpy), None, bool, int, float, str, torch.dtype and torch.device (for a module or an optimizer, "
        "save its state_dict())"
    )


def _key(k: Any, path: str) -> Any:
    if k is None or isinstance(k, (bool, int, float, str)):
        return k
    raise TypeError(f"nx.save: dict key {k!r} ({type(k).__name__}) at {path} is not a str, int, float, bool or None")


def _storable_dtypes() -> str:
    names = [n for n in _DTYPES if (n in _ST_CODES and _safetensors_round_trips(_DTYPES[n])) or n in _ENCODINGS]
    return ", ".join(names)


@functools.cache
def _safetensors_round_trips(dtype: torch.dtype) -> bool:
    """Whether the installed safetensors writes and reads back ``dtype`` (older versions lack some codes)."""
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save

    try:
        return st_load(st_save({"x": torch.empty(0, dtype=dtype)}))["x"].dtype == dtype
    except Exception:  # KeyError for an unknown dtype, or whatever an older version raises instead
        return False


def _tensor_node(t: torch.Tensor, kind: str, tensors: dict[str, torch.Tensor], path: str) -> dict:
    """The structure node of tensor ``t``, its data (encoded if need be) moved into ``tensors``."""
    # the checks come before any copy, so that an unstorable tensor raises here naming its path,
    # never a KeyError or layout error from inside safetensors
    if t.layout != torch.strided or t.is_nested:
        raise TypeError(
            f"nx.save: cannot store the {'nested' if t.is_nested else t.layout} tensor at {path}; a checkpoint holds "
            "dense (strided) tensors: save t.to_dense() (or its indices and values) instead"
        )
    if t.device.type == "meta":
        raise TypeError(f"nx.save: cannot store the meta tensor at {path}: it has no data (shape {tuple(t.shape)}, {t.dtype})")
    name = _DTYPE_NAMES.get(t.dtype)
    encoding = _ENCODINGS.get(name)
    if encoding is None and not (name in _ST_CODES and _safetensors_round_trips(t.dtype)):
        raise TypeError(
            f"nx.save: cannot store the tensor at {path}: its dtype {t.dtype} has no exact representation in "
            f"safetensors (or the installed safetensors lacks it); storable tensor dtypes: {_storable_dtypes()}"
        )
    # safetensors refuses tensors that share memory and needs dense data: give each its own copy.
    # resolve_conj/resolve_neg: a lazily conjugated/negated view must be stored as the values it
    # shows, not as the memory under it (no-ops where .to already materialised them).
    device = t.device
    t = t.detach().to("cpu", copy=True).resolve_conj().resolve_neg().contiguous()
    node = {"__tensor__": f"t{len(tensors)}", "kind": kind}
    if device.type != "cpu" and kind != "numpy":
        node["device"] = str(device)  # torch.load puts a tensor back where it was saved from
    if encoding is not None:
        t = encoding.encode(t)
        node["dtype"] = name
    tensors[node["__tensor__"]] = t
    return node


# ----- JSON -> structure (every check here is against a crafted file) ----------------------
def _unflatten(node: Any, tensors: dict[str, torch.Tensor], map_location, path: str = "obj", depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise _Malformed(f"{path} is nested more than {_MAX_DEPTH} deep (nx.save never writes deeper)")
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_unflatten(v, tensors, map_location, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
    if not isinstance(node, dict):  # json.loads makes nothing else; kept so the decoder is total
        raise _Malformed(f"{path} is a {type(node).__name__}")
    markers = [k for k in node if k in _MARKERS]
    if not markers:
        return {k: _unflatten(v, tensors, map_location, f"{path}.{k}", depth + 1) for k, v in node.items()}
    marker = markers[0]
    required, optional = _MARKERS[marker]
    if len(markers) > 1 or not required <= set(node) <= required | optional:
        also = f" and may have {sorted(optional)}" if optional else ""
        raise _Malformed(f"{path} has keys {sorted(node)}; a {marker} node has exactly the keys {sorted(required)}{also}")
    value = node[marker]
    if marker == "__tensor__":
        return _load_tensor(value, node["kind"], node.get("dtype"), node.get("device", "cpu"), tensors, map_location, path)
    if marker == "__tuple__":
        if not isinstance(value, list):
            raise _Malformed(f"{path}: __tuple__ holds a {type(value).__name__}, expected a list")
        return tuple(_unflatten(v, tensors, map_location, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
    if marker == "__items__":
        if not isinstance(value, list):
            raise _Malformed(f"{path}: __items__ holds a {type(value).__name__}, expected a list of [key, value] pairs")
        out = {}
        for i, pair in enumerate(value):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _Malformed(f"{path}: __items__[{i}] is {_short(pair)}, expected a [key, value] pair")
            k = pair[0]
            if not (k is None or isinstance(k, (bool, int, float, str))):
                raise _Malformed(f"{path}: __items__[{i}] has key {_short(k)}; a key is a str, int, float, bool or null")
            out[k] = _unflatten(pair[1], tensors, map_location, f"{path}[{k!r}]", depth + 1)
        return out
    if marker == "__dtype__":
        if not isinstance(value, str) or value not in _DTYPES:
            raise _Malformed(f"{path}: __dtype__ {_short(value)} is not one of the dtypes {', '.join(_DTYPES)}")
        return _DTYPES[value]
    # __device__
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        raise _Malformed(
            f"{path}: __device__ {_short(value)} is not a device such as 'cpu' or 'cuda:0' (types {', '.join(_DEVICE_TYPES)})"
        )
    try:
        return torch.device(value)
    except RuntimeError as e:  # a device type this torch build does not know
        raise _Malformed(f"{path}: __device__ {value!r}: {e}") from None


def _load_tensor(key: Any, kind: Any, dtype: Any, device: Any, tensors: dict[str, torch.Tensor], map_location, path: str):
    if not isinstance(key, str) or key not in tensors:
        raise _Malformed(f"{path}: __tensor__ {_short(key)} names no tensor of the file (it has {len(tensors)})")
    if kind not in _TENSOR_KINDS:
        raise _Malformed(f"{path}: tensor kind {_short(kind)} is not one of {', '.join(_TENSOR_KINDS)}")
    t = tensors[key]
    if dtype is not None:  # an encoded tensor: decode it, after checking it is what that encoding stores
        encoding = _ENCODINGS.get(dtype) if isinstance(dtype, str) else None
        if encoding is None:
            raise _Malformed(f"{path}: tensor dtype {_short(dtype)} is not one of the encoded dtypes {', '.join(_ENCODINGS)}")
        if not encoding.fits(t):
            raise _Malformed(
                f"{path}: a {dtype} tensor is stored as {encoding.describe()}, "
                f"but tensor {key} is {t.dtype} of shape {tuple(t.shape)}"
            )
        t = encoding.decode(t.contiguous())
    if kind == "numpy":
        try:
            return t.numpy()
        except TypeError:
            raise _Malformed(f"{path}: a numpy array of dtype {t.dtype}, which numpy does not have") from None
    if not isinstance(device, str) or not _DEVICE_RE.fullmatch(device):
        raise _Malformed(f"{path}: tensor device {_short(device)} is not a device such as 'cuda:0'")
    t = _located(t, device, map_location, path)
    return Tensor(t) if kind == "nx" else t


def _located(t: torch.Tensor, saved: str, map_location, path: str) -> torch.Tensor:
    """``t`` (read onto the CPU) where ``torch.load`` would put it: its saved device, or per ``map_location``
    (a device or string: every tensor there; a dict: saved location -> location; a callable
    ``(tensor, saved location)`` -> tensor, torch's ``(storage, location)`` form)."""
    target = saved
    if callable(map_location):
        moved = map_location(t, saved)
        if isinstance(moved, Tensor):
            moved = moved.data
        if not isinstance(moved, torch.Tensor):
            raise TypeError(f"nx.load: map_location returned {type(moved).__name__} for {path}, expected the tensor it was given "
                            "(or a copy of it on another device)")
        return moved
    if isinstance(map_location, dict):
        target = map_location.get(saved, saved)
    elif map_location is not None:
        target = map_location
    target = torch.device(target)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"nx.load: {path} was saved from {saved}; attempting to deserialize it on a CUDA device but "
            "torch.cuda.is_available() is False. If you are running on a CPU-only machine, please use nx.load with "
            "map_location=torch.device('cpu') to map your storages to the CPU."
        )
    return t if target.type == "cpu" and target.index in (None, 0) else t.to(target)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _digest(structure: str, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(structure.encode("utf-8", "surrogatepass"))
    for key in sorted(tensors):
        t = tensors[key]
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


# ----- public API ------------------------------------------------------------------------
# what save/load take for f, as torch.save/torch.load
_File = str | bytes | os.PathLike | IO[bytes]


def _is_path(f: Any) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def _file_label(f: Any) -> str:
    name = getattr(f, "name", None)  # an open file's path; BytesIO and most streams have none
    return repr(name) if isinstance(name, (str, bytes)) else f"<{type(f).__name__}>"


def save(obj: Any, f: _File, pickle_module: Any = None, pickle_protocol: Any = None,
         _use_new_zipfile_serialization: bool = True, _disable_byteorder_record: bool = False) -> None:
    """Save ``obj`` (e.g. a ``state_dict``, or a dict of them) as a safetensors checkpoint to ``f``.

    torch's pickle arguments are accepted, so that ``torch.save`` calls port unchanged, and unused:
    nothing is pickled. A ``Module``, an optimizer or any other object that is not data raises a
    ``TypeError`` naming its ``state_dict()``: ``nx.save(model.state_dict(), f)``.

    Mirrors ``torch.save(obj, f)`` for checkpoint-shaped objects, without pickle. ``f`` is a path
    (``str``, ``bytes`` or ``os.PathLike``) or a binary file object with ``write()`` (``io.BytesIO``,
    a file opened ``"wb"``...).

    To a path the write is atomic: readers see the old file or the new one, a killed save leaves
    nothing behind, and the file gets the permissions a plain ``open(f, "wb")`` would give a new
    file (``0o666 & ~umask``). To a file object the whole checkpoint is passed to one ``write()``
    at its current position, then ``flush()`` is called if it has one; it is neither closed nor
    fsync'ed, and atomicity and durability are then the caller's business. In both cases an
    object that cannot be saved raises before anything is written.
    """
    payload = _encode(obj)
    if _is_path(f):
        # fsdecode: a bytes path becomes str, as the temporary-name code builds names as str
        _write_atomic(os.fsdecode(os.fspath(f)), payload)
    else:
        _write_stream(f, payload)


def _write_stream(f: Any, payload: bytes) -> None:
    if not callable(getattr(f, "write", None)):
        raise TypeError(
            f"nx.save: f must be a path (str or os.PathLike) or a binary file object with write(), not {type(f).__name__}"
        )
    if isinstance(f, io.TextIOBase):
        raise TypeError(f"nx.save: {_file_label(f)} is a text-mode file; a checkpoint is binary: open it with mode 'wb'")
    written = f.write(payload)
    # Buffered files and BytesIO write everything (many file-likes return None); only a raw,
    # unbuffered file (open(..., buffering=0)) may write part and return the count: finish the job.
    rest = memoryview(payload)
    while isinstance(written, int) and not isinstance(written, bool) and written < len(rest):
        if written <= 0:
            raise OSError(errno.EIO, f"nx.save: {_file_label(f)}.write() wrote nothing of the {len(rest)} bytes left")
        rest = rest[written:]
        written = f.write(rest)
    if callable(getattr(f, "flush", None)):
        f.flush()


def _encode(obj: Any) -> bytes:
    """The bytes of the checkpoint file for ``obj``."""
    from safetensors.torch import save as st_save  # imported on use: ``import neuronix`` needs no safetensors

    import neuronix

    tensors: dict[str, torch.Tensor] = {}
    structure = json.dumps(_flatten(obj, tensors, "obj"), allow_nan=True)
    metadata = {
        "format": FORMAT,
        "neuronix.version": neuronix.__version__,
        "torch.version": torch.__version__,
        "neuronix.structure": structure,
        "neuronix.sha256": _digest(structure, tensors),
    }
    return st_save(tensors, metadata=metadata)


# ----- atomic writes that leave nothing behind ----------------------------------------------
# Why this design. SIGKILL (OOM killer, a scheduler's preemption, kill -9) runs no handler,
# finally block or atexit, so no cleanup code can remove a half-written temporary file; the
# design must make such a file either impossible or removable later by someone else:
#
# 1. On Linux the data is written to an *unnamed* file, O_TMPFILE, in the target's directory.
#    It has no directory entry, so if the process dies while writing (nearly all the time a
#    save takes) the kernel frees it: nothing is left. Once written and fsync'ed, it is given
#    a temporary name (linkat through /proc/self/fd) and renamed over the target — rename is
#    atomic, so readers see the old file or the new one, never a partial one. linkat cannot
#    replace an existing file, hence the name for the instant between the two calls.
# 2. Where O_TMPFILE is unavailable (other OSes, filesystems without it, no /proc), the data
#    goes to a named temporary file instead, and the name exists for the whole write.
#
# Either way a temporary name can survive a kill, so it is recognisable: ".<target>.nx-partial-
# <host>-<pid>-<random>". Every save to a directory, and every load from it, first removes the
# partial files there whose writer is dead (same host, pid no longer running). Host and pid are
# both in the name so that a writer on another machine sharing the directory (NFS), or a live
# save in another process, is never touched; a pid that was reused keeps its file until that
# process exits too, which is safe (the file is only stale, never read).
_PARTIAL_RE = re.compile(r"\..*\.nx-partial-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{8}", re.DOTALL)
_USE_O_TMPFILE = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _host_tag() -> str:
    return hashlib.sha256(os.uname().nodename.encode() if hasattr(os, "uname") else b"").hexdigest()[:8]


def _partial_name(directory: str, path: str) -> str:
    base = os.path.basename(path)[:64]  # the full name could pass NAME_MAX once the suffix is added
    return os.path.join(directory, f".{base}.nx-partial-{_host_tag()}-{os.getpid()}-{os.urandom(4).hex()}")


def _pid_is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only "does this pid exist"
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, owned by someone else
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def _remove_dead_partials(directory: str) -> None:
    """Remove the partial files in ``directory`` left by saves on this host that were killed."""
    if os.name != "posix":  # os.kill(pid, 0) is no liveness probe elsewhere (on Windows it kills)
        return
    host = _host_tag()
    try:
        with os.scandir(directory) as entries:
            names = [e.name for e in entries if ".nx-partial-" in e.name]
    except OSError:
        return
    for name in names:
        m = _PARTIAL_RE.fullmatch(name)
        if m and m["host"] == host and _pid_is_dead(int(m["pid"])):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:  # already removed by a concurrent save, or a read-only directory
                pass


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _write_unnamed(directory: str, dir_fd: int, partial: str, payload: bytes) -> bool:
    """Write ``payload`` to an O_TMPFILE file and link it as ``partial``; False where that is unsupported."""
    try:
        # mode 0o666 goes through the umask (and default ACLs) exactly as for open(path, "wb")
        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY | _O_CLOEXEC, 0o666)
    except OSError:  # EOPNOTSUPP/EISDIR/EINVAL: no O_TMPFILE here; a real error recurs in the fallback
        return False
    try:
        _write_all(fd, payload)
        try:
            # linkat(AT_FDCWD, "/proc/self/fd/N", dir_fd, name, AT_SYMLINK_FOLLOW): the documented way to
            # name an O_TMPFILE file without privileges. Passing dst_dir_fd makes Python call linkat:
            # with neither dir_fd given it calls link(), which does not follow the /proc link (EXDEV).
            os.link(f"/proc/self/fd/{fd}", os.path.basename(partial), dst_dir_fd=dir_fd, follow_symlinks=True)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            return False  # linkat through /proc refused here: use the named file instead
    finally:
        os.close(fd)
    return True


def _write_atomic(path: str, payload: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    _remove_dead_partials(directory)
    partial = _partial_name(directory, path)
    dir_fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        try:
            if not (_USE_O_TMPFILE and _write_unnamed(directory, dir_fd, partial, payload)):
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o666)
                try:
                    _write_all(fd, payload)
                finally:
                    os.close(fd)
            os.replace(partial, path)
        except BaseException:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            raise
        # the rename lives in the directory entry: flush it too, or a crash may forget it
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# ----- reading ---------------------------------------------------------------------------
def _describe_foreign(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (the format of torch.save)"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (the legacy format of torch.save)"
    return None


def _read_header(fh, size: int | None, where: str) -> tuple[int, dict, dict[str, str]]:
    """(header length, header, metadata) of the safetensors file open as ``fh`` (``size`` bytes long).

    The file is recognised by what a safetensors file is: 8 bytes of little-endian header
    length ``n`` with ``8 + n`` within the file, then ``n`` bytes of JSON starting with ``{``.
    ``size`` None: ``fh`` is a stream of unknown length, read from its current position.
    """
    head = _read_exactly(fh, 9, where)
    if len(head) < 9:
        raise CheckpointError(
            f"{where}: the file has {len(head) if size is None else size} bytes, too short for a safetensors checkpoint "
            "(an 8-byte header length, then a JSON header); it is truncated or not a checkpoint"
        )
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or n > _MAX_HEADER:
        # not safetensors: only now say what it may be instead
        foreign = _describe_foreign(head)
        if foreign:
            raise CheckpointError(
                f"{where}: the file is {foreign}, not a safetensors checkpoint; nx.load never unpickles "
                "(that could run code from the file). Load it with torch.load(..., weights_only=True) and re-save with nx.save"
            )
        if head[8:9] != b"{":
            raise CheckpointError(
                f"{where}: not a safetensors file: byte 8 is {head[8:9]!r}, but a safetensors file has its JSON header "
                "there, starting with b'{'; the file is corrupted or in another format"
            )
        raise CheckpointError(
            f"{where}: the header length field says {n} bytes, above safetensors' limit of {_MAX_HEADER}; "
            "the file is corrupted or not a safetensors file"
        )
    if size is not None and 8 + n > size:
        raise CheckpointError(
            f"{where}: the header claims {n} bytes but the file has {size}: it is truncated (or not a safetensors file)"
        )
    raw = head[8:] + _read_exactly(fh, n - 1, where)
    if len(raw) < n:  # only for a stream: a file's size was checked above
        raise CheckpointError(
            f"{where}: the header claims {n} bytes but the stream ends after {len(raw)}: "
            "it is truncated (or not a safetensors file)"
        )
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(f"{where}: the safetensors header is not valid JSON ({_short(e)}); the file is corrupted") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: the safetensors header is a JSON {type(header).__name__}, expected an object")
    metadata = header.get("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise CheckpointError(f"{where}: the header's __metadata__ is not an object of strings; the file is corrupted")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if not (isinstance(dtype, str) and dtype in _TENSOR_DTYPES):
            raise CheckpointError(
                f"{where}: header entry {_short(name)} is {_short(entry)}; a tensor entry has a dtype among "
                f"{', '.join(sorted(_TENSOR_DTYPES))}; the file is corrupted or not a checkpoint"
            )
    return n, header, metadata


def _as_bytes(data: Any, f: Any, where: str) -> bytes:
    if isinstance(data, str):
        raise TypeError(f"{where}: {_file_label(f)} is a text-mode file; a checkpoint is binary: open it with mode 'rb'")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where}: {_file_label(f)}.read() returned {type(data).__name__}, expected bytes")
    return bytes(data)


def _read_exactly(fh: Any, n: int, where: str) -> bytes:
    """Up to ``n`` bytes of ``fh``, fewer only at its end (a raw stream's read() may return less)."""
    chunks, got = [], 0
    while got < n:
        chunk = _as_bytes(fh.read(n - got), fh, where)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _check_reader(f: Any, where: str) -> None:
    if not callable(getattr(f, "read", None)):
        raise TypeError(
            f"{where}: f must be a path (str or os.PathLike) or a binary file object with read(), not {type(f).__name__}"
        )


def load(f: _File, map_location=None, pickle_module: Any = None, *, weights_only: bool | None = None,
         mmap: bool | None = None, **pickle_load_args: Any) -> Any:
    """Load an object saved with ``nx.save``; tensors come back as they went in (torch, nx or numpy).

    ``f`` is a path (``str``, ``bytes`` or ``os.PathLike``) or a binary file object with ``read()``
    (``io.BytesIO``, a file opened ``"rb"``...), which is read from its current position to its end
    and checked exactly as a file is. Tensors come back on the device they were saved from, or per
    ``map_location`` as in ``torch.load``: a device or device string, a dict from saved location to
    location (``{"cuda:0": "cpu"}``), or a callable ``(tensor, location)``. Raises ``CheckpointError``
    for anything that is not an intact neuronix checkpoint; no code from the file is ever run (never
    pickle), so loading is always what ``torch.load(weights_only=True)`` promises: ``weights_only``,
    ``mmap`` and torch's pickle arguments are accepted so that calls port unchanged, and unused.
    """
    if _is_path(f):
        path = os.fsdecode(os.fspath(f))
        _remove_dead_partials(os.path.dirname(os.path.abspath(path)))
        with open(path, "rb") as fh:
            data = fh.read()
        where = f"nx.load({path!r})"
    else:
        where = f"nx.load({_file_label(f)})"
        _check_reader(f, where)
        data = _as_bytes(f.read(), f, where)  # read() with no size: to the end (readall for a raw file)
    return _decode(data, where, map_location)


def _decode(data: bytes, where: str, map_location) -> Any:
    """The object in the checkpoint bytes ``data``; ``where`` starts every error message."""
    from safetensors import SafetensorError  # imported on use: ``import neuronix`` needs no safetensors
    from safetensors.torch import load as st_load

    _, _, metadata = _read_header(io.BytesIO(data), len(data), where)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{where}: a safetensors file without neuronix checkpoint metadata (format={metadata.get('format')!r}, "
            f"expected {FORMAT!r}); for plain safetensors weights use safetensors.torch.load_file"
        )
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{where}: the file is truncated or corrupted: {_short(e)}") from None
    structure = metadata.get("neuronix.structure", "")
    if _digest(structure, tensors) != metadata.get("neuronix.sha256"):
        raise CheckpointError(
            f"{where}: checksum mismatch: the tensor data or structure does not match the SHA-256 recorded "
            "when it was saved; the file is corrupted"
        )
    # The digest is no signature (anyone can recompute it): from here on the file may be crafted,
    # and the decoder checks every node itself.
    try:
        return _unflatten(json.loads(structure), tensors, map_location)
    except (ValueError, RecursionError) as e:  # _Malformed is a ValueError
        raise CheckpointError(f"{where}: the structure metadata is malformed: {e}") from None


def checkpoint_metadata(f: _File) -> dict[str, str]:
    """The header metadata of a checkpoint (format, neuronix and torch versions), without loading tensors.

    ``f`` is a path or a binary file object (read from its current position). Reads only the
    header; raises ``CheckpointError`` when the file is not a safetensors file.
    """
    if _is_path(f):
        path = os.fsdecode(os.fspath(f))
        with open(path, "rb") as fh:
            _, _, metadata = _read_header(fh, os.fstat(fh.fileno()).st_size, f"nx.checkpoint_metadata({path!r})")
    else:
        where = f"nx.checkpoint_metadata({_file_label(f)})"
        _check_reader(f, where)
        _, _, metadata = _read_header(f, None, where)
    meta = dict(metadata)
    meta.pop("neuronix.structure", None)
    return meta
