"""The vocabulary of `sparsetorch.papers`: scales, checks, results and papers (axes: `registry.Axis`).

A `Paper` states one claim from its abstract and, once implemented, a
`reproduce(scale, *, seed=0, broken=None)` function that measures it. The measurement comes back as
a `Result`: named metrics plus `Check`s, each a comparison of a measured number against a
threshold. Checks are of two kinds:

- *claim* checks state what the paper says (with the paper's own number beside ours, `Check.paper`);
  only they decide the verdict;
- *sanity* checks are guards and construction invariants (a sparsity reached, a budget matched);
  they are reported apart and never make a claim hold.

Whether the claim `holds` is computed from the claim checks and can never be set by hand; a claim
that fails at small scale is reported as failing. Over several seeds (`sparsetorch.papers.stats`)
a check carries the interval of its paired margin and passes only when that interval clears 0.

Each claim check must be able to fail: a reproduction module declares `BROKEN_ARMS`, deliberately
broken variants of its method (a random mask in its place, swapped arms, the baseline run twice),
each with the claim checks it must make fail; `reproduce(..., broken=NAME)` runs one of them and
the tests assert that those checks fail.

Status of a paper:

- ``"planned"``: catalogued with its claim, no `reproduce` function yet.
- ``"implemented"``: `reproduce` exists.

`Paper.status` is one of these two. A stored result (`sparsetorch.papers.results`) refines an
implemented paper's status to ``"reproduced"`` (stored, measured on the current code) or
``"stale"`` (stored, the code changed since); see `results.paper_status`.
"""

from __future__ import annotations

import datetime
import difflib
import importlib
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sparsetorch.registry import AXIS_DESCRIPTIONS, Axis

__all__ = [
    "AXIS_DESCRIPTIONS",
    "CHECK_KINDS",
    "OPS",
    "SCALES",
    "Axis",
    "BrokenArm",
    "Check",
    "CheckKind",
    "Paper",
    "Result",
    "Scale",
    "Status",
    "check_scale",
]


Scale = Literal["tiny", "small", "full"]
SCALES: tuple[str, ...] = get_args(Scale)

Status = Literal["planned", "implemented"]

CheckKind = Literal["claim", "sanity"]
CHECK_KINDS: tuple[str, ...] = get_args(CheckKind)

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


