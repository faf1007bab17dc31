"""``nx.nn.utils.rnn``: ``PackedSequence`` and the pad/pack helpers, as ``torch.nn.utils.rnn``.

A packed batch stores the time steps of sequences sorted by decreasing length one after the
other: step ``t`` holds ``batch_sizes[t]`` rows (the sequences still running at ``t``). Every
move of data here is one ``index_select`` (plus a ``cat`` of one padding row) with an index
map built from the lengths, so ``.data`` is differentiable and the backward is one
``index_add``, however long the sequences. Lengths, batch sizes and permutations are integer
bookkeeping, computed on raw torch tensors and returned as (non-differentiable) ``nx.Tensor``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable

import torch

from neuronix.nn.functional.arguments import as_nx
from neuronix.ops.movement import cat
from neuronix.tensor import Tensor, unwrap

__all__ = [
    "PackedSequence",
    "invert_permutation",
    "pack_padded_sequence",
    "pack_sequence",
    "pad_packed_sequence",
    "pad_sequence",
    "unpack_sequence",
    "unpad_sequence",
]


def _index(t):
    """An integer bookkeeping tensor as a (non-differentiable) ``nx.Tensor``; ``None`` stays ``None``."""
    return None if t is None else as_nx(t)


def invert_permutation(permutation):
    """The permutation that undoes ``permutation`` (``None`` for ``None``), as torch's."""
    if permutation is None:
        return None
    raw = unwrap(permutation)
    inverse = torch.empty_like(raw, memory_format=torch.legacy_contiguous_format)
    inverse.scatter_(0, raw, torch.arange(raw.numel(), device=raw.device))
    return Tensor(inverse)


_PackedSequenceFields = namedtuple("PackedSequence_", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])


class PackedSequence(_PackedSequenceFields):
    """A batch of variable-length sequences packed step by step (as ``torch.nn.utils.rnn.PackedSequence``).

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`; the recurrent layers accept
    it and return their output packed the same way. ``sorted_indices`` maps the packed order back to
    the batch the caller gave (``None`` when the batch was already sorted by decreasing length).
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None:  # torch's second form: PackedSequence((data, batch_sizes), ...)
            if not (isinstance(data, (list, tuple)) and len(data) == 2):
                raise AssertionError("Expected data to be a list or tuple of length 2")
            data, batch_sizes = data
        if unwrap(batch_sizes).device.type != "cpu":
            raise ValueError(
                "batch_sizes should always be on CPU. Instances of PackedSequence should never be created manually. "
                "They should be instantiated by functions like pack_sequence and pack_padded_sequences in nn.utils.rnn."
            )
        if unsorted_indices is None:
            unsorted_indices = invert_permutation(sorted_indices)
        return super().__new__(cls, as_nx(data), _index(batch_sizes), _index(sorted_indices), _index(unsorted_indices))

    def to(self, *args, **kwargs) -> PackedSequence:
        """``data.to(...)``; the permutations follow the data's device, ``batch_sizes`` stays on the CPU."""
        data = self.data.to(*args, **kwargs)
        if data is self.data:
            return self

        def follow(t):
            return None if t is None else t.to(data.device)

        return type(self)(data, self.batch_sizes, follow(self.sorted_indices), follow(self.unsorted_indices))

    def cuda(self, device=None) -> PackedSequence:
        """The data on a CUDA device (``device``: None for the current one, an index, or a device)."""
        if device is None or isinstance(device, int):
            device = torch.device("cuda") if device is None else torch.device("cuda", device)
        return self.to(device)

    def cpu(self) -> PackedSequence:
        return self.to("cpu")

    def double(self) -> PackedSequence:
        return self.to(dtype=torch.float64)

    def float(self) -> PackedSequence:
        return self.to(dtype=torch.float32)

    def half(self) -> PackedSequence:
        return self.to(dtype=torch.float16)

    def long(self) -> PackedSequence:
        return self.to(dtype=torch.int64)

    def int(self) -> PackedSequence:
        return self.to(dtype=torch.int32)

    @property
    def is_cuda(self) -> bool:
        return self.data.device.type == "cuda"

    def is_pinned(self) -> bool:
        return unwrap(self.data).is_pinned()


def packed_fields(sequence) -> tuple:
    """``(data, batch_sizes as a list of ints, sorted_indices, unsorted_indices)`` of a neuronix or torch
    PackedSequence (the recurrent layers accept both)."""
    data, batch_sizes, sorted_indices, unsorted_indices = sequence
    return as_nx(data), unwrap(batch_sizes).tolist(), _index(sorted_indices), _index(unsorted_indices)


