"""Variational autoencoder on MNIST-shaped images (Kingma & Welling, 2013), in the style of the PyTorch VAE example.

Written as a torch program; only the imports differ (the data pipeline stays torch's):

    -import torch
    -import torch.nn as nn
    -import torch.nn.functional as F
    -from torch import optim
    +import neuronix as torch
    +import neuronix.nn as nn
    +import neuronix.nn.functional as F
    +from neuronix import optim

Run: ``python examples/vae.py --epochs 2``. ``main(argv)`` returns the training loss of every step.
The images are synthetic (no download): 28x28 in [0, 1], each a noisy copy of one of ten random
black-and-white "digit" templates, in the format torchvision's ``MNIST`` with ``ToTensor()`` yields.
"""

from __future__ import annotations

import argparse

from torch.utils.data import DataLoader, Dataset

import neuronix as torch
import neuronix.nn as nn
import neuronix.nn.functional as F
from neuronix import optim


class SyntheticDigits(Dataset):
    """(image, label) pairs shaped like ``MNIST(transform=ToTensor())``: a 1x28x28 float image in [0, 1]."""

    def __init__(self, size: int, templates):
        self.labels = torch.randint(0, 10, (size,))
        noise = torch.rand(size, 28, 28)
        self.images = (0.9 * templates[self.labels] + 0.1 * noise).unsqueeze(1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


class VAE(nn.Module):
    """784 -> 400 -> (mean, log-variance) of a 20-d Gaussian; 20 -> 400 -> 784 Bernoulli means."""

    def __init__(self, latent: int = 20, hidden: int = 400):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc_mu = nn.Linear(hidden, latent)
        self.fc_logvar = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        # z = mu + sigma * eps keeps the sample differentiable in mu and logvar
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    """Negative ELBO: reconstruction cross-entropy plus KL(q(z|x) || N(0, I)), summed over the batch."""
    reconstruction = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return reconstruction + kl


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="VAE on synthetic MNIST-shaped digits")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=1024)
    parser.add_argument("--test-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
    parser.add_argument("--no-cuda", action="store_true", help="train on the CPU even if CUDA is available")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=4)
    return parser


def main(argv: list[str] | None = None) -> list[float]:
    args = build_parser().parse_args(argv)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if not args.no_cuda and torch.cuda.is_available() else "cpu")

    templates = (torch.rand(10, 28, 28) > 0.75).float()  # mostly-black "digits" with white strokes, shared by both sets
    train_loader = DataLoader(SyntheticDigits(args.train_size, templates), batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(SyntheticDigits(args.test_size, templates), batch_size=args.batch_size)
    model = VAE().to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)

    losses: list[float] = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch_idx, (data, _) in enumerate(train_loader):
            data = data.to(device)
            optimizer.zero_grad()
            recon, mu, logvar = model(data)
            loss = loss_function(recon, data, mu, logvar)
            loss.backward()
            optimizer.step()
            losses.append(loss.item() / len(data))
            if batch_idx % args.log_interval == 0:
                print(f"epoch {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}] loss {losses[-1]:.4f}")
            if args.max_steps is not None and len(losses) >= args.max_steps:
                return losses

        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for data, _ in test_loader:
                data = data.to(device)
                recon, mu, logvar = model(data)
                test_loss += loss_function(recon, data, mu, logvar).item()
            samples = model.decode(torch.randn(64, 20, device=device)).view(64, 1, 28, 28)
        print(f"epoch {epoch} test loss {test_loss / len(test_loader.dataset):.4f}, "
              f"64 samples of mean intensity {samples.mean().item():.3f}")
    return losses


if __name__ == "__main__":
    main()