def check_scale(scale: str) -> str:
    """Return `scale` if it is one of `SCALES`.

    Raises:
        ValueError: any other value; the message lists the valid scales.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {', '.join(repr(s) for s in SCALES)}")
    return scale


@dataclass(frozen=True)
class Check:
    """One comparison `measured op threshold`, e.g. sparse accuracy >= dense accuracy - 0.01.

    Args:
        kind: ``"claim"`` (states the paper's claim; decides the verdict) or ``"sanity"`` (a guard
            or construction invariant; reported apart).
        paper: the paper's own number or statement for this claim, shown beside ours.
        interval: over several seeds, ``(low, high)`` of mean ± 2 standard errors of the paired
            `margin`; None for a single run.
        seeds: how many runs the numbers are means over.

    `passed` is computed: for one run, `measured op threshold`; over seeds, the interval's low end
    must clear 0 (strictly for ``>`` and ``<``). A NaN anywhere never passes.
    """

    name: str
    measured: float
    op: str
    threshold: float
    kind: str = "claim"
    paper: str = ""
    interval: tuple[float, float] | None = None
    seeds: int = 1

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a check needs a name")
        if self.op not in OPS:
            raise ValueError(f"check {self.name!r}: op {self.op!r} is not one of {', '.join(OPS)}")
        if self.kind not in CHECK_KINDS:
            raise ValueError(
                f"check {self.name!r}: kind {self.kind!r} is not one of {', '.join(CHECK_KINDS)}"
            )
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "threshold", float(self.threshold))
        if self.interval is not None:
            low, high = (float(v) for v in self.interval)
            if low > high:
                raise ValueError(f"check {self.name!r}: interval ({low}, {high}) is reversed")
            object.__setattr__(self, "interval", (low, high))
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"check {self.name!r}: seeds must be a positive integer, got {self.seeds!r}")

    @property
    def margin(self) -> float:
        """How far `measured` clears `threshold` in the claimed direction (negative: it does not)."""
        if self.op in (">=", ">"):
            return self.measured - self.threshold
        return self.threshold - self.measured

    @property
    def passed(self) -> bool:
        numbers = (self.measured, self.threshold, *(self.interval or ()))
        if any(math.isnan(v) for v in numbers):
            return False
        if self.interval is None:
            return bool(OPS[self.op](self.measured, self.threshold))
        low = self.interval[0]
        return bool(low > 0.0 if self.op in (">", "<") else low >= 0.0)

    def render(self) -> str:
        """One line: ``name: 0.9123 >= 0.9000 (pass)``, with the interval and the paper's number."""
        verdict = "pass" if self.passed else "FAIL"
        text = f"{self.name}: {self.measured:.4g} {self.op} {self.threshold:.4g}"
        if self.interval is not None:
            low, high = self.interval
            text += f", margin {self.margin:+.3g} [{low:+.3g}, {high:+.3g}] over {self.seeds} seeds"
        text += f" ({verdict})"
        return text + (f"; paper: {self.paper}" if self.paper else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "measured": self.measured,
            "op": self.op,
            "threshold": self.threshold,
            "interval": None if self.interval is None else list(self.interval),
            "seeds": self.seeds,
            "paper": self.paper,
            "passed": self.passed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        """Inverse of `to_dict`; a stored `passed` flag is ignored (recomputed)."""
        interval = data.get("interval")
        return cls(
            data["name"],
            data["measured"],
            data["op"],
            data["threshold"],
            kind=data.get("kind", "claim"),
            paper=data.get("paper", ""),
            interval=None if interval is None else (interval[0], interval[1]),
            seeds=data.get("seeds", 1),
        )


@dataclass(frozen=True)
class BrokenArm:
    """A deliberately broken variant of a reproduction, to show that its claim checks can fail.

    Args:
        description: what is broken, e.g. "a random mask at the same sparsity in place of iCBS".
        fails: the claim checks that must fail when the reproduction runs with this arm.
    """

    description: str
    fails: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise ValueError("a broken arm needs a description")
        object.__setattr__(self, "fails", tuple(self.fails))
        if not self.fails:
            raise ValueError(f"broken arm {self.description!r} names no claim check it makes fail")


# A side of a comparison: a number, or the name of a metric in the same result.
Operand = float | str


@dataclass(frozen=True)
class Result:
    """What a reproduction measured, and whether the paper's claim held.

    Args:
        metrics: named measurements (accuracies, sparsities, speedups ...).
        checks: comparisons of measured numbers against thresholds: the claim checks state the
            claim, the sanity checks guard the run (see the module docstring).
        note: scale, data, and any deviation from the paper worth knowing when reading the verdict.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", {str(k): float(v) for k, v in self.metrics.items()})
        checks = tuple(self.checks)
        if not all(isinstance(c, Check) for c in checks):
            raise TypeError("Result.checks must be Check objects; build them with Result.from_comparisons")
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate check names in {names}")
        object.__setattr__(self, "checks", checks)

    @classmethod
    def from_comparisons(
        cls,
        metrics: Mapping[str, float],
        *,
        checks: Mapping[str, tuple[Operand, str, Operand]],
        sanity: Mapping[str, tuple[Operand, str, Operand]] | None = None,
        paper: Mapping[str, str] | None = None,
        note: str = "",
    ) -> Result:
        """Build a result from claim checks `{name: (measured, op, threshold)}` and sanity checks.

        Either side of a comparison may be a number or the name of a metric, so
        ``{"sparse_close": ("acc_sparse", ">=", m["acc_dense"] - 0.01)}`` reads as the claim does.
        `paper` gives, per claim check, the paper's own number or statement shown beside ours.

        Raises:
            KeyError: a side names a metric that is not in `metrics`, or `paper` names a check that
                is not a claim check.
        """
        values = {str(k): float(v) for k, v in metrics.items()}

        def resolve(side: Operand, check: str) -> float:
            if isinstance(side, str):
                if side not in values:
                    raise KeyError(
                        f"check {check!r} refers to unknown metric {side!r} (have: {sorted(values)})"
                    )
                return values[side]
            return float(side)

        texts = dict(paper or {})
        unknown = set(texts) - set(checks)
        if unknown:
            raise KeyError(f"paper numbers given for {sorted(unknown)}, which are not claim checks")
        built = tuple(
            Check(name, resolve(m, name), op, resolve(t, name), kind=kind, paper=texts.get(name, ""))
            for kind, group in (("claim", checks), ("sanity", sanity or {}))
            for name, (m, op, t) in group.items()
        )
        return cls(metrics=values, checks=built, note=note)

    @property
    def passed(self) -> dict[str, bool]:
        """Each check's verdict by name."""
        return {c.name: c.passed for c in self.checks}

    @property
    def claims(self) -> tuple[Check, ...]:
        """The claim checks, which alone decide `holds`."""
        return tuple(c for c in self.checks if c.kind == "claim")

    @property
    def sanity(self) -> tuple[Check, ...]:
        """The sanity checks (guards and construction invariants), reported apart."""
        return tuple(c for c in self.checks if c.kind == "sanity")

    @property
    def holds(self) -> bool:
        """True when there is at least one claim check and every claim check passed; a result
        without claim checks proves nothing and does not hold. Sanity checks do not count."""
        return bool(self.claims) and all(c.passed for c in self.claims)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict (NaN metrics stay NaN, as `json` writes them)."""
        return {
            "holds": self.holds,
            "metrics": dict(self.metrics),
            "checks": [c.to_dict() for c in self.checks],
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of `to_dict`; stored `holds` / `passed` flags are ignored and recomputed."""
        checks = tuple(Check.from_dict(c) for c in data.get("checks", ()))
        return cls(metrics=dict(data.get("metrics", {})), checks=checks, note=data.get("note", ""))

    def render(self) -> str:
        """A short multi-line text: verdict, claim checks, sanity checks, metrics, note."""
        n_pass = sum(c.passed for c in self.claims)
        head = "holds" if self.holds else "does not hold"
        lines = [f"{head} ({n_pass}/{len(self.claims)} claim checks passed)"]
        lines += [f"  {c.render()}" for c in self.claims]
        if self.sanity:
            n_ok = sum(c.passed for c in self.sanity)
            lines.append(f"  sanity ({n_ok}/{len(self.sanity)} passed):")
            lines += [f"    {c.render()}" for c in self.sanity]
        if self.metrics:
            lines.append("  metrics: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.metrics.items()))
        if self.note:
            lines.append(f"  note: {self.note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"


@dataclass(frozen=True, kw_only=True)
class Paper:
    """One seed paper: what it claims and, once implemented, how sparsetorch reproduces it.

    Args:
        index: the paper's number in `papers.md` (1-based).
        key: short lower-case hyphenated name used for modules, tests and docs.
        title: the paper's exact title.
        date: publication (first preprint) date.
        axis: where its sparsity lives.
        claim: one sentence drawn from the abstract, quantitative where the abstract is.
        modules: sparsetorch module paths that implement the method (empty until implemented).
        reproduce: `reproduce(scale, *, seed=0, broken=None) -> Result` for scale in `SCALES`;
            None while planned. Its module declares `BROKEN_ARMS` (see the module docstring).
        entry_points: what a user calls for this paper beyond the methods whose `paper` names it:
            registered names (`"rigl"`) or `"module:attribute"` paths; `sparsetorch.discovery`
            resolves both.
        seed: one of the seed papers of `papers.md` (False for a reference reproduction such as RigL).
    """

    index: int
    key: str
    title: str
    date: datetime.date
    axis: Axis
    claim: str
    modules: tuple[str, ...] = ()
    reproduce: Callable[..., Result] | None = field(default=None, repr=False)
    entry_points: tuple[str, ...] = ()
    seed: bool = True

    def __post_init__(self) -> None:
        if self.index < 1:
            raise ValueError(f"paper {self.key!r}: index must be >= 1, got {self.index}")
        if not self.title.strip():
            raise ValueError(f"paper {self.key!r}: empty title")
        if not isinstance(self.date, datetime.date):
            raise TypeError(f"paper {self.key!r}: date must be a datetime.date, got {self.date!r}")
        object.__setattr__(self, "axis", Axis(self.axis))
        claim = self.claim.strip()
        if not claim or "\n" in claim or not claim.endswith("."):
            raise ValueError(f"paper {self.key!r}: claim must be one non-empty sentence ending with '.'")
        object.__setattr__(self, "modules", tuple(self.modules))
        object.__setattr__(self, "entry_points", tuple(self.entry_points))
        if self.reproduce is not None and not callable(self.reproduce):
            raise TypeError(f"paper {self.key!r}: reproduce must be callable or None")

    @property
    def status(self) -> Status:
        """``"planned"`` without a reproduction, ``"implemented"`` with one (see the module docstring)."""
        return "planned" if self.reproduce is None else "implemented"

    @property
    def broken_arms(self) -> Mapping[str, BrokenArm]:
        """The reproduction module's `BROKEN_ARMS` (empty while planned)."""
        if self.reproduce is None:
            return {}
        return getattr(importlib.import_module(self.reproduce.__module__), "BROKEN_ARMS", {})

    def run(self, scale: str = "tiny", *, seed: int = 0, broken: str | None = None) -> Result:
        """Run the reproduction at `scale` with `seed` (and a broken arm, for tests) and return its
        `Result`.

        Raises:
            ValueError: `scale` is not one of `SCALES`, `seed` is not a non-negative int, or
                `broken` is not one of `broken_arms`.
            NotImplementedError: the paper has no reproduction yet.
            TypeError: the reproduction returned something other than a `Result`.
        """
        check_scale(scale)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if self.reproduce is None:
            raise NotImplementedError(f"paper {self.key!r} has no reproduction yet (status: {self.status})")
        if broken is not None and broken not in self.broken_arms:
            close = difflib.get_close_matches(broken, list(self.broken_arms), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"paper {self.key!r} has no broken arm {broken!r}{hint} "
                f"(have: {', '.join(self.broken_arms) or 'none'})"
            )
        result = self.reproduce(scale, seed=seed, broken=broken)
        if not isinstance(result, Result):
            raise TypeError(f"paper {self.key!r}: reproduce returned {type(result).__name__}, not Result")
        return result
