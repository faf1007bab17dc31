"""The mixed-precision driver: the same model trained step for step under autocast with a GradScaler.

Both libraries start from the same float32 parameters (torch's, copied) and the same batch; each step
runs the mirror's forward inside ``autocast(device, dtype=<case dtype>)``, scales the loss, runs
backward, ``scaler.step(SGD with momentum)`` and ``scaler.update()``. Compared at every step: the
dtype of every output the forward reports (they must be EQUAL: that is autocast's whole contract),
their values (``forward``), the scaled gradients (``backward``, in each parameter's own dtype), the
parameters and the scale and growth tracker afterwards (``trajectory``). One drawn step gets an inf
planted in a gradient: both scalers must skip that step (parameters unchanged) and back the scale off.
The growth interval is short (2), so the scale also grows within the few steps. At the end the two
scalers' ``state_dict``s are compared key for key.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from hypothesis import strategies as st

import neuronix as nx
from conformance.mirror import AmpMirror, Comparison
from conformance.trace import Mismatch, note

# torch's first optimizer constructed in a process keeps that constructor's frame alive (a lazy import's traceback),
# and with it every caller's frame and the graphs their locals hold: a leak the harness would blame on neuronix
torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _raw(t):
    return t.data if isinstance(t, nx.Tensor) else t.detach()


def compare_amp(mirror: AmpMirror, draw, dtype: torch.dtype, device: torch.device) -> Iterator[Comparison]:
    torch_model = mirror.model(torch).to(device)
    nx_model = mirror.model(nx).to(device)
    with torch.no_grad():
        for p, tp in zip(nx_model.parameters(), torch_model.parameters(), strict=True):
            p.data.copy_(tp.detach())
    inputs, target = (t.to(device) for t in mirror.data(draw))
    init_scale = 2.0 ** draw(st.integers(4, 16))
    planted = draw(st.integers(0, mirror.steps - 1))
    note(inputs=[list(inputs.shape)], kwargs={"autocast": str(dtype), "init_scale": init_scale, "inf_at_step": planted})

    libs = {"neuronix": (nx, nx_model), "torch": (torch, torch_model)}
    optimizers = {name: lib.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) for name, (lib, model) in libs.items()}
    scalers = {name: lib.amp.GradScaler(device.type, init_scale=init_scale, growth_interval=2)
               for name, (lib, _) in libs.items()}
    for step in range(mirror.steps):
        outputs = {}
        for name, (lib, model) in libs.items():
            optimizers[name].zero_grad()
            with lib.autocast(device.type, dtype=dtype):
                outputs[name] = mirror.forward(lib, model, inputs, target)
            scalers[name].scale(outputs[name][-1][1]).backward()
            if step == planted:
                next(iter(model.parameters())).grad.data.view(-1)[0] = float("inf")
        for (label, out), (_, expected) in zip(outputs["neuronix"], outputs["torch"], strict=True):
            if out.dtype != expected.dtype:
                raise Mismatch("forward", f"{label} @ step {step}: dtype {out.dtype} under autocast, torch's {expected.dtype}")
            yield Comparison("forward", f"{label} @ step {step}", _raw(out), _raw(expected))
        del outputs
        for i, (p, tp) in enumerate(zip(nx_model.parameters(), torch_model.parameters())):
            if p.grad.dtype != tp.grad.dtype:
                raise Mismatch("backward", f"param {i} @ step {step}: grad dtype {p.grad.dtype}, torch's {tp.grad.dtype}")
            yield Comparison("backward", f"scaled grad of param {i} @ step {step}", _raw(p.grad), tp.grad)
        for name in libs:
            scalers[name].step(optimizers[name])
            scalers[name].update()
        for i, (p, tp) in enumerate(zip(nx_model.parameters(), torch_model.parameters())):
            yield Comparison("trajectory", f"param {i} @ step {step}", _raw(p), _raw(tp))
        for key in ("scale", "_growth_tracker"):
            got, want = scalers["neuronix"].state_dict()[key], scalers["torch"].state_dict()[key]
            yield Comparison("trajectory", f"scaler {key} @ step {step}", torch.tensor(float(got)), torch.tensor(float(want)))
    got, want = scalers["neuronix"].state_dict(), scalers["torch"].state_dict()
    if got != want:
        raise Mismatch("trajectory", f"GradScaler.state_dict() {got} != torch's {want}")
