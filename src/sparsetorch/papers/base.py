"""The vocabulary of `sparsetorch.papers`: scales, checks, results and papers (axes: `registry.Axis`).

A `Paper` states one claim from its abstract and, once implemented, a `reproduce(scale)` function
that measures it. The measurement comes back as a `Result`: named metrics plus `Check`s, each a
comparison of a measured number against a threshold. Whether the claim `holds` is computed from
those checks and can never be set by hand; a claim that fails at small scale is reported as failing.

Status of a paper:

- ``"planned"``: catalogued with its claim, no `reproduce` function yet.
- ``"implemented"``: `reproduce` exists.

`Paper.status` is one of these two. A stored result (`sparsetorch.papers.results`) refines an
implemented paper's status to ``"reproduced"`` (stored, measured on the current code) or
``"stale"`` (stored, the code changed since); see `results.paper_status`.
"""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sparsetorch.registry import AXIS_DESCRIPTIONS, Axis

__all__ = [
    "AXIS_DESCRIPTIONS",
    "OPS",
    "SCALES",
    "Axis",
    "Check",
    "Paper",
    "Result",
    "Scale",
    "Status",
    "check_scale",
]


Scale = Literal["tiny", "small", "full"]
SCALES: tuple[str, ...] = get_args(Scale)

Status = Literal["planned", "implemented"]

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

    `passed` is computed; a NaN on either side never passes.
    """

    name: str
    measured: float
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a check needs a name")
        if self.op not in OPS:
            raise ValueError(f"check {self.name!r}: op {self.op!r} is not one of {', '.join(OPS)}")
        object.__setattr__(self, "measured", float(self.measured))
        object.__setattr__(self, "threshold", float(self.threshold))

    @property
    def passed(self) -> bool:
        return bool(OPS[self.op](self.measured, self.threshold))

    def render(self) -> str:
        """One line: ``name: 0.9123 >= 0.9000 (pass)``."""
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.name}: {self.measured:.4g} {self.op} {self.threshold:.4g} ({verdict})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "op": self.op,
            "threshold": self.threshold,
            "passed": self.passed,
        }


# A side of a comparison: a number, or the name of a metric in the same result.
Operand = float | str


@dataclass(frozen=True)
class Result:
    """What a reproduction measured, and whether the paper's claim held.

    Args:
        metrics: named measurements (accuracies, sparsities, speedups ...).
        checks: the claim as comparisons of measured numbers against thresholds.
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
        note: str = "",
    ) -> Result:
        """Build a result from `{name: (measured, op, threshold)}`.

        Either side of a comparison may be a number or the name of a metric, so
        ``{"sparse_close": ("acc_sparse", ">=", m["acc_dense"] - 0.01)}`` reads as the claim does.

        Raises:
            KeyError: a side names a metric that is not in `metrics`.
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

        built = tuple(
            Check(name, resolve(measured, name), op, resolve(threshold, name))
            for name, (measured, op, threshold) in checks.items()
        )
        return cls(metrics=values, checks=built, note=note)

    @property
    def passed(self) -> dict[str, bool]:
        """Each check's verdict by name."""
        return {c.name: c.passed for c in self.checks}

    @property
    def holds(self) -> bool:
        """True when there is at least one check and every check passed; a result without checks
        proves nothing and does not hold."""
        return bool(self.checks) and all(c.passed for c in self.checks)

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
        checks = tuple(
            Check(c["name"], c["measured"], c["op"], c["threshold"]) for c in data.get("checks", ())
        )
        return cls(metrics=dict(data.get("metrics", {})), checks=checks, note=data.get("note", ""))

    def render(self) -> str:
        """A short multi-line text: verdict, checks, metrics, note."""
        n_pass = sum(c.passed for c in self.checks)
        head = "holds" if self.holds else "does not hold"
        lines = [f"{head} ({n_pass}/{len(self.checks)} checks passed)"]
        lines += [f"  {c.render()}" for c in self.checks]
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
        reproduce: `reproduce(scale) -> Result` for scale in `SCALES`; None while planned.
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
    reproduce: Callable[[str], Result] | None = field(default=None, repr=False)
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

    def run(self, scale: str = "tiny") -> Result:
        """Run the reproduction at `scale` and return its `Result`.

        Raises:
            ValueError: `scale` is not one of `SCALES`.
            NotImplementedError: the paper has no reproduction yet.
            TypeError: the reproduction returned something other than a `Result`.
        """
        check_scale(scale)
        if self.reproduce is None:
            raise NotImplementedError(f"paper {self.key!r} has no reproduction yet (status: {self.status})")
        result = self.reproduce(scale)
        if not isinstance(result, Result):
            raise TypeError(f"paper {self.key!r}: reproduce returned {type(result).__name__}, not Result")
        return result