def is_packed(value) -> bool:
    return isinstance(value, (PackedSequence, torch.nn.utils.rnn.PackedSequence))


# ----- packing ---------------------------------------------------------------------------------
def _lengths_tensor(lengths) -> torch.Tensor:
    if isinstance(lengths, (Tensor, torch.Tensor)):
        return unwrap(lengths).to(dtype=torch.int64)
    return torch.as_tensor(lengths, dtype=torch.int64, device="cpu")


def _check_lengths(lengths: torch.Tensor, shape: tuple, batch_first: bool, enforce_sorted: bool) -> None:
    """The checks of torch's ``_pack_padded_sequence``, in its order and with its messages (plus the op's name)."""
    if lengths.device.type != "cpu" or lengths.dim() != 1:
        raise RuntimeError(
            f"pack_padded_sequence: 'lengths' argument should be a 1D CPU int64 tensor, but got {lengths.dim()}D "
            f"{lengths.device} tensor"
        )
    if len(shape) < 2:
        raise IndexError(
            f"pack_padded_sequence: input of shape {shape} has no batch dim: expected (T, B, *) "
            f"{'with batch_first=True: (B, T, *)' if batch_first else '(or (B, T, *) with batch_first=True)'}"
        )
    steps, batch = (shape[1], shape[0]) if batch_first else (shape[0], shape[1])
    if 0 in shape:
        raise RuntimeError(f"pack_padded_sequence: Cannot pack empty tensors (input shape {shape}).")
    if lengths.numel() != batch:
        raise RuntimeError(
            f"pack_padded_sequence: Expected `len(lengths)` to be equal to batch_size, but got {lengths.numel()} "
            f"(batch_size={batch})"
        )
    if int(lengths.min()) <= 0:
        raise RuntimeError(
            "pack_padded_sequence: Length of all samples has to be greater than 0, but found an element in 'lengths' "
            f"that is <= 0 (lengths {lengths.tolist()})"
        )
    if enforce_sorted and bool((lengths[1:] > lengths[:-1]).any()):
        raise RuntimeError(
            f"pack_padded_sequence: `lengths` array must be sorted in decreasing order when `enforce_sorted` is True "
            f"(got {lengths.tolist()}). You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
            "to sidestep this requirement if you do not need ONNX exportability."
        )
    if int(lengths.max()) > steps:  # torch reads past the end of the input here; we refuse
        raise RuntimeError(
            f"pack_padded_sequence: a length of {int(lengths.max())} exceeds the {steps} time steps of the input "
            f"(shape {shape}, batch_first={batch_first})"
        )


