"""The benchmark suite: neuronix against torch eager, side by side, one command.

    python -m benchmarks.suite                 # CPU (and CUDA when available), default rounds
    python -m benchmarks.suite --quick         # small sizes, few rounds: a smoke run
    python -m benchmarks.suite --conformance   # also time the CI conformance run (minutes)
    python -m benchmarks.suite --threads 1     # one torch thread (a machine shared with other jobs)
    python -m benchmarks.suite --malloc keep   # glibc keeps freed memory: no page-fault churn

Each timing workload runs in its own fresh process (``--worker NAME``) holding both
libraries; inside it the two steps alternate in rotating order for ``--rounds`` rounds and
the result is the median of the per-round ratios neuronix/torch, with min-max. Peak memory
is measured in separate processes per library (``benchmarks.memory``). The machine's load,
busy processes, thread count and allocator are recorded around every workload.

Writes ``reports/benchmarks.json`` and ``reports/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import timing

TARGETS = {"tiny_chain": 1.10, "mlp": 0.95, "resnet18": 1.00, "transformer": 1.00, "resnet18_memory": 1.00}  # issue 11
CUDA_WORKLOADS = ("mlp", "resnet18", "transformer")
ROUNDS = {"tiny_chain": 15, "mlp": 15, "resnet18": 7, "transformer": 11}


def run_worker(name: str, device: str, rounds: int, quick: bool) -> dict:
    """Time one workload in this process (both libraries, interleaved)."""
    from benchmarks.workloads import WORKLOADS

    workload = WORKLOADS[name](device, quick)
    load_before = timing.load_average()
    start = time.perf_counter()
    cpu: dict[str, list[float]] = {}
    faults: dict[str, list[float]] = {}
    times = timing.interleave({"neuronix": workload.neuronix, "torch": workload.torch}, rounds=rounds,
                              repeat=workload.repeat, warmup=2, device=device, cpu_times=cpu, faults=faults)
    result = timing.compare(times["neuronix"], times["torch"])
    cpu_ratio = timing.compare(cpu["neuronix"], cpu["torch"])
    result["cpu_time"] = {k: cpu_ratio[k] for k in ("ratio_median", "ratio_min", "ratio_max", "ratios")}
    result["page_faults_per_call"] = {lib: statistics.median(v) for lib, v in faults.items()}
    result.update(
        name=name, device=device, rounds=rounds, repeat=workload.repeat, unit=workload.unit,
        neuronix_median=result["neuronix_median_s"] * workload.scale, torch_median=result["torch_median_s"] * workload.scale,
        info=workload.info, wall_s=round(time.perf_counter() - start, 2), target=TARGETS.get(name),
        load_before=load_before, load_after=timing.load_average(), torch_threads=torch.get_num_threads(),
        malloc=timing.malloc_settings(),
    )
    return result


def _python() -> list[str]:
    return [sys.executable]


KEEP_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(2**32), "MALLOC_TRIM_THRESHOLD_": str(2**32),
               "MALLOC_TOP_PAD_": str(2**28)}
_worker_env: dict[str, str] = {}


def _subprocess_json(args: list[str], timeout: float) -> dict:
    env = {**os.environ, **_worker_env}
    proc = subprocess.run(_python() + args, capture_output=True, text=True, timeout=timeout, cwd=_root(), env=env)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _root() -> Path:
    return Path(__file__).resolve().parent.parent


def timed(name: str, device: str, rounds: int, quick: bool, threads: int | None) -> dict:
    args = ["-m", "benchmarks.suite", "--worker", name, "--device", device, "--rounds", str(rounds)]
    args += ["--quick"] if quick else []
    args += ["--threads", str(threads)] if threads else []
    return _subprocess_json(args, timeout=3600)


def memory(device: str, rounds: int, quick: bool, threads: int | None) -> dict:
    """Peak-memory ratio of the ResNet-18 step: alternating per-library processes, median over rounds."""
    batch, steps = (2, 1) if quick else (32, 3)
    runs: dict[str, list[dict]] = {"neuronix": [], "torch": []}
    for r in range(rounds):
        for lib in (("neuronix", "torch") if r % 2 == 0 else ("torch", "neuronix")):
            cmd = ["-m", "benchmarks.memory", lib, "--device", device, "--batch", str(batch), "--steps", str(steps)]
            out = _subprocess_json(cmd + (["--threads", str(threads)] if threads else []), timeout=1800)
            if "error" in out:
                return {"name": "resnet18_memory", "device": device, "error": out["error"]}
            runs[lib].append(out)
    step_nx = [o["step_peak_bytes"] for o in runs["neuronix"]]
    step_torch = [o["step_peak_bytes"] for o in runs["torch"]]
    ratios = [a / b for a, b in zip(step_nx, step_torch)]
    total_ratios = [a["peak_bytes"] / b["peak_bytes"] for a, b in zip(runs["neuronix"], runs["torch"])]
    alloc_nx = [o["allocator_peak_bytes"] for o in runs["neuronix"] if "allocator_peak_bytes" in o]
    alloc_torch = [o["allocator_peak_bytes"] for o in runs["torch"] if "allocator_peak_bytes" in o]
    mib = 1 / 2**20
    return {
        "name": "resnet18_memory", "device": device, "metric": runs["torch"][0]["metric"] + " above the pre-step baseline",
        "unit": "MiB", "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "ratios": ratios, "neuronix_median": statistics.median(step_nx) * mib,
        "torch_median": statistics.median(step_torch) * mib,
        "total_peak_ratio_median": statistics.median(total_ratios),
        "neuronix_total_peak_mib": statistics.median(o["peak_bytes"] for o in runs["neuronix"]) * mib,
        "torch_total_peak_mib": statistics.median(o["peak_bytes"] for o in runs["torch"]) * mib,
        "allocator_peak": None if not alloc_nx else {
            "metric": "peak live torch-tensor bytes in one step (torch.profiler memory events)",
            "ratio_median": statistics.median(a / b for a, b in zip(alloc_nx, alloc_torch)),
            "neuronix_mib": statistics.median(alloc_nx) * mib, "torch_mib": statistics.median(alloc_torch) * mib},
        "info": {"batch": batch, "steps": steps}, "rounds": rounds, "target": TARGETS["resnet18_memory"],
    }


def conformance_time() -> dict:
    """Wall time of ``tox -e conformance``'s run command (CI profile, all cores)."""
    cmd = ["-m", "conformance", "run", "--profile", "ci", "-n", "auto"]
    load_before = timing.load_average()
    start = time.perf_counter()
    proc = subprocess.run(_python() + cmd, capture_output=True, text=True, cwd=_root())
    return {"name": "conformance_ci", "command": "python " + " ".join(cmd), "wall_s": round(time.perf_counter() - start, 1),
            "exit_code": proc.returncode, "load_before": load_before, "load_after": timing.load_average(),
            "tail": proc.stdout.strip()[-600:]}


