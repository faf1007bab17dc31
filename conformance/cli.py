"""``python -m conformance run | gate | diff | summary | history | merge | list | repro | reach | api-table | mutate``.

* ``run [--dtypes float32,float64] [--devices cpu,cuda] [--profile ci|thorough] [-n N] [-k PATTERN]``
  runs the cases under pytest (sharded by pytest-xdist with ``-n``) and writes
  ``reports/conformance.json``, ``.html`` and ``.junit.xml``. It exits 0 once the reports
  are written, failures included: the gate is the judge.
  ``--shard K/N`` runs a deterministic slice (``conformance.shard``; balanced by the durations in ``--history``
  when it exists) and ``--history FILE`` appends the run's compact record to a JSON Lines history
  (``conformance.history``; a shard does not append: ``merge`` does).
* ``gate [reports/conformance.json] [--baseline BASE.json]`` prints a one-screen summary, exits 1 on any problem;
  with a baseline, also on regressions against it (``conformance.diff``).
* ``diff BASE.json NEW.json [--format text|md]`` lists new failures, fixed cases, coverage and override changes and
  headroom regressions; exits 0 without a regression, 1 with one, 2 when a report cannot be read.
* ``summary [REPORT] [--baseline BASE.json] [--format md|text]`` prints a short summary for a pull request.
* ``history [--file FILE] [--top N] [--last K]`` prints the entries whose headroom drifted most across the recorded runs.
* ``merge shard*.json [--report-dir DIR] [--history FILE]`` combines the slices of a sharded run into one report the
  gate accepts; it refuses (exit 2) slices of different runs, a missing or duplicated slice, a case in two slices.
* ``list [--missing]`` prints the registry, or only the public names without a mirror.
* ``repro CASE_ID [--example K] [--snippet | --shrink] [--torch-only]`` replays one case and prints every
  comparison; ``--snippet`` adds a standalone script of the example, ``--shrink`` of the smallest failing one.
* ``run``, ``list`` and ``repro`` take ``--mirrors my.module,other.py``: users' mirror modules
  (``conformance/mirrors/custom.py`` says how to write one).
* ``reach [--missing]`` counts the torch names reached with mirrors; ``api-table [--write|--check README.md]``
  prints or maintains the README's generated API table (``conformance.reach``).
* ``mutate [...]`` plants faults into the op registry and reports the harness's kill rate
  (``conformance.mutate``; ``python -m conformance mutate --help``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(args) -> int:
    import pytest

    if args.shard:  # checked here: a bad spec raised inside collection shows only as "1 error during collection"
        from conformance.shard import parse_spec

        try:
            parse_spec(args.shard)
        except ValueError as err:
            print(f"conformance run: {err}")
            return 2

    pytest_args = [str(HERE / "test_cases.py"), "-p", "no:cacheprovider", "-q", "--tb=no", "-rN",
                   f"--conformance-dtypes={args.dtypes}", f"--conformance-profile={args.profile}",
                   f"--conformance-report={args.report_dir}"]
    if (HERE.parent / "pyproject.toml").exists():  # a checkout (not an installed package): its pytest settings
        pytest_args += ["--rootdir", str(HERE.parent), "-c", str(HERE.parent / "pyproject.toml")]
    if args.devices:
        pytest_args.append(f"--conformance-devices={args.devices}")
    if args.examples is not None:
        pytest_args.append(f"--conformance-examples={args.examples}")
    if args.tolerances:
        pytest_args.append(f"--conformance-tolerances={args.tolerances}")
    if args.shard:
        pytest_args.append(f"--conformance-shard={args.shard}")
    if args.history:
        pytest_args.append(f"--conformance-history={args.history}")
    if args.n:
        pytest_args += ["-n", args.n]
    if args.k:
        pytest_args += ["-k", args.k]
    if args.verbose:
        pytest_args += ["--tb=short", "-rf"]
    code = pytest.main(pytest_args + args.pytest_args)
    report = Path(args.report_dir) / "conformance.json"
    if code in (0, 1) and report.exists():
        print(f"conformance: reports in {args.report_dir}/; judge with: python -m conformance gate {report}")
        return 0
    return int(code) or 1


def _list(args) -> int:
    import conformance.mirrors  # noqa: F401
    from conformance.coverage import coverage
    from conformance.mirror import REGISTRY

    if args.missing:
        for name in coverage().missing:
            print(name)
        return 0
    for name, m in REGISTRY.items():
        dtypes = ",".join(str(d).removeprefix("torch.") for d in m.dtypes)
        claims = [c for c in ("grad", "gradgrad", "fd") if getattr(m, c, False)]
        print(f"{name:40s} {m.kind:10s} {dtypes:52s} {' '.join(claims)}")
    return 0


def _repro(args) -> int:
    import conformance.mirrors  # noqa: F401
    from conformance.mirror import REGISTRY
    from conformance.runner import parse_case_id, run_case
    from conformance.tolerances import load

    name, dtype, device = parse_case_id(args.case_id)
    if name not in REGISTRY:
        print(f"repro: no mirror named {name!r}; `python -m conformance list` shows the registry")
        return 2
    case = run_case(REGISTRY[name], dtype, device, args.profile, load(args.tolerances), args.examples, args.example)
    print(f"case {case.case_id}  seed {case.seed}  profile {case.profile}  {len(case.examples)} example(s)")
    for ex in case.examples:
        print(f"\nexample {ex.index} (seed {ex.seed}, {ex.status}, {ex.seconds * 1000:.1f} ms)")
        for key, value in ex.info.items():
            print(f"  {key}: {value}")
        if ex.error:
            print(f"  {ex.error_check}: {ex.error}")
        for j in ex.judged:
            verdict = "ok  " if j.ok else "FAIL"
            print(f"  {verdict} {j.check:18s} {j.what:40s} abs {j.max_abs:.3e} rel {j.max_rel:.3e} "
                  f"headroom {j.headroom:.3g} ({j.rule})" + (f"\n       {j.problem}" if j.problem else ""))
        if ex.leak:
            print(f"  LEAK {ex.leak}")
    print()
    print(case.failure_message() if case.failed else f"{case.case_id}: all checks pass")
    if args.shrink or args.snippet or args.torch_only:
        _print_snippet(args, case)
    return 1 if case.failed else 0


def _print_snippet(args, case) -> None:
    """``--snippet``: the standalone script of the given (else the worst) example; ``--shrink``: of the
    smallest failing example Hypothesis finds within ``--seconds`` (``conformance.snippet``, ``.shrink``)."""
    from conformance.shrink import SHRINK_SECONDS, shrink
    from conformance.snippet import snippet, worst_example
    from conformance.tolerances import load

    tolerances = load(args.tolerances)
    try:
        if args.shrink:
            seconds = args.seconds if args.seconds is not None else SHRINK_SECONDS
            found = shrink(case.case_id, args.profile, args.example, seconds, tolerances, args.examples,
                           torch_only=args.torch_only) if case.failed or args.example is not None else None
            print(f"\n{found.snippet}" if found else f"\n{case.case_id}: no failing example to shrink")
            return
        example = args.example if args.example is not None else worst_example(case)
        print("\n" + snippet(case.case_id, example, args.profile, args.torch_only, examples=args.examples,
                             tolerances=tolerances))
    except ValueError as err:  # optimizers and schedulers: no sample to write out
        print(f"\nno snippet: {err}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description="Neuronix conformance against torch")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the cases and write the reports")
    run.add_argument("--dtypes", default="float32,float64")
    run.add_argument("--devices", default=None, help="default: cpu, plus cuda when available")
    run.add_argument("--profile", default="ci", choices=("ci", "thorough"))
    run.add_argument("--thorough", dest="profile", action="store_const", const="thorough", help="same as --profile thorough")
    run.add_argument("-n", default=None, help="pytest-xdist workers (a number or auto)")
    run.add_argument("-k", default=None, help="pytest -k expression over case ids, e.g. 'exp and float64'")
    run.add_argument("--examples", type=int, default=None, help="examples per case (overrides the profile)")
    run.add_argument("--report-dir", default="reports")
    run.add_argument("--tolerances", default=None)
    run.add_argument("--shard", default=None, metavar="K/N", help="run slice K of N (1-based; conformance.shard)")
    run.add_argument("--history", default=None, metavar="FILE",
                     help="JSON Lines history: shards balance by its durations; an unsharded run appends its record")
    run.add_argument("-v", "--verbose", action="store_true", help="print each failing case's details")
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    gate = sub.add_parser("gate", help="exit non-zero unless the report is a clean pass")
    gate.add_argument("report", nargs="?", default="reports/conformance.json")
    gate.add_argument("--mutation", default=None, help="mutation report to judge too (default: mutation.json beside it)")
    gate.add_argument("--baseline", default=None, metavar="BASE.json",
                      help="also fail on regressions against this earlier report (conformance.diff)")
    dif = sub.add_parser("diff", help="compare two reports: new failures, fixes, coverage, overrides, headroom regressions")
    dif.add_argument("base")
    dif.add_argument("new")
    dif.add_argument("--format", default="text", choices=("text", "md"))
    summ = sub.add_parser("summary", help="a short summary of a report for a pull request or CI step summary")
    summ.add_argument("report", nargs="?", default="reports/conformance.json")
    summ.add_argument("--baseline", default=None, metavar="BASE.json")
    summ.add_argument("--format", default="md", choices=("md", "text"))
    hist = sub.add_parser("history", help="print the entries whose headroom drifted most across the history")
    hist.add_argument("--file", default="reports/history.jsonl")
    hist.add_argument("--top", type=int, default=20)
    hist.add_argument("--last", type=int, default=None, help="only the last N runs of the history")
    mrg = sub.add_parser("merge", help="combine the shard reports of one run into one report")
    mrg.add_argument("shards", nargs="+", help="the shards' conformance.json files")
    mrg.add_argument("--report-dir", default="reports")
    mrg.add_argument("--history", default=None, metavar="FILE", help="append the merged run's record to this history")
    lst = sub.add_parser("list", help="print the mirror registry")
    lst.add_argument("--missing", action="store_true", help="only the public names without a mirror")
    repro = sub.add_parser("repro", help="replay one case and print its comparisons")
    repro.add_argument("case_id", help="ENTRY|DTYPE|DEVICE, e.g. 'exp|float64|cpu'")
    repro.add_argument("--profile", default="ci", choices=("ci", "thorough"))
    repro.add_argument("--example", type=int, default=None, help="only this example index")
    repro.add_argument("--examples", type=int, default=None)
    repro.add_argument("--tolerances", default=None)
    repro.add_argument("--snippet", action="store_true", help="print a standalone torch-vs-neuronix script of the example")
    repro.add_argument("--shrink", action="store_true", help="shrink the first failing example, print its script")
    repro.add_argument("--torch-only", action="store_true", help="the script checks torch alone against finite differences")
    repro.add_argument("--seconds", type=float, default=None, help="time cap of --shrink (default 60)")
    sub.add_parser("mutate", add_help=False, help="plant faults into the registry; report the kill rate (see --help)")
    sub.add_parser("reach", add_help=False, help="count the torch names Neuronix reaches with mirrors (see --help)")
    sub.add_parser("api-table", add_help=False, help="print or write the README's generated API table (see --help)")
    for command in (run, lst, repro):  # users' mirror modules (conformance/mirrors/custom.py)
        command.add_argument("--mirrors", default=None,
                             help="comma-separated modules (or .py paths) that register users' mirrors; "
                                  "sets NEURONIX_MIRRORS, which the run's workers read too")
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "mirrors", None):
        import os

        os.environ["NEURONIX_MIRRORS"] = args.mirrors
    if args.command == "mutate":
        from conformance.mutate import main as mutate_main

        return mutate_main(rest)
    if args.command in ("reach", "api-table"):
        from conformance.reach import main as reach_main

        return reach_main(rest, args.command)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "run":
        return _run(args)
    if args.command == "gate":
        from conformance.gate import gate as run_gate

        return run_gate(args.report, args.mutation, args.baseline)
    if args.command == "diff":
        from conformance.diff import main as diff_main

        return diff_main(args)
    if args.command == "summary":
        from conformance.summary import main as summary_main

        return summary_main(args)
    if args.command == "history":
        from conformance.history import main as history_main

        return history_main(args)
    if args.command == "merge":
        from conformance.shard import merge_main

        return merge_main(args)
    if args.command == "list":
        return _list(args)
    return _repro(args)


if __name__ == "__main__":
    sys.exit(main())
