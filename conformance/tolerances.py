"""Tolerance rules from ``tolerances.toml``: defaults per (check kind, dtype) plus reasoned overrides.

Every lookup returns the tolerance *and* the rule that set it, so the report can show
which line of the file decided each verdict. Overrides remember how often they matched:
an override that matched nothing in a complete run is stale and fails the gate.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "tolerances.toml"


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|``; ``rule`` names the line that set it."""

    rtol: float
    atol: float
    rule: str


@dataclass
class Override:
    """One ``[[override]]`` table; ``None`` fields match anything."""

    index: int
    op: str
    check: str | None
    dtype: str | None
    device: str | None
    rtol: float | None
    atol: float | None
    reason: str
    matched: set = field(default_factory=set)  # case ids it set a tolerance for

    def rule(self) -> str:
        scope = " ".join(f"{k}={v}" for k, v in (("check", self.check), ("dtype", self.dtype), ("device", self.device)) if v)
        return f"override[{self.index}] op={self.op}" + (f" {scope}" if scope else "")

    def matches(self, name: str, check: str, dtype: str, device: str) -> bool:
        pairs = ((self.op, name), (self.check, check), (self.dtype, dtype), (self.device, device))
        return all(p is None or fnmatch.fnmatchcase(v, p) for p, v in pairs)

    def as_dict(self) -> dict:
        return {
            "index": self.index, "op": self.op, "check": self.check, "dtype": self.dtype, "device": self.device,
            "rtol": self.rtol, "atol": self.atol, "reason": self.reason, "rule": self.rule(),
        }


@dataclass
class TorchDefect:
    """One ``[[torch_defect]]`` table: a failure where torch is the odd one out, on the torch versions of
    ``torch`` (a glob: ``"2.13.*"``). It passes only where the run classifies it as a suspected torch
    defect (``conformance.classify``); it never loosens a tolerance."""

    index: int
    op: str
    check: str
    torch: str
    reason: str

    def rule(self) -> str:
        return f"torch_defect[{self.index}] op={self.op} check={self.check} torch={self.torch}"

    def applies(self, version: str) -> bool:
        return fnmatch.fnmatchcase(version, self.torch)

    def matches(self, name: str, check: str) -> bool:
        return fnmatch.fnmatchcase(name, self.op) and fnmatch.fnmatchcase(check, self.check)


@dataclass(frozen=True)
class RegressionPolicy:
    """``[regression]``: when a passing check's headroom (error / allowed) counts as a regression against a
    baseline report (``conformance.diff``, ``gate --baseline``).

    A check regresses when its new headroom reaches ``headroom_factor`` x its baseline headroom while above
    the floor of its dtype (``headroom_floor``: a number, or a table per dtype with ``"*"`` for the rest), or
    when it crosses ``headroom_threshold`` (baseline below it, new at or above it)."""

    headroom_factor: float = 4.0
    headroom_threshold: float = 0.5
    headroom_floor: dict = field(default_factory=lambda: {"*": 0.05})
    reason: str = ""

    @classmethod
    def from_table(cls, table: dict, path: str = "<memory>") -> RegressionPolicy:
        known = {"headroom_factor", "headroom_threshold", "headroom_floor", "reason"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"tolerances.toml ({path}): [regression] has unknown key(s) {unknown}; "
                             f"valid: {sorted(known)}")
        floor = table.get("headroom_floor", cls().headroom_floor)
        floors = dict(floor) if isinstance(floor, dict) else {"*": floor}
        floors.setdefault("*", cls().headroom_floor["*"])
        policy = cls(float(table.get("headroom_factor", cls.headroom_factor)),
                     float(table.get("headroom_threshold", cls.headroom_threshold)),
                     {k: float(v) for k, v in floors.items()}, str(table.get("reason", "")).strip())
        if policy.headroom_factor <= 1:
            raise ValueError(f"tolerances.toml ({path}): [regression] headroom_factor = {policy.headroom_factor}; "
                             "it must be > 1 (a factor of 1 or less flags unchanged headroom)")
        if not 0 < policy.headroom_threshold <= 1:
            raise ValueError(f"tolerances.toml ({path}): [regression] headroom_threshold = "
                             f"{policy.headroom_threshold}; it must be in (0, 1] (1 is the tolerance itself)")
        if any(not 0 <= v < 1 for v in policy.headroom_floor.values()):
            raise ValueError(f"tolerances.toml ({path}): [regression] headroom_floor {policy.headroom_floor}; "
                             "each floor must be in [0, 1)")
        return policy

    def floor(self, dtype: str) -> float:
        return self.headroom_floor.get(dtype, self.headroom_floor["*"])

    def regressed(self, base: float, new: float, dtype: str) -> str | None:
        """Why ``base`` -> ``new`` headroom is a regression (``"factor"``, ``"threshold"``), or None."""
        if base < self.headroom_threshold <= new:
            return "threshold"
        # ">= factor": a rule made exactly 4x less accurate measures 4 x (1 +- 1e-7) (the rounding of the errors
        # themselves), so the comparison allows a relative 1e-3 below the factor
        if new > self.floor(dtype) and new >= self.headroom_factor * base * (1 - 1e-3):
            return "factor"
        return None


