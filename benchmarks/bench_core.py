"""The core benchmark: the engine's per-op overhead and an MLP training step, neuronix vs torch.

    python -m benchmarks.bench_core            # or: python benchmarks/bench_core.py
    python -m benchmarks.bench_core --quick    # a smoke run (few rounds)

In one process, interleaved rounds (``benchmarks.timing``): (a) a chain of 1,000 small
elementwise ops on a 16-element tensor, forward + backward, reported in µs per op; (b) a
784-256-256-10 MLP training step at batch 64 (zero_grad, forward, cross-entropy, backward,
SGD with momentum), ``nx.nn``/``nx.optim`` against ``torch.nn``/``torch.optim.SGD``. The
workloads are the ones ``benchmarks.suite`` times (``benchmarks.workloads``). Prints the
median of the per-round ratios neuronix/torch with their min-max, and writes
``reports/bench_core.json``. Targets (issue #2): chain <= 1.5x torch, MLP <= 1.0x.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import from the repository root, not from benchmarks/
    # (benchmarks/profile.py would otherwise shadow the standard library's profile module)
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import torch  # noqa: E402

from benchmarks import timing, workloads  # noqa: E402
from benchmarks.suite import TARGETS  # noqa: E402  (one table of targets, the suite's)


def run(rounds: int, quick: bool) -> dict:
    results = {}
    for setup in (workloads.setup_tiny_chain, workloads.setup_mlp):
        work = setup("cpu", quick=quick)
        times = timing.interleave({"neuronix": work.neuronix, "torch": work.torch}, rounds=rounds, repeat=work.repeat)
        stats = timing.compare(times["neuronix"], times["torch"])
        results[work.name] = {
            "unit": work.unit,
            "neuronix": statistics.median(times["neuronix"]) * work.scale,
            "torch": statistics.median(times["torch"]) * work.scale,
            "ratio_median": stats["ratio_median"],
            "ratio_min": stats["ratio_min"],
            "ratio_max": stats["ratio_max"],
            "ratios": stats["ratios"],
            "target": TARGETS[work.name],
            "info": work.info,
        }
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 15, 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="few rounds and short blocks: a smoke run")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default="reports/bench_core.json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = args.rounds or (5 if args.quick else 15)
    load_before = timing.load_average()
    results = run(rounds, args.quick)
    report = {
        "rounds": rounds,
        "machine": timing.machine(),
        "load_average": {"before": load_before, "after": timing.load_average()},
        "results": results,
    }
    print(f"neuronix vs torch, {rounds} interleaved rounds, torch threads {torch.get_num_threads()}, "
          f"load {load_before} -> {report['load_average']['after']}")
    for name, r in results.items():
        verdict = "ok" if r["ratio_median"] <= r["target"] else "ABOVE TARGET"
        print(f"  {name:10s} neuronix {r['neuronix']:8.2f} {r['unit']}  torch {r['torch']:8.2f} {r['unit']}  "
              f"ratio {r['ratio_median']:.2f}x (min {r['ratio_min']:.2f}, max {r['ratio_max']:.2f}; "
              f"target <= {r['target']}x: {verdict})")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
