"""Peak memory of the ResNet-18 training step, one library per process.

``python -m benchmarks.memory {neuronix,torch} [--device cpu|cuda] [--batch 32] [--steps 3]``
prints one JSON line. Both processes import both libraries and build both models (with the
same seed), then train only one, so the baselines match and the difference is the step.

On CPU the figure is the resident-set high-water mark (``VmHWM``, reset just before the
steps where the kernel allows it) minus the resident set just before the steps; on CUDA,
``torch.cuda.max_memory_allocated`` after a reset, minus what was allocated before.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile

import torch

import neuronix as nx
from benchmarks.workloads import LR, MOMENTUM, resnet_batch, resnet_models


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset the kernel's RSS high-water mark (Linux: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def allocator_peak(step) -> int:
    """Peak bytes of live torch tensors during ``step()`` above its start, from the profiler's memory events.

    Deterministic where RSS is not (glibc keeps freed pages, arenas fragment): the CPU analogue
    of ``torch.cuda.max_memory_allocated``. Blocks allocated before the profiler started are
    freed without a known size, so the step must start with the gradients already released.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = [e for e in json.load(f)["traceEvents"] if e.get("name") == "[memory]"]
    finally:
        os.remove(path)
    events.sort(key=lambda e: e["ts"])
    start = events[0]["args"]["Total Allocated"] - events[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in events) - start


def measure(lib: str, device: str = "cpu", batch: int = 32, steps: int = 3) -> dict:
    nx_model, torch_model = resnet_models(device)
    x, y = resnet_batch(device, batch)
    if lib == "neuronix":
        model, opt = nx_model, nx.optim.SGD(nx_model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn, inputs = nx.nn.functional.cross_entropy, nx.tensor(x)
    else:
        model, opt = torch_model, torch.optim.SGD(torch_model.parameters(), lr=LR, momentum=MOMENTUM)
        loss_fn, inputs = torch.nn.functional.cross_entropy, x
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = _status_kib("VmRSS") * 1024
        hwm_reset = _reset_hwm()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(inputs), y)
        loss.backward()
        opt.step()
        del loss
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"lib": lib, "device": device, "metric": "cuda max_memory_allocated", "before_bytes": before,
                "peak_bytes": peak, "step_peak_bytes": peak - before}
    peak = (_status_kib("VmHWM") * 1024) if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    opt.zero_grad()  # outside the profiled step: it must not see frees of blocks it never saw allocated

    def train_step():
        loss_fn(model(inputs), y).backward()
        opt.step()

    return {"lib": lib, "device": device, "metric": "RSS high-water mark" + ("" if hwm_reset else " (ru_maxrss)"),
            "before_bytes": before, "peak_bytes": peak, "step_peak_bytes": peak - before,
            "allocator_peak_bytes": allocator_peak(train_step)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lib", choices=["neuronix", "torch"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.lib, args.device, args.batch, args.steps)))


if __name__ == "__main__":
    main()
