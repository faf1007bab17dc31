"""Interleaved side-by-side timing and the machine facts a timing means nothing without.

``interleave`` runs every contender once per round, in an order that rotates from round
to round (so neither library always runs first, on a warm cache or right after the other
one's garbage), and keeps one time per contender per round. ``compare`` turns two such
series into per-round ratios: a ratio taken within one round sees the same machine load
on both sides, which is what makes it meaningful on a shared, busy machine.

Shared by every benchmark in this folder (``bench_core`` included).
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import time
from collections.abc import Callable

import torch


def _cuda_timer(device: str):
    """``(start, stop)`` closures measuring GPU time with CUDA events (seconds)."""
    start_evt = torch.cuda.Event(enable_timing=True)
    stop_evt = torch.cuda.Event(enable_timing=True)

    def start() -> None:
        torch.cuda.synchronize(device)
        start_evt.record()

    def stop() -> float:
        stop_evt.record()
        stop_evt.synchronize()
        return start_evt.elapsed_time(stop_evt) / 1e3

    return start, stop


def _cpu_timer():
    box = [0.0]

    def start() -> None:
        box[0] = time.perf_counter()

    def stop() -> float:
        return time.perf_counter() - box[0]

    return start, stop


def interleave(fns: dict[str, Callable[[], object]], rounds: int, repeat: int = 1, warmup: int = 1,
               device: str = "cpu", cpu_times: dict[str, list[float]] | None = None,
               faults: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each function, one figure per round (the mean of ``repeat`` calls).

    Every function is first called ``warmup`` times (allocator pools, kernel selection,
    lazy imports). Round ``r`` runs the functions starting from the ``r``-th (mod n), so
    the order rotates. The cyclic garbage collector is run before each timed block, so
    garbage one contender left does not get collected on the other's clock.

    ``cpu_times``, when given, receives the process CPU time per call as well (all threads):
    on a machine shared with other jobs it is steadier than the wall clock, though it also
    counts the time torch's worker threads spin. ``faults`` receives the minor page faults per
    call (memory the allocator had to get fresh from the kernel: glibc returns freed blocks to the
    system and the next allocation faults them back in, page by page).
    """
    names = list(fns)
    start, stop = _cuda_timer(device) if device.startswith("cuda") else _cpu_timer()
    for name in names:
        for _ in range(warmup):
            fns[name]()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            fn = fns[name]
            gc.collect()
            minflt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            cpu = time.process_time()
            start()
            for _ in range(repeat):
                fn()
            times[name].append(stop() / repeat)
            if cpu_times is not None:
                cpu_times.setdefault(name, []).append((time.process_time() - cpu) / repeat)
            if faults is not None:
                faults.setdefault(name, []).append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - minflt) / repeat)
    return times


def compare(candidate: list[float], baseline: list[float]) -> dict:
    """Per-round ratios ``candidate / baseline``: median and min-max, plus each side's median time."""
    ratios = [c / b for c, b in zip(candidate, baseline)]
    return {
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": ratios,
        "neuronix_median_s": statistics.median(candidate),
        "torch_median_s": statistics.median(baseline),
        "neuronix_s": candidate,
        "torch_s": baseline,
    }


# ----- the machine ----------------------------------------------------------------------------
def malloc_settings() -> dict:
    """``MALLOC_*`` variables, ``LD_PRELOAD``, and which allocator library is mapped into this process."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "GLIBC_TUNABLES", "LD_PRELOAD"))}
    mapped = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                for lib in ("jemalloc", "tcmalloc", "mimalloc"):
                    if lib in line:
                        mapped.add(lib)
    except OSError:
        pass
    return {"env": env, "preloaded": sorted(mapped) or ["glibc malloc"]}


def _cpu_ticks() -> dict[int, tuple[int, str]]:
    ticks = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks[int(pid)] = (int(fields[11]) + int(fields[12]), cmd or stat[stat.find("(") + 1 : stat.rfind(")")])
    return ticks


def busy_processes(window: float = 0.5, threshold: float = 10.0) -> list[dict]:
    """Other processes that used more than ``threshold`` % of one CPU over ``window`` seconds."""
    if not os.path.isdir("/proc"):
        return []
    hz = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks()
    time.sleep(window)
    after = _cpu_ticks()
    me = os.getpid()
    busy = []
    for pid, (ticks, cmd) in after.items():
        if pid == me or pid not in before:
            continue
        percent = 100.0 * (ticks - before[pid][0]) / hz / window
        if percent >= threshold:
            busy.append({"pid": pid, "cpu_percent": round(percent, 1), "cmd": cmd[:160]})
    return sorted(busy, key=lambda p: -p["cpu_percent"])


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict:
    """Facts that decide what a timing means: cores, threads, allocator, torch build, GPU."""
    import platform

    info = {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "malloc": malloc_settings(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        info["cpu_model"] = None
    return info
