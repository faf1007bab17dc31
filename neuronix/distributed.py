"""``nx.distributed``: data-parallel training on ``torch.distributed``.

Every process (one per device, started by ``torchrun``) holds a full replica of the
model and trains on its own slice of each batch. Replicas stay identical because

1. ``DistributedDataParallel(module)`` broadcasts rank 0's parameters and buffers once,
   so every replica starts from the same weights;
2. when a ``backward()`` through the wrapper's output finishes, the gradients are averaged
   over all processes, so every replica takes the same optimizer step.

Gradients travel in buckets (``bucket_cap_mb``, 25 MB by default, as in torch): each
bucket's gradients are flattened into one tensor and all-reduced asynchronously, so a
ResNet needs a handful of collective calls instead of one per parameter.

How the reduction is triggered: ``forward`` hooks the output; when ``backward`` reaches it,
the hook queues the all-reduce with the engine's ``queue_callback``, which runs it once the
pass has written every ``.grad`` (neuronix delivers a leaf's gradient once per total, so
"final" is only known at the end of the pass). ``no_sync()`` skips it for gradient
accumulation; ``reduce_gradients()`` runs it by hand.

Backends: gloo on CPU, NCCL on CUDA (``init_from_env`` picks one).

    info = nx.distributed.init_from_env()          # reads RANK / WORLD_SIZE / LOCAL_RANK
    model = nx.distributed.DistributedDataParallel(model)
    loss = criterion(model(x), y)
    loss.backward()                                # gradients averaged over processes here
    optimizer.step()
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from neuronix.autograd import engine, mode
from neuronix.nn import Module
from neuronix.tensor import Tensor, unwrap


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits in the job: ``rank`` of ``world_size``, and its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``) is present."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_from_env(device: str = "cpu", backend: str | None = None) -> ProcessInfo:
    """Join the process group described by torchrun's environment variables.

    Without them (a plain ``python`` launch) this is a single process and nothing is
    initialised. ``device="cuda"`` uses NCCL and the GPU ``LOCAL_RANK``; ``"cpu"`` uses gloo.
    """
    if not launched_by_torchrun():
        return ProcessInfo(device=torch.device(device))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if dev.type == "cuda" else "gloo"))
    return ProcessInfo(rank, world, local_rank, dev)



def broadcast_tensors(tensors, src: int = 0, group=None) -> None:
    """Overwrite every tensor (``nx.Tensor`` or ``torch.Tensor``) in place with rank ``src``'s values."""
    for t in tensors:
        dist.broadcast(unwrap(t), src=src, group=group)


