"""``python -m neuronix.train``: real data formats, checkpoints, exact resume, parity with torch, learning."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _torch_resnet import TorchResNet, torchvision_or_none

import neuronix as nx
from neuronix import train
from neuronix.nn import functional as F

ROOT = str(Path(__file__).resolve().parents[1])
QUICK = ["--dataset", "digits", "--batch-size", "32", "--limit-train", "320", "--limit-test", "100", "--no-progress",
         "--workers", "0", "--lr", "0.05"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models run fastest on one thread, and CI's 2 cores are shared by the xdist workers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _final_state(out) -> dict:
    return nx.load(Path(out) / train.CHECKPOINT)


def _assert_bitwise_equal(a, b, what=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            _assert_bitwise_equal(a[k], b[k], f"{what}.{k}")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_bitwise_equal(x, y, f"{what}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), what
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b), what
    else:
        assert a == b, what


# ----- CIFAR-10 through torchvision, on a small file set in the real layout ----------------------
def _write_fake_cifar(root: Path, per_batch: int = 40, n_test: int = 80) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(name, n):
        # the real files are Python 2 pickles of dicts with str keys; data is N x 3072 uint8 (RGB planes, row-major)
        entry = {"batch_label": name, "labels": rng.integers(0, 10, n).tolist(),
                 "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "filenames": [f"img_{i}.png" for i in range(n)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch)
    batch("test_batch", n_test)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "num_cases_per_batch": per_batch, "num_vis": 3072}
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump(meta, fh, protocol=2)


@pytest.mark.skipif(torchvision_or_none() is None, reason="torchvision unavailable")
def test_cifar10_epoch_writes_checkpoint_metrics_and_plot(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    _write_fake_cifar(tmp_path / "data")
    # our stand-in files cannot have the published MD5 sums that torchvision verifies
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    out = tmp_path / "run"
    history = train.main(["--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--epochs", "1",
                          "--limit-train", "96", "--limit-test", "48", "--batch-size", "48", "--workers", "2",
                          "--device", "cpu", "--out", str(out), "--no-progress"])
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    state = _final_state(out)
    assert state["epoch"] == 1 and tuple(state["model"]["conv1.weight"].shape) == (64, 3, 3, 3)  # the CIFAR stem
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "images_per_s"} <= rows[0].keys()
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_cifar10_names_the_expected_files(tmp_path):
    with pytest.raises(SystemExit, match=r"cifar-10-batches-py.*data_batch_1.*test_batch.*batches\.meta"):
        train.main(["--dataset", "cifar10", "--data-root", str(tmp_path), "--out", str(tmp_path / "run")])


# ----- resume ------------------------------------------------------------------------------------
def test_stop_and_resume_equals_uninterrupted_run(tmp_path):
    args = QUICK + ["--epochs", "2", "--optimizer", "adamw", "--schedule", "cosine", "--lr", "3e-3"]
    full = train.main(args + ["--out", str(tmp_path / "full")])
    train.main(args + ["--out", str(tmp_path / "cut"), "--stop-after", "1"])
    assert _final_state(tmp_path / "cut")["epoch"] == 1
    resumed = train.main(args + ["--out", str(tmp_path / "cut"), "--resume"])
    a, b = _final_state(tmp_path / "full"), _final_state(tmp_path / "cut")
    for part in ("model", "optimizer", "scheduler", "rng"):
        _assert_bitwise_equal(a[part], b[part], part)
    assert [r["test_loss"] for r in full] == [r["test_loss"] for r in resumed]
    assert len((tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()) == 2


def _cli(args, out, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-m", "neuronix.train", *args, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    args = QUICK + ["--epochs", "2", "--workers", "1", "--label-smoothing", "0.1"]
    full = _cli(args, tmp_path / "full")
    killed = _cli(args, tmp_path / "cut")
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # mid-run, at whatever point epoch 2 has reached
    killed.wait()
    assert _final_state(tmp_path / "cut")["epoch"] >= 1  # the last good checkpoint survived the kill
    resumed = _cli(args + ["--resume"], tmp_path / "cut")
    for proc in (full, resumed):
        assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
    a, b = _final_state(tmp_path / "full"), _final_state(tmp_path / "cut")
    assert a["epoch"] == b["epoch"] == 2
    for part in ("model", "optimizer", "scheduler"):
        _assert_bitwise_equal(a[part], b[part], part)


# ----- trajectory parity with torch --------------------------------------------------------------
@pytest.mark.parametrize("optimizer,schedule", [("sgd-nesterov", "onecycle"), ("adamw", "cosine")])
def test_trajectory_matches_torch_float64(optimizer, schedule):
    steps = 20
    args = argparse.Namespace(optimizer=optimizer, schedule=schedule, lr=0.05 if optimizer == "sgd-nesterov" else 5e-3,
                              momentum=0.9, weight_decay=5e-4 if optimizer == "sgd-nesterov" else 0.05, epochs=2)
    torch.manual_seed(0)
    twin = TorchResNet([1, 1, 1, 1], 10, cifar_stem=True, width=4).double()
    model = nx.models.ResNet([1, 1, 1, 1], num_classes=10, cifar_stem=True, width=4).double()
    model.load_state_dict(twin.state_dict())
    opt, sched = train.build_optimizer(args, model, steps_per_epoch=steps // 2)
    if optimizer == "sgd-nesterov":
        opt_t = torch.optim.SGD(twin.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
        sched_t = torch.optim.lr_scheduler.OneCycleLR(opt_t, max_lr=args.lr, total_steps=steps)
    else:
        opt_t = torch.optim.AdamW(twin.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        sched_t = torch.optim.lr_scheduler.CosineAnnealingLR(opt_t, T_max=steps)
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 8, 8, generator=gen, dtype=torch.float64), torch.randint(0, 10, (8,), generator=gen))
               for _ in range(4)]
    losses, losses_t = [], []
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss = F.cross_entropy(model(nx.Tensor(x)), y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        loss_t = torch.nn.functional.cross_entropy(twin(x), y, label_smoothing=0.1)
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        sched_t.step()
        losses.append(loss.item())
        losses_t.append(loss_t.item())
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(losses_t), rtol=1e-7, atol=1e-12)
    assert sum(losses[-4:]) < sum(losses[:4])  # the trajectory went somewhere: it fits the 4 batches
    for name, p in twin.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], p, rtol=1e-7, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")


# ----- learning on real data ---------------------------------------------------------------------
def test_digits_reaches_95_percent(tmp_path):
    start = time.perf_counter()
    history = train.main(["--dataset", "digits", "--epochs", "12", "--batch-size", "64", "--workers", "0",
                          "--no-progress", "--out", str(tmp_path)])
    elapsed = time.perf_counter() - start
    assert history[-1]["test_acc"] >= 0.95, history[-1]
    assert elapsed < 120


# ----- DataLoader workers ------------------------------------------------------------------------
def test_workers_default_suits_the_data(tmp_path):
    assert train.parse_args(["--dataset", "digits"]).workers is None  # decided once the data is known
    assert train.default_workers(train.digits()) == 0  # in memory: a worker would only add start-up and copies
    on_disk = train.Data(None, None, 3, 10, 32, in_memory=False)
    assert 1 <= train.default_workers(on_disk) <= 4
    history = train.main(QUICK[:QUICK.index("--workers")] + QUICK[QUICK.index("--workers") + 2:]
                         + ["--epochs", "1", "--out", str(tmp_path)])
    assert nx.load(tmp_path / train.CHECKPOINT)["args"]["workers"] == 0 and len(history) == 1


def test_worker_processes_give_the_same_final_parameters(tmp_path):
    """Persistent workers draw their base seed once, fresh loaders every epoch: the shuffles must not depend on it."""
    args = QUICK[:QUICK.index("--workers")] + QUICK[QUICK.index("--workers") + 2:] + ["--epochs", "2"]
    runs = {}
    for workers in ("0", "2"):
        runs[workers] = train.main(args + ["--workers", workers, "--out", str(tmp_path / workers)])
    a, b = _final_state(tmp_path / "0"), _final_state(tmp_path / "2")
    for part in ("model", "optimizer", "scheduler"):
        _assert_bitwise_equal(a[part], b[part], part)
    assert [r["test_loss"] for r in runs["0"]] == [r["test_loss"] for r in runs["2"]]
    for row in runs["2"]:  # images/s is timed from the first batch: the workers' start-up is reported apart
        assert row["startup_s"] > 0
        trained = row["images_per_s"] * (row["epoch_time_s"] - row["startup_s"])
        assert abs(trained - 320) < 320 * 0.02, row