class Tolerances:
    """The parsed file: ``lookup(name, check, dtype, device) -> Tolerance``."""

    def __init__(self, data: dict, path: str = "<memory>") -> None:
        self.path = str(path)
        self.defaults: dict[str, dict[str, tuple[float, float]]] = {}
        self.default_reasons: dict[str, str] = {}
        for key, value in data.get("defaults", {}).items():
            if key in ("float32", "float64", "float16", "bfloat16", "complex64", "complex128"):
                self.defaults.setdefault("*", {})[key] = (float(value["rtol"]), float(value["atol"]))
            elif isinstance(value, dict):  # a check kind's own defaults
                self.default_reasons[key] = value.get("reason", "")
                for dt, tol in value.items():
                    if isinstance(tol, dict):
                        self.defaults.setdefault(key, {})[dt] = (float(tol["rtol"]), float(tol["atol"]))
        self.overrides = [
            Override(
                i, o.get("op", "*"), o.get("check"), o.get("dtype"), o.get("device"),
                o.get("rtol"), o.get("atol"), str(o.get("reason", "")).strip(),
            )
            for i, o in enumerate(data.get("override", []))
        ]
        self.torch_defects = [
            TorchDefect(i, d["op"], d.get("check", "*"), d.get("torch", "*"), str(d.get("reason", "")).strip())
            for i, d in enumerate(data.get("torch_defect", []))
        ]
        self.regression = RegressionPolicy.from_table(data.get("regression", {}), self.path)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Tolerances:
        path = Path(path) if path else DEFAULT_PATH
        with open(path, "rb") as f:
            return cls(tomllib.load(f), path)

    def default(self, check: str, dtype: str) -> Tolerance:
        if dtype in self.defaults.get(check, {}):
            rtol, atol = self.defaults[check][dtype]
            return Tolerance(rtol, atol, f"defaults.{check}.{dtype}")
        if dtype not in self.defaults.get("*", {}):
            raise KeyError(f"tolerances.toml ({self.path}): no default tolerance for dtype {dtype}; add [defaults] {dtype}")
        rtol, atol = self.defaults["*"][dtype]
        return Tolerance(rtol, atol, f"defaults.{dtype}")

    def lookup(self, name: str, check: str, dtype: str, device: str, case_id: str | None = None) -> Tolerance:
        """The tolerance for one check of one case; the last matching override wins."""
        tol = self.default(check, dtype)
        for o in self.overrides:
            if o.matches(name, check, dtype, device):
                o.matched.add(case_id or f"{name}|{dtype}|{device}")
                tol = Tolerance(tol.rtol if o.rtol is None else float(o.rtol), tol.atol if o.atol is None else float(o.atol),
                                o.rule())
        return tol


    def torch_defect(self, name: str, check: str, version: str) -> TorchDefect | None:
        """The recorded torch defect for this check of ``name`` on torch ``version``, if any."""
        return next((d for d in self.torch_defects if d.matches(name, check) and d.applies(version)), None)


_loaded: dict[str, Tolerances] = {}


def load(path: str | Path | None = None) -> Tolerances:
    """Cached ``Tolerances.load`` (one parse per process)."""
    key = str(Path(path).resolve()) if path else str(DEFAULT_PATH)
    if key not in _loaded:
        _loaded[key] = Tolerances.load(key)
    return _loaded[key]