def _print(result: dict) -> None:
    if "error" in result:
        print(f"  {result['name']:<16} {result['device']:<5} ERROR {result['error'][-300:]}", flush=True)
        return
    target = result.get("target")
    verdict = "" if target is None else ("  ok" if result["ratio_median"] <= target else f"  above target {target}")
    print(f"  {result['name']:<16} {result['device']:<5} ratio {result['ratio_median']:.3f} "
          f"[{result['ratio_min']:.3f}-{result['ratio_max']:.3f}]  neuronix {result['neuronix_median']:.3f} "
          f"torch {result['torch_median']:.3f} {result['unit']}{verdict}"
          + (f"  (cpu-time ratio {result['cpu_time']['ratio_median']:.3f})" if "cpu_time" in result else ""), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description="neuronix vs torch benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes and 3 rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (default: per workload)")
    parser.add_argument("--only", nargs="*", default=None,
                        help="subset of: tiny_chain mlp resnet18 transformer memory growth conformance")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="all = cpu, plus cuda when available")
    parser.add_argument("--conformance", action="store_true", help="also time the CI conformance run (minutes)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads in every worker (default: torch's choice)")
    parser.add_argument("--malloc", choices=["default", "keep"], default="default",
                        help="keep: run the workers with glibc told to keep freed memory (no trimming, no per-block mmap), "
                             "so neither library pays page faults for the other's frees")
    parser.add_argument("--out", default="reports/benchmarks.json")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:  # one workload in this process; the last stdout line is its JSON
        rounds = args.rounds or ROUNDS[args.worker]
        print(json.dumps(run_worker(args.worker, args.device, rounds, args.quick)))
        return 0

    if args.malloc == "keep":
        _worker_env.update(KEEP_MALLOC)
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else ["cpu"]
    if args.device == "all" and torch.cuda.is_available():
        devices.append("cuda")
    selected = args.only or ["tiny_chain", "mlp", "resnet18", "transformer", "memory", "growth"]
    run_conformance = args.conformance or "conformance" in selected
    selected = [name for name in selected if name != "conformance"]
    report = {
        "command": "python -m benchmarks.suite " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "quick": args.quick, "machine": timing.machine(),
        "worker_malloc_env": dict(_worker_env),
        "load_before": timing.load_average(), "busy_before": timing.busy_processes(), "results": [],
    }
    print(f"machine: {report['machine']['cpu_count']} cpus, torch threads {report['machine']['torch_threads']}, "
          f"load {report['load_before']}, {len(report['busy_before'])} other busy processes", flush=True)
    for device in devices:
        for name in selected:
            if device.startswith("cuda") and name in ("tiny_chain", "growth"):
                continue
            if name == "growth":
                from benchmarks.growth import describe, sweep

                result = sweep((2_000, 10_000) if args.quick else (10_000, 100_000, 300_000))
                report["results"].append(result)
                print(describe(result), flush=True)
                continue
            if name == "memory":
                result = memory(device, args.rounds or (2 if args.quick else 3), args.quick, args.threads)
            else:
                rounds = 3 if args.quick and args.rounds is None else (args.rounds or ROUNDS[name])
                result = timed(name, device, rounds, args.quick, args.threads)
                result.setdefault("name", name)
                result.setdefault("device", device)
            report["results"].append(result)
            _print(result)
    if run_conformance:
        result = conformance_time()
        report["results"].append(result)
        print(f"  conformance_ci  wall {result['wall_s']} s (exit {result['exit_code']})", flush=True)
    report["load_after"] = timing.load_average()
    report["busy_after"] = timing.busy_processes()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    if not args.no_plot:
        from benchmarks.plot import plot

        png = out.with_suffix(".png")
        plot(report, png)
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
