"""End-to-end model checks: a small CNN and a small transformer block, each written once.

The model code below takes the library (``neuronix`` or ``torch``) as its only switch: the
neuronix model is exactly the torch model's code with the import swapped. The module
driver builds both after the same seed, loads the torch twin's state_dict into the
neuronix model and compares the loss, the input gradient (CNN) and every parameter's
gradient, in train mode (batch statistics, running-stat updates) and eval mode.
"""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import ModuleMirror, Sample, register
from conformance.strategies import index_tensor, tensor


def small_cnn(lib, classes: int = 5):
    """conv -> batchnorm -> relu -> maxpool -> conv (stride 2) -> batchnorm -> relu -> avgpool -> linear, with its loss."""
    nn = lib.nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 6, kernel_size=3, padding=1),
                nn.BatchNorm2d(6),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(6, 8, kernel_size=3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(8),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d((1, 1)),
                nn.Flatten(),
            )
            self.classifier = nn.Linear(8, classes)
            self.loss = nn.CrossEntropyLoss()

        def forward(self, images, labels):
            return self.loss(self.classifier(self.features(images)), labels)

    return SmallCNN()


def transformer_block(lib, vocab: int = 11, width: int = 16, heads: int = 2, context: int = 8):
    """Token + position embeddings, one pre-norm causal self-attention block and a GELU MLP, a
    language-model head and cross-entropy with label smoothing."""
    nn, F = lib.nn, lib.nn.functional

    class TransformerBlock(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tokens = nn.Embedding(vocab, width)
            self.positions = nn.Embedding(context, width)
            self.ln1 = nn.LayerNorm(width)
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)
            self.ln2 = nn.LayerNorm(width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
            self.ln_f = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab)
            self.loss = nn.CrossEntropyLoss(label_smoothing=0.1)
            self.register_buffer("causal", torch.tril(torch.ones(context, context, dtype=torch.bool)), persistent=False)

        def attention(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(x).split(width, dim=-1)
            q, k, v = (z.reshape(b, t, heads, width // heads).transpose(1, 2) for z in (q, k, v))
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(width // heads))
            scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
            mixed = F.softmax(scores, dim=-1) @ v
            return self.proj(mixed.transpose(1, 2).reshape(b, t, width))

        def forward(self, ids, targets):
            b, t = ids.shape
            x = self.tokens(ids) + self.positions(lib.arange(t, device=ids.device))
            x = x + self.attention(self.ln1(x))
            x = x + self.mlp(self.ln2(x))
            logits = self.head(self.ln_f(x))
            return self.loss(logits.reshape(b * t, vocab), targets.reshape(b * t))

    return TransformerBlock()


def cnn_sample(draw, args, kwargs, dtype, device):
    n, size = draw(st.integers(2, 3)), draw(st.sampled_from([6, 7, 8]))
    images = tensor(draw, (n, 3, size, size), dtype, device, contiguous=True)
    if draw(st.booleans()):
        images = images.contiguous(memory_format=torch.channels_last)
    return Sample((images, index_tensor(draw, (n,), 5, device)))


def transformer_sample(draw, args, kwargs, dtype, device):
    b, t = draw(st.integers(1, 3)), draw(st.integers(1, 8))
    return Sample((index_tensor(draw, (b, t), 11, device), index_tensor(draw, (b, t), 11, device)))


def _no_args(draw):
    return (), {}


register(
    ModuleMirror("nn.Module[e2e small CNN]", lambda: small_cnn(nx), lambda: small_cnn(torch), _no_args, cnn_sample, gradgrad=True,
                 note="conv, batchnorm, relu, pooling, linear and cross-entropy: the loss and every gradient"),
    ModuleMirror("nn.Module[e2e transformer block]", lambda: transformer_block(nx), lambda: transformer_block(torch),
                 _no_args, transformer_sample, gradgrad=True,
                 note="embeddings, layer norm, causal softmax attention, GELU MLP, label-smoothed cross-entropy"),
)
