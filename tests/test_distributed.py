"""``nx.distributed``: 2 CPU processes (gloo) train like one process on the concatenated batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import neuronix as nx
from neuronix import distributed as nxdist
from neuronix.nn import functional as F

STEPS, GLOBAL_BATCH = 5, 8
ROOT = str(Path(__file__).resolve().parents[1])
pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="gloo unavailable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    return nx.models.mlp(6, 3, hidden=(16, 16)).double()


def _batch(step: int):
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(GLOBAL_BATCH, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (GLOBAL_BATCH,), generator=g)


def _step(model, opt, x, y, ddp=None):
    loss = F.cross_entropy((ddp or model)(nx.Tensor(x)), y)
    opt.zero_grad()
    loss.backward()  # under DDP, the gradients are averaged over the processes when this returns
    opt.step()


def _accumulated_step(model, opt, x, y, ddp):
    """Two half-batches, the first under ``no_sync()``: the same step as the whole batch."""
    opt.zero_grad()
    half = x.shape[0] // 2
    with ddp.no_sync():
        (F.cross_entropy(ddp(nx.Tensor(x[:half])), y[:half]) / 2).backward()
    local = [p.grad.data.clone() for p in model.parameters()]
    (F.cross_entropy(ddp(nx.Tensor(x[half:])), y[half:]) / 2).backward()
    opt.step()
    return local


def _check_grad_reduces_nothing(model, ddp, x, y) -> None:
    """``nx.autograd.grad`` writes no ``.grad``, so (as torch's DDP) it must not all-reduce or create any."""
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(ddp(nx.Tensor(x)), y)
    grads = nx.autograd.grad(loss, list(model.parameters()))
    assert all(g is not None for g in grads) and all(p.grad is None for p in model.parameters())


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    info = nxdist.init_from_env("cpu")
    assert (info.rank, info.world_size) == (rank, world)
    torch.manual_seed(rank)  # replicas start different: the broadcast must make them agree
    model = _model()
    ddp = nxdist.DistributedDataParallel(model, bucket_cap_mb=0.002)  # tiny buckets: several all-reduces
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    opt = nx.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    per_rank = GLOBAL_BATCH // world
    unsynced = []
    for step in range(STEPS):
        x, y = _batch(step)
        mine = slice(rank * per_rank, (rank + 1) * per_rank)
        if step == 0:
            _check_grad_reduces_nothing(model, ddp, x[mine], y[mine])
        if step % 2:
            unsynced += _accumulated_step(model, opt, x[mine], y[mine], ddp)
        else:
            _step(model, opt, x[mine], y[mine], ddp)
    saved = {"initial": initial, "final": model.state_dict(), "buckets": ddp.bucket_sizes}
    saved.update({f"unsynced{i}": g for i, g in enumerate(unsynced)})
    nx.save(saved, os.path.join(out, f"rank{rank}.st"))
    dist.barrier()
    dist.destroy_process_group()


def test_two_gloo_processes_match_single_process_on_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = nx.load(tmp_path / "rank0.st"), nx.load(tmp_path / "rank1.st")
    assert len(r0["buckets"]) > 1, "the test should exercise several gradient buckets"
    torch.manual_seed(1)
    assert any(not torch.equal(v, r0["initial"][k]) for k, v in _model().state_dict().items()), "rank 1 began elsewhere"
    for k in r0["initial"]:
        assert torch.equal(r0["initial"][k], r1["initial"][k]), f"{k}: rank 0's weights were not broadcast"
        assert torch.equal(r0["final"][k], r1["final"][k]), f"{k}: replicas diverged"
    unsynced = [k for k in r0 if k.startswith("unsynced")]
    assert unsynced and all(not torch.equal(r0[k], r1[k]) for k in unsynced), "no_sync() must leave gradients local"

    model = _model()
    model.load_state_dict(r0["initial"])
    opt = nx.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for step in range(STEPS):
        _step(model, opt, *_batch(step))
    for k, v in model.state_dict().items():
        assert not torch.equal(v, r0["initial"][k]), f"{k} did not train"
        torch.testing.assert_close(r0["final"][k], v, rtol=1e-7, atol=1e-12, msg=f"{k}: DDP != single process")


def test_buckets_respect_the_cap_dtype_and_reverse_order():
    params = [nx.nn.Parameter(torch.zeros(n, dtype=dt)) for n, dt in [(10, torch.float32), (100, torch.float32),
                                                                      (5, torch.float64), (200, torch.float32)]]
    buckets = nxdist.make_buckets(params, bucket_cap_mb=1000 / 2**20)  # 1000 bytes = 250 float32
    ids = [[next(i for i, q in enumerate(params) if q is p) for p in b] for b in buckets]
    assert ids == [[3], [1, 0], [2]]


def test_ddp_needs_a_process_group():
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    with pytest.raises(RuntimeError, match="process group is not initialised"):
        nxdist.DistributedDataParallel(_model())


def test_torchrun_launches_the_training_command(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "neuronix.train", "--dataset", "digits", "--epochs", "1",
           "--batch-size", "32", "--limit-train", "256", "--limit-test", "100", "--workers", "0", "--device", "cpu",
           "--no-progress", "--out", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "last.safetensors").exists() and (tmp_path / "metrics.jsonl").exists()
    assert nx.load(tmp_path / "last.safetensors")["epoch"] == 1


def test_queue_callback_runs_once_backward_has_written_every_grad():
    from neuronix.autograd.engine import queue_callback

    w = nx.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    y = (w * w).sum()
    y.register_hook(lambda g: seen.append(queue_callback(lambda: seen.append(w.grad.tolist()))))
    y.backward(retain_graph=True)
    assert seen == [True, [2.0, 4.0]], "the callback must run after the leaf's .grad is final"
    nx.autograd.grad(y, [w])
    assert seen[2:] == [False], "grad() writes no .grad: nothing is queued"
    with pytest.raises(RuntimeError, match="no backward pass is running"):
        queue_callback(print)
