"""Compare two reports: new failures, fixed cases, coverage and override changes, headroom regressions.

``python -m conformance diff BASE.json NEW.json`` prints the comparison and exits 1 when NEW regressed
(a new failure, a headroom regression, or a case that vanished from a complete run), 0 otherwise, 2 when a
file cannot be read or is not a conformance report. ``gate --baseline BASE.json`` calls
``baseline_problems`` for the same verdict.

Records are matched by (case_id, check). Runs are seeded, so identical code on the same torch and machine
gives identical headrooms: any movement is the code's (or, stated at the top, the environment's). How the
environments differ (torch, CUDA, devices, profile, dtypes, examples, a filtered or sharded run) is printed
first and never a reason to refuse: the comparison is still made, with the difference in view.

What fails (``gate --baseline`` and the exit status of ``diff``):

* a new failure: a check failing in NEW that passed or did not exist in BASE (the plain gate fails on it too);
* a headroom regression (tolerances.toml ``[regression]``): a check passing in both whose headroom grew
  ``headroom_factor``-fold or more while above its dtype's ``headroom_floor``, or crossed ``headroom_threshold``;
* a vanished case: in BASE, not in NEW, although NEW is a complete run (not filtered, not a shard) of that
  case's dtype and device, so the case was dropped, not skipped; likewise a check that passed in BASE and no
  longer runs in a case that still does (a harness change that drops a comparison), when both runs used the
  same torch (under another torch the checks a case can make differ by torch: stated, not failed).

Stated but not failing: fixed checks, new cases, coverage changes (a public name without a mirror already
fails the plain gate), override changes (added, removed, loosened or tightened: each needs a reason in
tolerances.toml, reviewed with the change) and the environment differences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from conformance.gate import failure_line
from conformance.report import SCHEMA
from conformance.tolerances import DEFAULT_PATH, RegressionPolicy, Tolerances

MAX_LINES = 20  # per section of the text and Markdown outputs; the rest is counted, not printed


class ReportError(Exception):
    """A file that is not a readable conformance report (exit status 2)."""


def load(path: str | Path) -> dict:
    """The report at ``path``; ``ReportError`` naming the file and what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"cannot read {path}: {err}") from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ReportError(f"{path} is not a conformance report: schema {found!r}, expected {SCHEMA!r}")
    return data


def policy_for(new: dict) -> RegressionPolicy:
    """The ``[regression]`` policy of the tolerances file NEW was judged with (the repository's by default)."""
    path = Path(new.get("run", {}).get("tolerances") or DEFAULT_PATH)
    return Tolerances.load(path if path.exists() else None).regression


@dataclass(frozen=True)
class Regression:
    """A passing check whose headroom grew past the policy: ``why`` is ``factor`` or ``threshold``."""

    case_id: str
    check: str
    dtype: str
    base: float
    new: float
    why: str
    rule: str
    base_rule: str
    repro: str

    def line(self, policy: RegressionPolicy) -> str:
        ratio = f"{self.new / self.base:.3g}x" if self.base else "from exact"
        why = (f">= {policy.headroom_factor:g}x (floor {policy.floor(self.dtype):g})" if self.why == "factor"
               else f"crossed {policy.headroom_threshold:g}")
        rule = self.rule if self.rule == self.base_rule else f"{self.base_rule} -> {self.rule}"
        return (f"{self.case_id} [{self.check}] headroom {self.base:.3g} -> {self.new:.3g} ({ratio}, {why}), "
                f"rule {rule}\n      {self.repro}")


@dataclass
class Diff:
    environment: list[str]  # how the two runs differ, one phrase each ("torch 2.13.0 -> 2.14.1")
    compared: str  # what was compared: the two commits and their numbers of checks
    new_failures: list[dict] = field(default_factory=list)  # NEW's failing rows
    fixed: list[dict] = field(default_factory=list)  # NEW's rows passing where BASE failed
    vanished: list[str] = field(default_factory=list)  # case ids, or "case_id [check]", dropped from a complete run (fail)
    not_run: list[str] = field(default_factory=list)  # case ids missing from NEW because NEW did not cover them
    torch_dropped: list[str] = field(default_factory=list)  # "case_id [check]" not made under NEW's other torch
    appeared: list[str] = field(default_factory=list)
    coverage: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    regressions: list[Regression] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.new_failures or self.regressions or self.vanished)


def _rows(data: dict) -> dict[tuple[str, str], dict]:
    return {(r["case_id"], r["check"]): r for r in data["records"]}


