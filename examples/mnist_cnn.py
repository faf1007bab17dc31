"""A convolutional digit classifier, in the style of the PyTorch MNIST example.

Written as a torch program; only the imports differ (the data pipeline stays torch's):

    -import torch
    -import torch.nn as nn
    -import torch.nn.functional as F
    -import torch.optim as optim
    -from torch.optim.lr_scheduler import StepLR
    +import neuronix as torch
    +import neuronix.nn as nn
    +import neuronix.nn.functional as F
    +import neuronix.optim as optim
    +from neuronix.optim.lr_scheduler import StepLR

Run: ``python examples/mnist_cnn.py --epochs 3``. ``main(argv)`` returns the training loss of every step.
The digits are synthetic (no download): 28x28 grey images, each a noisy copy of its class's random
template, normalised as ``transforms.Normalize((0.1307,), (0.3081,))`` normalises MNIST.
"""

from __future__ import annotations

import argparse

from torch.utils.data import DataLoader, Dataset

import neuronix as torch
import neuronix.nn as nn
import neuronix.nn.functional as F
import neuronix.optim as optim
from neuronix.optim.lr_scheduler import StepLR

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class SyntheticMNIST(Dataset):
    """(image, label) pairs as ``MNIST(transform=Compose([ToTensor(), Normalize(...)]))`` yields them."""

    def __init__(self, size: int, templates):
        self.targets = torch.randint(0, 10, (size,))
        pixels = 0.7 * templates[self.targets] + 0.3 * torch.rand(size, 28, 28)
        self.data = (pixels * 255).to(torch.uint8)  # stored as MNIST stores them: uint8, 0..255

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        image = self.data[index].float().div(255).unsqueeze(0)
        return (image - MNIST_MEAN) / MNIST_STD, self.targets[index]


class Net(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool, dropout, two linear layers; log-probabilities of 10 classes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = torch.flatten(x, 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def train(args, model, device, train_loader, optimizer, epoch, losses):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % args.log_interval == 0:
            print(f"epoch {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}] loss {loss.item():.6f}")
        if args.max_steps is not None and len(losses) >= args.max_steps:
            return


def test(model, device, test_loader):
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            correct += output.argmax(dim=1).eq(target).sum().item()
    size = len(test_loader.dataset)
    print(f"test: average loss {test_loss / size:.4f}, accuracy {correct}/{size} ({100.0 * correct / size:.0f}%)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="CNN on synthetic MNIST-shaped digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--test-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7, help="learning-rate decay per epoch")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
    parser.add_argument("--no-cuda", action="store_true", help="train on the CPU even if CUDA is available")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=4)
    parser.add_argument("--save-model", default=None, help="write the trained state_dict to this file")
    return parser


def main(argv: list[str] | None = None) -> list[float]:
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if not args.no_cuda and torch.cuda.is_available() else "cpu")

    templates = torch.rand(10, 28, 28)  # one "digit" per class, shared by the train and test sets
    train_loader = DataLoader(SyntheticMNIST(args.train_size, templates), batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(SyntheticMNIST(args.test_size, templates), batch_size=args.test_batch_size)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    losses: list[float] = []
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch, losses)
        test(model, device, test_loader)
        scheduler.step()
        if args.max_steps is not None and len(losses) >= args.max_steps:
            break
    if args.save_model:
        torch.save(model.state_dict(), args.save_model)
    return losses


if __name__ == "__main__":
    main()
