"""Profile the neuronix side of a workload with pyinstrument.

    python -m benchmarks.profile mlp [--steps 50] [--html reports/profile_mlp.html]

Prints the call tree (where neuronix's own bookkeeping spends time around the torch kernels).
"""

from __future__ import annotations

import argparse

from benchmarks.workloads import WORKLOADS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--side", choices=["neuronix", "torch"], default="neuronix")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--interval", type=float, default=0.0002, help="sampling interval (s)")
    parser.add_argument("--html", default=None, help="also write an HTML report here")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from pyinstrument import Profiler

    workload = WORKLOADS[args.workload]("cpu", args.quick)
    step = getattr(workload, args.side)
    step()
    step()
    profiler = Profiler(interval=args.interval)
    profiler.start()
    for _ in range(args.steps):
        step()
    profiler.stop()
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    if args.html:
        with open(args.html, "w") as f:
            f.write(profiler.output_html())


if __name__ == "__main__":
    main()