def environment(base: dict, new: dict) -> list[str]:
    """Each way the two runs' environments differ, as ``what base -> new``."""
    b, n = base["run"], new["run"]

    def devices(run):
        return ", ".join(f"{d['device']} ({d['name']})" for d in run.get("devices", []))

    def scope(run):
        shard = run.get("shard")
        return ("shard {index}/{count}".format(**shard) if shard else "filtered" if run.get("filtered")
                else "complete (merged from {shards} shards)".format(**run["merged"]) if run.get("merged") else "complete")

    pairs = [("torch", b.get("torch"), n.get("torch")), ("CUDA", b.get("cuda"), n.get("cuda")),
             ("devices", devices(b), devices(n)), ("profile", b.get("profile"), n.get("profile")),
             ("dtypes", ",".join(b.get("dtypes", [])), ",".join(n.get("dtypes", []))),
             ("examples", b.get("examples") or "profile default", n.get("examples") or "profile default"),
             ("run", scope(b), scope(n)), ("python", b.get("python"), n.get("python"))]
    return [f"{what} {old} -> {now}" for what, old, now in pairs if old != now]


def _complete_for(new: dict, case_id: str) -> bool:
    """Whether NEW, as configured, should have run ``case_id``: a complete run of its dtype and device."""
    run = new["run"]
    if run.get("filtered") or run.get("shard"):
        return False
    _, dtype, device = case_id.rsplit("|", 2)
    return dtype in run.get("dtypes", []) and device in {d["device"] for d in run.get("devices", [])}


def _names(names: list[str], cap: int = 20) -> str:
    return ", ".join(names[:cap]) + (f", ... ({len(names) - cap} more)" if len(names) > cap else "")


def _coverage_changes(base: dict, new: dict) -> list[str]:
    b, n = base["coverage"], new["coverage"]
    lines = []
    if (b["public"], b["mirrored"]) != (n["public"], n["mirrored"]):
        lines.append(f"mirrored {b['mirrored']}/{b['public']} -> {n['mirrored']}/{n['public']}")
    newly_missing = sorted(set(n["missing"]) - set(b["missing"]))
    newly_mirrored = sorted(set(b["missing"]) - set(n["missing"]))
    if newly_missing:
        lines.append(f"newly without a mirror ({len(newly_missing)}): {_names(newly_missing)}")
    if newly_mirrored:
        lines.append(f"no longer missing ({len(newly_mirrored)}): {_names(newly_mirrored)}")
    return lines


def _scope(o: dict) -> str:
    """An override's identity across edits of tolerances.toml: its scope, not its index."""
    return " ".join(f"{k}={o[k]}" for k in ("op", "check", "dtype", "device") if o.get(k))


def _tol(o: dict) -> str:
    return f"rtol {o.get('rtol')} atol {o.get('atol')}"


def _looser(old: dict, new: dict) -> str:
    def grew(key):
        a, b = old.get(key), new.get(key)
        return a is not None and b is not None and b > a or a is not None and b is None

    def shrank(key):
        a, b = old.get(key), new.get(key)
        return a is not None and b is not None and b < a or a is None and b is not None

    loose, tight = grew("rtol") or grew("atol"), shrank("rtol") or shrank("atol")
    return "loosened" if loose and not tight else "tightened" if tight and not loose else "changed"


def _override_changes(base: dict, new: dict) -> list[str]:
    b = {_scope(o): o for o in base["overrides"]}
    n = {_scope(o): o for o in new["overrides"]}
    lines = [f"added: {k} ({_tol(n[k])}): {n[k].get('reason') or 'no reason'}" for k in n if k not in b]
    lines += [f"removed: {k} ({_tol(b[k])})" for k in b if k not in n]
    for k in b.keys() & n.keys():
        old, now = b[k], n[k]
        if (old.get("rtol"), old.get("atol")) != (now.get("rtol"), now.get("atol")):
            lines.append(f"{_looser(old, now)}: {k}: {_tol(old)} -> {_tol(now)}")
        if old.get("status") != now.get("status"):
            lines.append(f"status: {k}: {old.get('status')} -> {now.get('status')}")
    return sorted(lines)


