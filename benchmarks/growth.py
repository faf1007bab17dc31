"""Does the cost of an op grow with the graph? Record a chain of ``x * 1.0001``, then backward.

    python -m benchmarks.growth                      # 10,000 / 100,000 / 300,000 nodes, both libraries
    python -m benchmarks.growth --one neuronix 300000   # one measurement (what the sweep runs per process)

Each (library, length) runs in a fresh process with Python's collector as the user has it
(enabled, default thresholds: nothing is changed), so what it measures includes the cyclic
collector rescanning every node and saved tensor the graph keeps alive. The result per
library is µs per op for the forward (recording) and the backward, and ``flatness``: the
cost at the longest chain over the cost at the shortest (the target is <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SIZES = (10_000, 100_000, 300_000)


def one(lib: str, length: int) -> dict:
    import torch

    torch.set_num_threads(1)
    if lib == "neuronix":
        import neuronix as nx

        x = nx.Tensor(torch.randn(16), requires_grad=True)
    else:
        x = torch.randn(16, requires_grad=True)
    y = x
    for _ in range(2_000):  # warm-up (lazy initialisation, caches), its graph freed before timing
        y = y * 1.0001
    y.sum().backward()
    x.grad = None
    y = x
    start = time.perf_counter()
    for _ in range(length):
        y = y * 1.0001
    loss = y.sum()
    recorded = time.perf_counter()
    loss.backward()
    done = time.perf_counter()
    return {"lib": lib, "length": length, "forward_us": (recorded - start) / length * 1e6,
            "backward_us": (done - recorded) / length * 1e6}


def sweep(sizes=SIZES, repeats: int = 2) -> dict:
    """Best of ``repeats`` fresh processes per (library, length); ratios against torch and against the shortest chain."""
    root = Path(__file__).resolve().parent.parent
    rows = {}
    for lib in ("neuronix", "torch"):
        for n in sizes:
            best = None
            for _ in range(repeats):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.growth", "--one", lib, str(n)], cwd=root,
                                      capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    return {"name": "growth", "error": proc.stderr.strip()[-1000:]}
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                if best is None or row["forward_us"] + row["backward_us"] < best["forward_us"] + best["backward_us"]:
                    best = row
            rows[(lib, n)] = best
    first, last = sizes[0], sizes[-1]
    result = {"name": "growth", "sizes": list(sizes), "rows": list(rows.values()), "target_flatness": 1.2}
    for lib in ("neuronix", "torch"):
        for part in ("forward_us", "backward_us"):
            result[f"{lib}_{part[:-3]}_flatness"] = rows[(lib, last)][part] / rows[(lib, first)][part]
    for n in sizes:
        nx_total = rows[("neuronix", n)]["forward_us"] + rows[("neuronix", n)]["backward_us"]
        result[f"ratio_vs_torch_{n}"] = nx_total / (rows[("torch", n)]["forward_us"] + rows[("torch", n)]["backward_us"])
    return result


def describe(result: dict) -> str:
    if "error" in result:
        return f"  growth ERROR {result['error'][-300:]}"
    first, last = result["sizes"][0], result["sizes"][-1]
    lines = [f"  growth (x * 1.0001 chain, µs/op; flatness = cost at {last:,} nodes / at {first:,})"]
    for row in result["rows"]:
        lines.append(f"    {row['lib']:<8} {row['length']:>7,} nodes: forward {row['forward_us']:6.2f}  "
                     f"backward {row['backward_us']:6.2f}")
    for lib in ("neuronix", "torch"):
        lines.append(f"    {lib} flatness: forward {result[f'{lib}_forward_flatness']:.2f}, "
                     f"backward {result[f'{lib}_backward_flatness']:.2f} (target <= {result['target_flatness']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.growth")
    parser.add_argument("--one", nargs=2, metavar=("LIB", "LENGTH"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]))))
        return 0
    result = sweep(tuple(args.sizes))
    print(describe(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
