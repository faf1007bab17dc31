"""A small GPT-style transformer block, written once for either library.

``build(lib)`` takes ``torch`` or ``neuronix`` (same names, same signatures) and returns
the model class, so the two sides of the benchmark are one piece of code: token and
position embeddings, layer norm, causal self-attention spelled out as matmul + softmax
with an additive mask, a GELU MLP, residual connections, a final layer norm and a
vocabulary head. The loss is cross-entropy with label smoothing.
"""

from __future__ import annotations

import math

import torch

VOCAB, WIDTH, HEADS, CONTEXT = 256, 128, 4, 64


def build(lib):
    """The transformer-block model class on ``lib`` (``torch`` or ``neuronix``)."""
    nn = lib.nn

    class TransformerBlock(nn.Module):
        def __init__(self, vocab: int = VOCAB, width: int = WIDTH, heads: int = HEADS, context: int = CONTEXT) -> None:
            super().__init__()
            self.heads = heads
            self.tok = nn.Embedding(vocab, width)
            self.pos = nn.Embedding(context, width)
            self.ln1 = nn.LayerNorm(width)
            self.qkv = nn.Linear(width, 3 * width)
            self.proj = nn.Linear(width, width)
            self.ln2 = nn.LayerNorm(width)
            self.fc1 = nn.Linear(width, 4 * width)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(4 * width, width)
            self.ln_f = nn.LayerNorm(width)
            self.head = nn.Linear(width, vocab)
            # a constant, not a parameter: -inf above the diagonal hides future tokens
            self.mask = torch.full((context, context), float("-inf")).triu(1)
            self.positions = torch.arange(context)

        def to_device(self, device):
            """Move the parameters and the two constants (plain tensors, not buffers)."""
            self.to(device)
            self.mask, self.positions = self.mask.to(device), self.positions.to(device)
            return self

        def forward(self, idx):
            batch, steps = idx.shape
            width = self.tok.weight.shape[1]
            dh = width // self.heads
            x = self.tok(idx) + self.pos(self.positions[:steps])
            q, k, v = self.qkv(self.ln1(x)).split(width, dim=-1)
            q, k, v = (t.reshape(batch, steps, self.heads, dh).transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(dh)) + self.mask[:steps, :steps]
            attended = nn.functional.softmax(scores, dim=-1) @ v
            x = x + self.proj(attended.transpose(1, 2).reshape(batch, steps, width))
            x = x + self.fc2(self.act(self.fc1(self.ln2(x))))
            return self.head(self.ln_f(x))

    return TransformerBlock


def loss(lib, logits, targets, label_smoothing: float = 0.1):
    """Mean token cross-entropy with label smoothing."""
    vocab = logits.shape[-1]
    return lib.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1), label_smoothing=label_smoothing)
