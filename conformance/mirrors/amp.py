"""Mirrors for mixed precision (issue 14): autocast and GradScaler, trained step for step (``kinds/amp.py``).

The model has one of each kind of op the autocast lists treat differently: a convolution and linear
layers (lower precision), a ReLU and a flatten (no policy: they keep their input's dtype), a LayerNorm
(float32 on CUDA, no policy on the CPU), and cross_entropy (float32 on the CPU; on CUDA its log_softmax
and nll_loss are float32). The case dtype is the autocast dtype (bfloat16, float16).
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from conformance.mirror import AmpMirror, register

CLASSES = 4


def _model(lib):
    nn = lib.nn
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.LayerNorm(3 * 5 * 5),
        nn.Linear(3 * 5 * 5, 8), nn.ReLU(), nn.Linear(8, CLASSES),
    )


def _data(draw):
    batch = draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    return torch.randn(batch, 2, 5, 5, generator=gen), torch.randint(0, CLASSES, (batch,), generator=gen)


def _forward(lib, model, inputs, target):
    x = inputs if lib is torch else lib.Tensor(inputs)
    F = lib.nn.functional
    outputs = []
    for i, layer in enumerate(model):
        x = layer(x)
        outputs.append((f"layer {i} ({type(layer).__name__})", x))
    outputs.append(("softmax", F.softmax(x, dim=1)))
    outputs.append(("cross_entropy", F.cross_entropy(x, target)))
    return outputs


register(
    AmpMirror("amp.autocast+GradScaler", _model, _data, _forward, examples={"ci": 2, "thorough": 10},
              note="conv/linear/LayerNorm/softmax/cross_entropy trained 5 steps under autocast with a GradScaler "
                   "(SGD with momentum), an inf planted in one step's gradient"),
)
