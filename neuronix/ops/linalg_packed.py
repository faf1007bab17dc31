"""Several differentiable outputs from one primitive (svd's U, S, Vh; eigh's L, Q; qr's Q, R).

The engine records one output per node, so a factorisation is a primitive whose forward packs its
differentiable outputs into ONE flat tensor: each part flattened over its own (core) dims and the
parts concatenated along a last axis, batch dims in front. The public function unpacks the parts
with differentiable views (``narrow`` + ``reshape``), so each part's gradient lands in its slice of
the flat gradient, and a part the caller never uses gets zeros there, as torch's undefined gradient
of an unused output. The rule unpacks the upstream gradient and the saved output (``saves_out``)
the same way: under create_graph the saved output is in the graph, so its parts are again
differentiable functions of the input and the rule's recorded form gives second derivatives.

A rule that must tell an unused output apart (torch skips its terms: they would be ``0 * inf`` at
repeated singular values) asks ``used(part)``: an exactly-zero gradient part outside any graph counts as
unused (forward mode's dummy upstream gradient is zero but in a graph: it counts).
"""

from __future__ import annotations

import math

import torch

from neuronix.tensor import Tensor, unwrap


class Layout:
    """Where each part lives in the packed tensor: its core shape (the dims after the batch dims)."""

    def __init__(self, batch: tuple[int, ...], cores: tuple[tuple[int, ...], ...]) -> None:
        self.batch = tuple(batch)
        self.cores = tuple(tuple(c) for c in cores)
        sizes = [math.prod(c) for c in self.cores]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes))]
        self.sizes = sizes

    def pack(self, *parts: torch.Tensor) -> torch.Tensor:
        """The raw parts (torch tensors) as one tensor of shape ``batch + (total,)``."""
        flat = [p.reshape(self.batch + (n,)) for p, n in zip(parts, self.sizes)]
        return torch.cat(flat, -1)

    def unpack(self, flat) -> list:
        """The parts of ``flat`` (raw or neuronix: views, so differentiable), in packing order."""
        return [flat.narrow(-1, o, n).reshape(self.batch + c) for o, n, c in zip(self.offsets, self.sizes, self.cores)]


def used(part) -> bool:
    """Whether an output's upstream gradient counts: it holds a nonzero, or it is itself in a graph (a
    recorded double backward or forward mode differentiates through it, zeros included)."""
    if isinstance(part, Tensor) and part.requires_grad:
        return True
    return bool(unwrap(part).ne(0).any())