def all_reduce_mean(value: torch.Tensor, group=None) -> torch.Tensor:
    """The mean of ``value`` over all processes (for metrics); a no-op outside a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.clone()
    dist.all_reduce(value, group=group)
    return value / dist.get_world_size(group)


def make_buckets(params, bucket_cap_mb: float = 25.0) -> list[list[Tensor]]:
    """Group ``params`` into buckets of at most ``bucket_cap_mb`` megabytes of one dtype and device.

    Parameters are taken in reverse order, roughly the order in which backward produces
    their gradients (as torch's DDP does).
    """
    cap = bucket_cap_mb * 1024 * 1024
    buckets: list[list[Tensor]] = []
    open_bucket: dict[tuple, tuple[list[Tensor], list[float]]] = {}
    for p in reversed(list(params)):
        key = (p.dtype, p.device)
        if key not in open_bucket:
            open_bucket[key] = ([], [0.0])
        bucket, size = open_bucket[key]
        nbytes = p.numel() * p.element_size()
        if bucket and size[0] + nbytes > cap:
            buckets.append(bucket)
            open_bucket[key] = bucket, size = ([], [0.0])
        bucket.append(p)
        size[0] += nbytes
    buckets.extend(b for b, _ in open_bucket.values() if b)
    return buckets


def all_reduce_gradients(buckets: list[list[Tensor]], group=None) -> None:
    """Average ``.grad`` of every parameter over all processes, one flat all-reduce per bucket.

    A parameter without a gradient counts as a zero gradient (it may have been used on
    another rank), and receives the averaged one.
    """
    world = dist.get_world_size(group)
    pending = []
    for bucket in buckets:
        flat = torch.cat([p.grad.data.reshape(-1) if p.grad is not None else p.data.new_zeros(p.numel()) for p in bucket])
        pending.append((bucket, flat, dist.all_reduce(flat, group=group, async_op=True)))
    for bucket, flat, work in pending:
        work.wait()
        flat /= world
        for p, g in zip(bucket, torch.split(flat, [p.numel() for p in bucket])):
            g = g.view_as(p.data)
            if p.grad is None:
                p.grad = Tensor(g.clone())
            else:
                p.grad.data.copy_(g)


def _output_tensors(out):
    """The tensors in a (possibly nested) tuple, list or dict output."""
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, (tuple, list)):
        for o in out:
            yield from _output_tensors(o)
    elif isinstance(out, dict):
        for o in out.values():
            yield from _output_tensors(o)


class DistributedDataParallel(Module):
    """Data-parallel wrapper of ``module`` (as ``torch.nn.parallel.DistributedDataParallel``).

    On construction, broadcasts rank 0's parameters and buffers. ``forward`` runs the
    wrapped module (first re-broadcasting rank 0's buffers when ``broadcast_buffers``, so
    BatchNorm running statistics agree, as torch does); with grad mode on, a ``backward()``
    through its output averages every parameter's ``.grad`` over all processes when it
    finishes, before ``optimizer.step()``. As torch's, ``nx.autograd.grad`` (which writes no
    ``.grad``) reduces nothing, and outputs computed under ``no_sync()`` are not reduced.
    ``state_dict`` keys gain the ``module.`` prefix, as torch's; save ``ddp.module.state_dict()``
    for a checkpoint that loads anywhere.
    """

    def __init__(self, module: Module, device_ids=None, output_device=None, broadcast_buffers: bool = True,
                 process_group=None, bucket_cap_mb: float = 25.0) -> None:
        super().__init__()
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "DistributedDataParallel: the default process group is not initialised; launch with torchrun and call "
                "nx.distributed.init_from_env() (or torch.distributed.init_process_group) first"
            )
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.process_group = process_group
        self.require_backward_grad_sync = True
        self._reduction_queued = False
        params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = make_buckets(params, bucket_cap_mb)
        broadcast_tensors(list(module.parameters()) + list(module.buffers()), group=process_group)

    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self.module.training:
            broadcast_tensors(list(self.module.buffers()), group=self.process_group)
        out = self.module(*args, **kwargs)
        if mode.is_grad_enabled() and self.require_backward_grad_sync:
            self._reduction_queued = False  # a new iteration: a pass that raised left nothing behind
            for t in _output_tensors(out):
                if t.requires_grad:
                    t.register_hook(self._queue_reduction)
        return out

    def _queue_reduction(self, grad) -> None:
        # several outputs (or forwards) feeding one backward still reduce once, at its end
        if not self._reduction_queued:
            self._reduction_queued = engine.queue_callback(self._finish_backward)

    def _finish_backward(self) -> None:
        self._reduction_queued = False
        self.reduce_gradients()

    @contextmanager
    def no_sync(self):
        """Within this context, backward passes through outputs computed here do not average gradients.

        For gradient accumulation, as torch's: run the micro-batches but the last under ``no_sync()``;
        the last ``backward()`` (outside) averages the accumulated ``.grad``.
        """
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def reduce_gradients(self) -> None:
        """Average every parameter's ``.grad`` over all processes now (``backward()`` does it by itself)."""
        all_reduce_gradients(self._buckets, self.process_group)

    @property
    def bucket_sizes(self) -> list[int]:
        """Number of parameters in each gradient bucket, in reduction order."""
        return [len(b) for b in self._buckets]
