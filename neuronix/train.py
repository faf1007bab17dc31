"""``python -m neuronix.train``: train a classifier (ResNet-18 on CIFAR-10, or a quick digits demo).

    python -m neuronix.train --dataset cifar10 --data-root data --epochs 30 --out runs/cifar
    python -m neuronix.train --dataset digits --epochs 12 --batch-size 64 --out runs/digits
    python -m neuronix.train ... --resume                        # continue from OUT/last.safetensors
    torchrun --nproc_per_node 2 -m neuronix.train ...           # data-parallel (gloo on CPU, NCCL on GPU)

Each epoch writes, under ``--out``: ``last.safetensors`` (model, optimizer, scheduler,
epoch, history and every RNG state, via ``nx.save``: atomic, no pickle),
``metrics.jsonl`` (one JSON object per epoch) and ``curves.png`` (loss and accuracy).
Resuming restores all of it, so an interrupted run ends with the same parameters as an
uninterrupted one (bit for bit on CPU, single process).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset, TensorDataset

import neuronix as nx
from neuronix import distributed as nxdist
from neuronix import models, nn, optim
from neuronix.nn import functional as F

CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"]
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CHECKPOINT = "last.safetensors"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m neuronix.train", epilog=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Train ResNet-18 on CIFAR-10 (or a small model on scikit-learn's digits).")
    p.add_argument("--dataset", choices=["cifar10", "digits"], default="cifar10", help="default: cifar10")
    p.add_argument("--data-root", default="data", help="folder holding cifar-10-batches-py/ (default: data)")
    p.add_argument("--model", choices=["resnet18", "resnet34", "mlp"], default=None,
                   help="default: resnet18 for cifar10, mlp for digits")
    p.add_argument("--epochs", type=int, default=30, help="default: 30")
    p.add_argument("--batch-size", type=int, default=128, help="per process (default: 128)")
    p.add_argument("--optimizer", choices=["sgd-nesterov", "adamw"], default="sgd-nesterov", help="default: sgd-nesterov")
    p.add_argument("--schedule", choices=["onecycle", "cosine"], default="onecycle",
                   help="learning rate per step: OneCycleLR or CosineAnnealingLR (default: onecycle)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 0.1 for SGD, 2e-3 for AdamW)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    p.add_argument("--weight-decay", type=float, default=None, help="default: 5e-4 for SGD, 0.05 for AdamW")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="default: 0")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes (default: 0 for in-memory data such as digits, where a worker "
                        "only adds start-up and copying; for data read from disk a few persistent workers)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda (default: cuda when available)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="default: float32")
    p.add_argument("--out", default="runs/latest",
                   help="folder for last.safetensors, metrics.jsonl and curves.png (default: runs/latest)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default: OUT/last.safetensors)")
    p.add_argument("--seed", type=int, default=0, help="default: 0")
    p.add_argument("--limit-train", type=int, default=None, metavar="N", help="use only the first N training examples")
    p.add_argument("--limit-test", type=int, default=None, metavar="N", help="use only the first N test examples")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="exit after epoch N, as an interrupted run would (the schedule still spans --epochs)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    args = p.parse_args(argv)
    if args.model is None:
        args.model = "resnet18" if args.dataset == "cifar10" else "mlp"
    sgd = args.optimizer == "sgd-nesterov"
    if args.lr is None:
        args.lr = 0.1 if sgd else 2e-3
    if args.weight_decay is None:
        args.weight_decay = 5e-4 if sgd else 0.05
    return args


# ----- data -------------------------------------------------------------------------------
@dataclass
class Data:
    train: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    image_size: int
    in_memory: bool  # every example is a tensor in memory already: loading it needs no worker process


def cifar10(root: str) -> Data:
    """CIFAR-10 through ``torchvision.datasets.CIFAR10`` (no download), with the standard augmentation."""
    folder = os.path.join(root, "cifar-10-batches-py")
    missing = [f for f in CIFAR_FILES if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise SystemExit(
            f"CIFAR-10 not found: expected {folder}/ with the files {', '.join(CIFAR_FILES)} "
            f"(missing: {', '.join(missing)}). Download and unpack "
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz into --data-root "
            "(or run torchvision.datasets.CIFAR10(root, download=True) once)"
        )
    try:
        import torchvision
        from torchvision import transforms as T
    except ImportError as e:
        raise SystemExit(f"--dataset cifar10 needs torchvision ({e}); install it with `pip install torchvision`") from None
    normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
    test_tf = T.Compose([T.ToTensor(), normalize])
    train = torchvision.datasets.CIFAR10(root, train=True, transform=train_tf, download=False)
    test = torchvision.datasets.CIFAR10(root, train=False, transform=test_tf, download=False)
    return Data(train, test, 3, 10, 32, in_memory=False)


def digits() -> Data:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), a fixed 80/20 split, standardised."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))  # a fixed split, independent of --seed
    x = torch.tensor(x[order], dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y[order], dtype=torch.int64)
    n_train = int(0.8 * len(y))
    mean, std = x[:n_train].mean(), x[:n_train].std()
    x = (x - mean) / std
    return Data(TensorDataset(x[:n_train], y[:n_train]), TensorDataset(x[n_train:], y[n_train:]), 1, 10, 8, in_memory=True)


def load_data(args) -> Data:
    data = cifar10(args.data_root) if args.dataset == "cifar10" else digits()
    if args.limit_train is not None:
        data.train = Subset(data.train, range(min(args.limit_train, len(data.train))))
    if args.limit_test is not None:
        data.test = Subset(data.test, range(min(args.limit_test, len(data.test))))
    return data


def default_workers(data: Data) -> int:
    """0 for in-memory data (a worker would only copy tensors that are already there, and start up each
    epoch); for data decoded from disk, a few workers (half the cores, at most 4), kept across epochs."""
    return 0 if data.in_memory else min(4, max(1, (os.cpu_count() or 2) // 2))


def make_loaders(args, data: Data, info: nxdist.ProcessInfo, generator: torch.Generator, worker_generator: torch.Generator):
    """The train and test loaders. ``generator`` draws the shuffles only (its own ``RandomSampler``) and
    ``worker_generator`` the workers' base seeds, so the batches are the same whatever ``--workers`` is and
    whether the workers persist (a persistent loader draws its base seed once, a fresh one every epoch)."""
    pin = info.device.type == "cuda"
    common = dict(batch_size=args.batch_size, num_workers=args.workers, pin_memory=pin,
                  persistent_workers=args.workers > 0, generator=worker_generator)
    if info.distributed:
        sampler = DistributedSampler(data.train, info.world_size, info.rank, shuffle=True, seed=args.seed)
        train = DataLoader(data.train, sampler=sampler, **common)
        # each rank evaluates a disjoint slice (no padding), the sums are all-reduced
        test_set = Subset(data.test, range(info.rank, len(data.test), info.world_size))
    else:
        sampler = None
        train = DataLoader(data.train, sampler=RandomSampler(data.train, generator=generator), **common)
        test_set = data.test
    test = DataLoader(test_set, shuffle=False, **common)
    return train, test, sampler


# ----- model and optimisation -------------------------------------------------------------
def build_model(args, data: Data) -> nn.Module:
    if args.model == "mlp":
        return models.mlp(data.in_channels * data.image_size**2, data.num_classes)
    build = models.resnet18 if args.model == "resnet18" else models.resnet34
    # the CIFAR stem (3x3 stride 1, no max-pool) suits small images
    return build(num_classes=data.num_classes, cifar_stem=data.image_size <= 64, in_channels=data.in_channels)


def build_optimizer(args, model: nn.Module, steps_per_epoch: int):
    params = model.parameters()
    if args.optimizer == "sgd-nesterov":
        opt = optim.SGD(params, lr=args.lr, momentum=args.momentum, nesterov=True, weight_decay=args.weight_decay)
    else:
        opt = optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    total = args.epochs * steps_per_epoch
    if args.schedule == "onecycle":
        sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total)
    else:
        sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    return opt, sched


# ----- RNG state ------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state(generator: torch.Generator, worker_generator: torch.Generator) -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
             "loader": generator.get_state(), "loader_workers": worker_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generator: torch.Generator, worker_generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loader"])
    if "loader_workers" in state:  # checkpoints written before it existed resume with a fresh one
        worker_generator.set_state(state["loader_workers"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----- one epoch ------------------------------------------------------------------------------
def _progress(loader, desc: str, enabled: bool):
    if not enabled:
        return loader
    from tqdm import tqdm

    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def _sum_over_ranks(values: list[float], info: nxdist.ProcessInfo) -> list[float]:
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def train_one_epoch(model, ddp, loader, opt, sched, args, info, epoch: int, dtype) -> dict:
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    epoch_start = time.perf_counter()
    start = None  # images/s is timed from the first batch in hand: the DataLoader's start-up is not training
    bar = _progress(loader, f"epoch {epoch + 1}/{args.epochs} train", info.is_main and not args.no_progress)
    for x, y in bar:
        if start is None:
            start = time.perf_counter()
        x = x.to(info.device, dtype, non_blocking=True)
        y = y.to(info.device, non_blocking=True)
        logits = (ddp or model)(nx.Tensor(x))
        loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP, gradients are averaged over the processes when this returns
        opt.step()
        sched.step()
        n = y.shape[0]
        loss_sum += loss.item() * n
        correct += int((logits.data.argmax(1) == y).sum())
        seen += n
        if bar is not loader:
            rate = seen * info.world_size / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", img_s=f"{rate:.0f}", refresh=False)
    if info.device.type == "cuda":
        torch.cuda.synchronize(info.device)
    end = time.perf_counter()
    elapsed = end - (start or end)
    loss_sum, correct, seen = _sum_over_ranks([loss_sum, correct, seen], info)
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "images_per_s": seen / max(elapsed, 1e-9),
            "epoch_time_s": end - epoch_start, "startup_s": (start or end) - epoch_start}


def evaluate(model, loader, info, dtype) -> dict:
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    with nx.no_grad():
        for x, y in loader:
            x = x.to(info.device, dtype, non_blocking=True)
            y = y.to(info.device, non_blocking=True)
            logits = model(nx.Tensor(x))
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.data.argmax(1) == y).sum())
            seen += y.shape[0]
    loss_sum, correct, seen = _sum_over_ranks([loss_sum, correct, seen], info)
    return {"test_loss": loss_sum / max(seen, 1), "test_acc": correct / max(seen, 1)}


# ----- outputs --------------------------------------------------------------------------------
def write_metrics(out: str, history: list[dict]) -> None:
    """Rewrite ``metrics.jsonl`` from the history (so a resumed run never shows duplicate epochs)."""
    tmp = os.path.join(out, ".metrics.jsonl.tmp")
    with open(tmp, "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in history)
    os.replace(tmp, os.path.join(out, "metrics.jsonl"))


def plot_curves(out: str, history: list[dict]) -> None:
    """``curves.png``: train/test loss and accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "test"):
        ax_loss.plot(epochs, [row[f"{split}_loss"] for row in history], marker="o", label=split)
        ax_acc.plot(epochs, [100 * row[f"{split}_acc"] for row in history], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = os.path.join(out, ".curves.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, os.path.join(out, "curves.png"))


def checkpoint(model, opt, sched, epoch: int, history: list[dict], generators, args) -> dict:
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch, "history": history, "rng": rng_state(*generators), "args": vars(args)}


# ----- main -------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> list[dict]:
    """Run training; returns the per-epoch metrics history."""
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available to torch; use --device cpu")
    info = nxdist.init_from_env(args.device)
    dtype = getattr(torch, args.dtype)
    seed_everything(args.seed)
    data = load_data(args)
    if args.workers is None:
        args.workers = default_workers(data)
    generator = torch.Generator().manual_seed(args.seed)
    worker_generator = torch.Generator().manual_seed(args.seed + 1)
    generators = (generator, worker_generator)
    train_loader, test_loader, sampler = make_loaders(args, data, info, generator, worker_generator)

    model = build_model(args, data).to(info.device, dtype)
    ddp = nxdist.DistributedDataParallel(model) if info.distributed else None
    opt, sched = build_optimizer(args, model, len(train_loader))

    start_epoch, history = 0, []
    if args.resume:
        path = os.path.join(args.out, CHECKPOINT) if args.resume == "auto" else args.resume
        if not os.path.exists(path):
            raise SystemExit(f"--resume: no checkpoint at {path}")
        state = nx.load(path, map_location=info.device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], state["history"]
        set_rng_state(state["rng"], *generators)
        if info.is_main:
            print(f"resumed from {path} after epoch {start_epoch}", file=sys.stderr)
    if info.is_main:
        os.makedirs(args.out, exist_ok=True)

    last = args.epochs if args.stop_after is None else min(args.epochs, args.stop_after)
    for epoch in range(start_epoch, last):
        if sampler is not None:
            sampler.set_epoch(epoch)
        row = {"epoch": epoch + 1}
        row.update(train_one_epoch(model, ddp, train_loader, opt, sched, args, info, epoch, dtype))
        row.update(evaluate(model, test_loader, info, dtype))
        row["lr"] = sched.get_last_lr()[0]
        history.append(row)
        if info.is_main:
            nx.save(checkpoint(model, opt, sched, epoch + 1, history, generators, args), os.path.join(args.out, CHECKPOINT))
            write_metrics(args.out, history)
            plot_curves(args.out, history)
            print(f"epoch {epoch + 1}/{args.epochs}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                  f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  "
                  f"{row['images_per_s']:.0f} img/s  lr {row['lr']:.3g}", file=sys.stderr)
        if not math.isfinite(row["train_loss"]):
            raise SystemExit(f"epoch {epoch + 1}: the training loss is {row['train_loss']}; lower --lr")
    if info.distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return history


if __name__ == "__main__":
    main()