def pack_padded_sequence(input, lengths, batch_first: bool = False, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch ``(T, B, *)`` (``(B, T, *)`` with ``batch_first``) of sequences of ``lengths``.

    With ``enforce_sorted=True`` the lengths must decrease; otherwise the batch is sorted by decreasing
    length first (torch's sort, so ties land in torch's order) and the permutation is kept.
    """
    input = as_nx(input)
    lengths = _lengths_tensor(lengths)
    shape = tuple(input.shape)
    _check_lengths(lengths, shape, batch_first, enforce_sorted)
    sorted_indices = None
    if not enforce_sorted:
        lengths, sorted_indices = torch.sort(lengths, descending=True)
        sorted_indices = sorted_indices.to(unwrap(input).device)
    steps, batch = (shape[1], shape[0]) if batch_first else (shape[0], shape[1])
    batch_sizes = (lengths.unsqueeze(0) > torch.arange(int(lengths[0])).unsqueeze(1)).sum(1)
    # row of the packed data -> (t, b) in the padded input, b in sorted order; then b -> the caller's column
    columns = torch.arange(batch) if sorted_indices is None else sorted_indices.cpu()
    picks = [(b, t) if batch_first else (t, b) for t, n in enumerate(batch_sizes.tolist()) for b in columns[:n].tolist()]
    width = steps if batch_first else batch
    flat = torch.tensor([i * width + j for i, j in picks], dtype=torch.int64, device=unwrap(input).device)
    data = input.reshape((steps * batch,) + shape[2:]).index_select(0, flat)
    return PackedSequence(data, batch_sizes, sorted_indices, None)


def pad_packed_sequence(sequence, batch_first: bool = False, padding_value: float = 0.0, total_length: int | None = None):
    """Undo :func:`pack_padded_sequence`: ``(padded, lengths)`` in the caller's batch order.

    ``total_length`` pads the time dim to that length (at least the longest sequence).
    """
    data, batch_sizes, _, unsorted_indices = packed_fields(sequence)
    steps = len(batch_sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(
                "pad_packed_sequence: Expected total_length to be at least the length of the longest sequence in input, "
                f"but got total_length={total_length} and max sequence length being {steps}"
            )
        steps = total_length
    sizes = torch.tensor(batch_sizes, dtype=torch.int64)
    batch = batch_sizes[0] if batch_sizes else 0
    lengths = (sizes.unsqueeze(0) > torch.arange(batch).unsqueeze(1)).sum(1)
    # where each (t, b) comes from: its row of the packed data, or the padding row appended at the end
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
    rows = torch.full((steps, batch), data.shape[0], dtype=torch.int64)
    for t, n in enumerate(batch_sizes):
        rows[t, :n] = torch.arange(offsets[t], offsets[t] + n)
    if unsorted_indices is not None:
        order = unwrap(unsorted_indices).cpu()
        rows, lengths = rows[:, order], lengths[order]
    if batch_first:
        rows = rows.t()
    padding = torch.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    source = cat([data, padding], 0)
    padded = source.index_select(0, rows.reshape(-1).to(data.device))
    return padded.reshape(tuple(rows.shape) + tuple(data.shape[1:])), Tensor(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0, padding_side: str = "right"):
    """Stack sequences ``(L_i, *)`` into ``(max L, B, *)`` (``(B, max L, *)`` with ``batch_first``), padding
    each on ``padding_side`` with ``padding_value``; the result has the first sequence's dtype."""
    if not isinstance(sequences, Iterable) or isinstance(sequences, str):
        raise RuntimeError(f"pad_sequence: Expected iterable for input sequences, but got arg of type: {type(sequences)}")
    sequences = [as_nx(s) for s in sequences]
    if padding_side not in ("left", "right"):
        raise RuntimeError(f"pad_sequence: Expected padding_side to be one of left or right, but got {padding_side}.")
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    first = sequences[0]
    if first.ndim == 0:
        raise RuntimeError("pad_sequence: each sequence needs a time dim (dim 0), got a 0-d tensor")
    trailing = tuple(first.shape[1:])
    shaped = []
    for k, s in enumerate(sequences):
        target = (s.shape[0] if s.ndim else 0,) + trailing
        if s.ndim == 0 or not _broadcasts(tuple(s.shape), target):
            raise RuntimeError(
                f"pad_sequence: sequence {k} of shape {tuple(s.shape)} does not fit the trailing dims {trailing} "
                f"of the first sequence (shape {tuple(first.shape)})"
            )
        shaped.append(s.to(first.dtype).broadcast_to(target))
    lengths = [s.shape[0] for s in shaped]
    longest, total = max(lengths), sum(lengths)
    rows = torch.full((len(shaped), longest), total, dtype=torch.int64)  # ``total``: the padding row
    start = 0
    for b, n in enumerate(lengths):
        begin = 0 if padding_side == "right" else longest - n
        rows[b, begin:begin + n] = torch.arange(start, start + n)
        start += n
    if not batch_first:
        rows = rows.t()
    padding = torch.full((1,) + trailing, padding_value, dtype=first.dtype, device=first.device)
    source = cat(shaped + [as_nx(padding)], 0)
    padded = source.index_select(0, rows.reshape(-1).to(unwrap(first).device))
    return padded.reshape(tuple(rows.shape) + trailing)


def _broadcasts(shape: tuple, target: tuple) -> bool:
    return len(shape) <= len(target) and all(a in (1, b) for a, b in zip(shape[::-1], target[::-1]))


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False) -> list:
    """Split a padded batch back into its sequences, ``lengths[b]`` steps each.

    Unlike torch, the input is not transposed in place (torch's ``transpose_`` on the caller's tensor
    when ``batch_first=False`` is a side effect no caller relies on).
    """
    padded = as_nx(padded_sequences)
    if not batch_first:
        padded = padded.transpose(0, 1)
    sizes = unwrap(lengths).tolist() if isinstance(lengths, (Tensor, torch.Tensor)) else list(lengths)
    if len(sizes) != padded.shape[0]:
        raise ValueError(f"unpad_sequence: {len(sizes)} lengths for a batch of {padded.shape[0]} sequences")
    return [padded[b, : int(n)] for b, n in enumerate(sizes)]


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences ``(L_i, *)`` (decreasing lengths unless ``enforce_sorted=False``)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpack_sequence(packed_sequences) -> list:
    """The list of sequences a PackedSequence holds, in the caller's batch order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
