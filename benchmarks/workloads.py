"""The benchmark workloads: one neuronix step and its torch twin, same weights, same data.

Each ``setup_*`` returns a ``Workload``: the two step functions (called alternately by
``timing.interleave``), how many calls make one timed block, and a scale that turns
seconds per call into the reported unit. Every step is a full training step where the
workload is a model: zero_grad, forward, loss, backward, optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import neuronix as nx

LR, MOMENTUM = 0.01, 0.9


@dataclass
class Workload:
    name: str
    neuronix: Callable[[], object]
    torch: Callable[[], object]
    repeat: int = 1  # calls per timed block
    unit: str = "ms/step"
    scale: float = 1e3  # seconds per call -> unit
    info: dict = field(default_factory=dict)


def _train_step(model, optimizer, loss_fn, inputs, targets):
    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _pair(nx_model, torch_model, device: str):
    """Copy the torch model's weights into the neuronix model; both on ``device``."""
    torch_model.to(device)
    nx_model.load_state_dict(torch_model.state_dict())
    nx_model.to(device)
    return nx_model, torch_model


def _sgd(nx_model, torch_model):
    return (nx.optim.SGD(nx_model.parameters(), lr=LR, momentum=MOMENTUM),
            torch.optim.SGD(torch_model.parameters(), lr=LR, momentum=MOMENTUM))


# ----- 1. tiny-op chain -------------------------------------------------------------------------
def chain(lib, x, w, length: int):
    """``length`` elementwise ops (mul, add, tanh, sub in turn) on ``x``, then sum and backward."""
    y = x
    for i in range(length):
        k = i % 4
        if k == 0:
            y = y * w
        elif k == 1:
            y = y + 0.5
        elif k == 2:
            y = y.tanh()
        else:
            y = y - w
    y.sum().backward()


def setup_tiny_chain(device: str = "cpu", quick: bool = False) -> Workload:
    length = 1000
    base = torch.randn(16, device=device)
    xn, wn = nx.Tensor(base.clone(), requires_grad=True), nx.Tensor(base.flip(0), requires_grad=True)
    xt, wt = base.clone().requires_grad_(), base.flip(0).clone().requires_grad_()

    def nx_step():
        xn.grad = wn.grad = None
        chain(nx, xn, wn, length)

    def torch_step():
        xt.grad = wt.grad = None
        chain(torch, xt, wt, length)

    # µs per op: forward op + its share of the backward
    return Workload("tiny_chain", nx_step, torch_step, repeat=2 if quick else 5, unit="µs/op", scale=1e6 / length,
                    info={"ops": length, "numel": 16, "ops_cycle": "mul, add scalar, tanh, sub"})


# ----- 2. MLP --------------------------------------------------------------------------------------
def _mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def setup_mlp(device: str = "cpu", quick: bool = False) -> Workload:
    torch.manual_seed(0)
    nx_model, torch_model = _pair(_mlp(nx), _mlp(torch), device)
    nx_opt, torch_opt = _sgd(nx_model, torch_model)
    x = torch.randn(64, 784, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    return Workload(
        "mlp", _train_step(nx_model, nx_opt, nx.nn.functional.cross_entropy, nx.tensor(x), y),
        _train_step(torch_model, torch_opt, torch.nn.functional.cross_entropy, x, y),
        repeat=5 if quick else 20, info={"layers": "784-256-256-10", "batch": 64, "optimizer": "SGD momentum 0.9"})


# ----- 3. ResNet-18 --------------------------------------------------------------------------------
def torch_resnet18():
    """torchvision's ResNet-18 structure with the CIFAR stem, in plain ``torch.nn`` (the tests' twin)."""
    from tests._torch_resnet import TorchResNet

    return TorchResNet([2, 2, 2, 2], num_classes=10, cifar_stem=True)


def resnet_models(device: str):
    torch.manual_seed(0)
    return _pair(nx.models.resnet18(num_classes=10, cifar_stem=True), torch_resnet18(), device)


def resnet_batch(device: str, batch: int = 32):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    return x, y


def setup_resnet18(device: str = "cpu", quick: bool = False) -> Workload:
    nx_model, torch_model = resnet_models(device)
    nx_opt, torch_opt = _sgd(nx_model, torch_model)
    x, y = resnet_batch(device, 2 if quick else 32)
    return Workload(
        "resnet18", _train_step(nx_model, nx_opt, nx.nn.functional.cross_entropy, nx.tensor(x), y),
        _train_step(torch_model, torch_opt, torch.nn.functional.cross_entropy, x, y),
        repeat=1 if device == "cpu" else 5, info={"batch": x.shape[0], "image": "3x32x32", "stem": "cifar 3x3"})


# ----- 4. transformer block ------------------------------------------------------------------------
# The nn issue's end-to-end mirror (conformance/mirrors/models_e2e.py), at benchmark size.
TRANSFORMER = {"vocab": 256, "width": 128, "heads": 4, "context": 64}


def setup_transformer(device: str = "cpu", quick: bool = False) -> Workload:
    from conformance.mirrors.models_e2e import transformer_block

    torch.manual_seed(0)
    torch_model = transformer_block(torch, **TRANSFORMER).to(device)
    nx_model = transformer_block(nx, **TRANSFORMER)
    nx_model.load_state_dict(torch_model.state_dict())
    nx_model.to(device)
    nx_opt, torch_opt = _sgd(nx_model, torch_model)
    gen = torch.Generator().manual_seed(2)
    batch, steps = (2, 16) if quick else (8, TRANSFORMER["context"])
    ids = torch.randint(0, TRANSFORMER["vocab"], (batch, steps + 1), generator=gen).to(device)
    inputs, targets = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()

    def step(model, optimizer, inputs, targets):
        def run():
            optimizer.zero_grad()
            loss = model(inputs, targets)  # the model returns its label-smoothed cross-entropy
            loss.backward()
            optimizer.step()
            return loss

        return run

    return Workload(
        "transformer", step(nx_model, nx_opt, nx.Tensor(inputs), nx.Tensor(targets)),
        step(torch_model, torch_opt, inputs, targets), repeat=2 if quick else 5,
        info={"batch": batch, "tokens": steps, **TRANSFORMER, "label_smoothing": 0.1,
              "model": "conformance.mirrors.models_e2e.transformer_block"})


WORKLOADS = {
    "tiny_chain": setup_tiny_chain,
    "mlp": setup_mlp,
    "resnet18": setup_resnet18,
    "transformer": setup_transformer,
}