def compare(base: dict, new: dict, policy: RegressionPolicy | None = None) -> Diff:
    """Everything that changed from ``base`` to ``new`` (both report dicts)."""
    policy = policy or policy_for(new)
    old, now = _rows(base), _rows(new)
    b, n = base["run"], new["run"]
    diff = Diff(environment(base, new),
                f"commit {b.get('commit', 'unknown')[:12]}, {len(old)} checks; this run: commit "
                f"{n.get('commit', 'unknown')[:12]}, {len(now)} checks")
    for key, row in now.items():
        before = old.get(key)
        if row["status"] != "pass":
            if before is None or before["status"] == "pass":
                diff.new_failures.append(row)
            continue
        if before is None:
            continue
        if before["status"] != "pass":
            diff.fixed.append(row)
        elif before["headroom"] is not None and row["headroom"] is not None:
            why = policy.regressed(before["headroom"], row["headroom"], row["dtype"])
            if why:
                diff.regressions.append(Regression(row["case_id"], row["check"], row["dtype"], before["headroom"],
                                                   row["headroom"], why, row["rule"] or "", before["rule"] or "",
                                                   row["repro"]))
    old_cases, new_cases = {k[0] for k in old}, {k[0] for k in now}
    # a case whose failing check made no record once it passed (an "error" record: the case erred before
    # its comparisons) is fixed too, though no check matches it by name
    fixed_cases = {row["case_id"] for row in diff.fixed}
    clean = new_cases - {k[0] for k, row in now.items() if row["status"] != "pass"}
    diff.fixed += [row for key, row in sorted(old.items()) if row["status"] != "pass" and key not in now
                   and key[0] in clean and key[0] not in fixed_cases]
    for cid in sorted(old_cases - new_cases):
        (diff.vanished if _complete_for(new, cid) else diff.not_run).append(cid)
    # a check that stopped running in a case that still runs (a harness change that drops a comparison passes
    # every plain gate); the error check comes and goes with failures, so only a passing one is missed. Under
    # another torch the checks a case can make differ by torch itself (2.14 removed torch.cholesky and
    # torch.qr, whose cases then check only that neuronix raises the same error): stated, not failed.
    dropped = [f"{cid} [{check}]" for (cid, check), row in sorted(old.items())
               if cid in new_cases and (cid, check) not in now and row["status"] == "pass" and check != "error"
               and _complete_for(new, cid)]
    if b.get("torch") == n.get("torch"):
        diff.vanished += dropped
    else:
        diff.torch_dropped = dropped
    diff.appeared = sorted(new_cases - old_cases)
    diff.coverage = _coverage_changes(base, new)
    diff.overrides = _override_changes(base, new)
    diff.regressions.sort(key=lambda r: -(r.new / r.base if r.base else float("inf")))
    return diff


def notes(diff: Diff, base_name: str) -> list[str]:
    """The lines that say what was compared and how the environments differ."""
    out = [f"baseline {base_name}: {diff.compared}"]
    out.append("compared across " + "; ".join(diff.environment) if diff.environment
               else "same environment (torch, devices, profile, dtypes): headroom changes are the code's")
    if diff.new_failures or diff.fixed:
        out.append(f"{len(diff.new_failures)} failing check(s) new since the baseline, {len(diff.fixed)} fixed")
    if diff.not_run:
        out.append(f"{len(diff.not_run)} baseline case(s) not in this run's scope (filtered, sharded, or another "
                   "dtype/device): not compared")
    if diff.torch_dropped:
        out.append(f"{len(diff.torch_dropped)} baseline check(s) not made under this run's torch: not compared")
    return out


def sections(diff: Diff, policy: RegressionPolicy, with_failures: bool = True) -> list[tuple[str, list[str]]]:
    """``(title, lines)`` for each non-empty part of the comparison; failing parts first."""
    parts = []
    if with_failures:
        parts.append(("new failures", [failure_line(r) for r in diff.new_failures]))
    parts += [
        (f"headroom regressions (factor {policy.headroom_factor:g}, threshold {policy.headroom_threshold:g}; "
         "tolerances.toml [regression])", [r.line(policy) for r in diff.regressions]),
        ("cases or checks vanished from a complete run",
         [f"{cid} (in the baseline, not run now)" for cid in diff.vanished]),
    ]
    return [(title, lines) for title, lines in parts if lines]


def _by_dtype_device(case_ids: list[str]) -> list[str]:
    """Thousands of out-of-scope case ids (another dtype, a shard) as one count per dtype and device."""
    counts: dict[str, int] = {}
    for cid in case_ids:
        key = "|".join(cid.rsplit("|", 2)[1:])
        counts[key] = counts.get(key, 0) + 1
    return [f"{key}: {n} case(s)" for key, n in sorted(counts.items())]


def _informational(diff: Diff) -> list[tuple[str, list[str]]]:
    parts = [("fixed", [f"{r['case_id']} [{r['check']}]" for r in diff.fixed]),
             ("new cases", diff.appeared), ("coverage", diff.coverage), ("overrides", diff.overrides),
             ("not in this run's scope (baseline cases by dtype and device)", _by_dtype_device(diff.not_run)),
             ("checks not made under this run's torch (another torch: stated, not failed)", diff.torch_dropped)]
    return [(title, lines) for title, lines in parts if lines]


