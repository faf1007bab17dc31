"""Deep convolutional GAN (Radford et al., 2015), in the style of the PyTorch DCGAN example.

Written as a torch program; only the imports differ (the data pipeline stays torch's):

    -import torch
    -import torch.nn as nn
    -import torch.optim as optim
    +import neuronix as torch
    +import neuronix.nn as nn
    +import neuronix.optim as optim

Run: ``python examples/dcgan.py --niter 1``. ``main(argv)`` returns, for every step, the pair
(discriminator loss, generator loss). The images are synthetic (no download): 3x64x64 pictures of
soft coloured blobs, scaled to [-1, 1] as ``transforms.Normalize((0.5,) * 3, (0.5,) * 3)`` scales
an ``ImageFolder``'s.
"""

from __future__ import annotations

import argparse
import random

from torch.utils.data import DataLoader, Dataset

import neuronix as torch
import neuronix.nn as nn
import neuronix.optim as optim


class BlobImages(Dataset):
    """(image, 0) pairs like ``ImageFolder``'s after ToTensor and Normalize: 3 x size x size in [-1, 1]."""

    def __init__(self, count: int, size: int = 64):
        axis = torch.linspace(-1, 1, size)
        ys, xs = axis.view(-1, 1), axis.view(1, -1)
        centres = torch.rand(count, 2, 1, 1) * 1.2 - 0.6
        widths = torch.rand(count, 1, 1) * 0.3 + 0.15
        colours = torch.rand(count, 3, 1, 1)
        blob = torch.exp(-((xs - centres[:, 0]) ** 2 + (ys - centres[:, 1]) ** 2) / (2 * widths**2))
        self.images = (colours * blob.unsqueeze(1)) * 2 - 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], 0


def weights_init(m):
    """DCGAN's initialisation: convolutions N(0, 0.02), batch-norm scales N(1, 0.02) and shifts 0."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class Generator(nn.Module):
    """A latent vector nz x 1 x 1 up to an nc x 64 x 64 image by four stride-2 transposed convolutions."""

    def __init__(self, nz: int, ngf: int, nc: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    """An nc x 64 x 64 image down to the probability that it is real, by stride-2 convolutions."""

    def __init__(self, ndf: int, nc: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, image):
        return self.main(image).view(-1, 1).squeeze(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="DCGAN on synthetic 64x64 blob images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--nz", type=int, default=100, help="size of the latent vector")
    parser.add_argument("--ngf", type=int, default=64, help="generator width")
    parser.add_argument("--ndf", type=int, default=64, help="discriminator width")
    parser.add_argument("--niter", type=int, default=2, help="epochs")
    parser.add_argument("--lr", type=float, default=0.0002)
    parser.add_argument("--beta1", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many training steps")
    parser.add_argument("--no-cuda", action="store_true", help="train on the CPU even if CUDA is available")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--outf", default=None, help="write the networks' state_dicts to this folder")
    return parser


def main(argv: list[str] | None = None) -> list[tuple[float, float]]:
    args = build_parser().parse_args(argv)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if not args.no_cuda and torch.cuda.is_available() else "cpu")

    dataloader = DataLoader(BlobImages(args.train_size), batch_size=args.batch_size, shuffle=True)
    netG = Generator(args.nz, args.ngf, 3).to(device)
    netG.apply(weights_init)
    netD = Discriminator(args.ndf, 3).to(device)
    netD.apply(weights_init)

    criterion = nn.BCELoss()
    fixed_noise = torch.randn(args.batch_size, args.nz, 1, 1, device=device)
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=args.lr, betas=(args.beta1, 0.999))

    losses: list[tuple[float, float]] = []
    for epoch in range(args.niter):
        for i, (real, _) in enumerate(dataloader):
            # (1) the discriminator: maximise log D(x) + log(1 - D(G(z)))
            netD.zero_grad()
            real = real.to(device)
            batch_size = real.size(0)
            label = torch.full((batch_size,), real_label, dtype=real.dtype, device=device)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()

            noise = torch.randn(batch_size, args.nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()

            # (2) the generator: maximise log D(G(z)), with the real label as the target
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()

            losses.append((errD.item(), errG.item()))
            print(f"[{epoch}/{args.niter}][{i}/{len(dataloader)}] loss_D {errD.item():.4f} loss_G {errG.item():.4f} "
                  f"D(x) {D_x:.4f} D(G(z)) {D_G_z1:.4f} / {D_G_z2:.4f}")
            if args.max_steps is not None and len(losses) >= args.max_steps:
                return losses

        with torch.no_grad():
            fake = netG(fixed_noise)
        print(f"epoch {epoch}: samples from the fixed noise span [{fake.min().item():.3f}, {fake.max().item():.3f}]")
        if args.outf:
            torch.save(netG.state_dict(), f"{args.outf}/netG_epoch_{epoch}.pth")
            torch.save(netD.state_dict(), f"{args.outf}/netD_epoch_{epoch}.pth")
    return losses


if __name__ == "__main__":
    main()