def baseline_problems(base: dict, new: dict, base_name: str = "baseline",
                      compared: Diff | None = None) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """``(sections, notes)``: the gate's failing sections for regressions of ``new`` against ``base``, and
    the lines that say what was compared (different torch, devices, profile: stated, not hidden).

    New failures are not repeated here: the plain gate already lists every failing check."""
    if base.get("schema") != SCHEMA:
        return [("baseline", [f"baseline {base_name} schema {base.get('schema')!r} is not {SCHEMA!r}"])], []
    if new.get("schema") != SCHEMA:
        return [], []  # the plain gate already fails a foreign report
    policy = policy_for(new)
    diff = compare(base, new, policy) if compared is None else compared  # the summary passes the one it made
    found = [(f"vs baseline: {title}", lines) for title, lines in sections(diff, policy, with_failures=False)]
    extra = [f"coverage: {'; '.join(diff.coverage)}"] if diff.coverage else []
    if diff.overrides:  # counted by change (added, removed, loosened, ...): `diff` prints each with its reason
        kinds: dict[str, int] = {}
        for line in diff.overrides:
            kinds[line.split(":", 1)[0]] = kinds.get(line.split(":", 1)[0], 0) + 1
        extra.append("overrides changed: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
                     + " (python -m conformance diff lists them)")
    return found, notes(diff, base_name) + extra


def _capped(lines: list[str], cap: int = MAX_LINES) -> list[str]:
    return lines[:cap] + ([f"... and {len(lines) - cap} more"] if len(lines) > cap else [])


def render_text(diff: Diff, policy: RegressionPolicy, base_name: str, new_name: str) -> str:
    out = [f"conformance diff: {new_name} against {base_name}"] + [f"  {n}" for n in notes(diff, base_name)]
    for title, lines in sections(diff, policy) + _informational(diff):
        out.append(f"{title} ({len(lines)}):")
        out += [f"  {line}" for line in _capped(lines)]
    out.append("diff: REGRESSED" if diff.failed else "diff: no regression")
    return "\n".join(out)


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell or list item: ``|`` would split a cell, backticks open code,
    ``*`` and ``_`` emphasis (``rtol*|expected|``), ``<`` an HTML tag, brackets a link."""
    text = str(text).replace("\\", "\\\\").replace("\n", " ")
    for char in "|`*_<[]":
        text = text.replace(char, "\\" + char)
    return text


def md_line(line: str) -> str:
    """A multi-line entry as one Markdown list item: its text escaped, the indented lines after it (repro
    commands) as code spans, where ``|`` and quotes need no escaping."""
    first, *rest = line.splitlines()
    return " ".join([md_escape(first.strip())] + [f"`{part.strip()}`" for part in rest if part.strip()])


def render_md(diff: Diff, policy: RegressionPolicy, base_name: str, new_name: str) -> str:
    verdict = "**regressed**" if diff.failed else "no regression"
    out = [f"### Conformance diff: {verdict}", ""] + [f"- {md_escape(n)}" for n in notes(diff, base_name)]
    if diff.regressions:
        out += ["", f"#### Headroom regressions ({len(diff.regressions)})", "",
                "| case | check | base | new | why | rule |", "|---|---|---|---|---|---|"]
        for r in diff.regressions[:MAX_LINES]:
            why = f">= {policy.headroom_factor:g}x" if r.why == "factor" else f"crossed {policy.headroom_threshold:g}"
            out.append(f"| {md_escape(r.case_id)} | {r.check} | {r.base:.3g} | {r.new:.3g} | {why} | {md_escape(r.rule)} |")
        if len(diff.regressions) > MAX_LINES:
            out.append(f"\n... and {len(diff.regressions) - MAX_LINES} more")
    for title, lines in [(t, ls) for t, ls in sections(diff, policy) if not t.startswith("headroom")] + _informational(diff):
        out += ["", f"#### {title[0].upper() + title[1:]} ({len(lines)})", ""]
        out += [f"- {md_line(line)}" for line in _capped(lines)]
    return "\n".join(out)


def main(args) -> int:
    """``python -m conformance diff BASE NEW [--format text|md]``."""
    try:
        base, new = load(args.base), load(args.new)
    except ReportError as err:
        print(f"conformance diff: {err}")
        return 2
    policy = policy_for(new)
    diff = compare(base, new, policy)
    render = render_md if args.format == "md" else render_text
    print(render(diff, policy, str(args.base), str(args.new)))
    return 1 if diff.failed else 0
