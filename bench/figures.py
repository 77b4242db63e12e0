"""One benchmark figure: a measurement, its reference from the same run, and the target ratio.

A timing figure carries every run of both sides (`measured_runs`, `reference_runs`): it reports their
medians, and the spread of the ratio over the runs. On a shared machine one run can land on either side
of a target, so a figure passes only when its whole spread is within the target; a median within the
target whose spread crosses it is "unstable", never "passed". Counts (items read, calls) are exact and
carry no runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["yes", "NO", "unstable"]


@dataclass(frozen=True)
class Figure:
    name: str
    measured: float  # a timing figure's median run
    reference: float
    unit: str
    target_ratio: float  # measured / reference must not exceed this
    reference_name: str
    measured_runs: tuple[float, ...] = ()
    reference_runs: tuple[float, ...] = ()
    # Run i of each side was measured side by side (alternating), so machine load hit both alike: the
    # spread is that of the per-run ratios. Otherwise any run of one side may meet any run of the other.
    paired: bool = False
    # Markdown printed under the summary table (and in RESULTS.md), its own heading first: e.g. the calls
    # behind a count, by operation.
    details: str = ""

    @classmethod
    def timed(
        cls,
        name: str,
        measured_runs: Sequence[float],
        reference_runs: Sequence[float],
        *,
        unit: str,
        target_ratio: float,
        reference_name: str,
        paired: bool = False,
        details: str = "",
    ) -> Figure:
        """A timing figure from its runs: the medians, and every run kept for the spread."""
        if not measured_runs or not reference_runs:
            raise ValueError(f"{name}: a timing figure needs at least one run of each side")
        if paired and len(measured_runs) != len(reference_runs):
            raise ValueError(f"{name}: paired runs must come in pairs")
        return cls(
            name=name,
            measured=statistics.median(measured_runs),
            reference=statistics.median(reference_runs),
            unit=unit,
            target_ratio=target_ratio,
            reference_name=reference_name,
            measured_runs=tuple(measured_runs),
            reference_runs=tuple(reference_runs),
            paired=paired,
            details=details,
        )

    @property
    def timed_runs(self) -> bool:
        return bool(self.measured_runs and self.reference_runs)

    @property
    def ratio(self) -> float:
        if self.paired and self.timed_runs:
            return statistics.median(_ratio(m, r) for m, r in zip(self.measured_runs, self.reference_runs, strict=True))
        return _ratio(self.measured, self.reference)

    @property
    def spread(self) -> tuple[float, float]:
        """The lowest and highest ratio the runs allow (the ratio itself for a figure without runs)."""
        if not self.timed_runs:
            return self.ratio, self.ratio
        if self.paired:
            ratios = [_ratio(m, r) for m, r in zip(self.measured_runs, self.reference_runs, strict=True)]
            return min(ratios), max(ratios)
        return (
            _ratio(min(self.measured_runs), max(self.reference_runs)),
            _ratio(max(self.measured_runs), min(self.reference_runs)),
        )

    @property
    def status(self) -> Status:
        if self.ratio > self.target_ratio:
            return "NO"
        return "yes" if self.spread[1] <= self.target_ratio else "unstable"

    @property
    def ok(self) -> bool:
        return self.status == "yes"

    @staticmethod
    def table(figures: list[Figure]) -> str:
        lines = [
            "| figure | measured | reference | ratio | target | ok |",
            "|---|---|---|---|---|---|",
        ]
        for f in figures:
            lines.append(
                f"| {f.name} | {_value(f.measured, f.measured_runs, f.unit)} "
                f"| {_value(f.reference, f.reference_runs, f.unit)} ({f.reference_name}) "
                f"| {_ratio_text(f)} | ≤ {f.target_ratio:g}× | {f.status} |"
            )
        sections = [f.details.strip() for f in figures if f.details.strip()]
        return "\n\n".join(["\n".join(lines), *sections])


def _ratio(measured: float, reference: float) -> float:
    return measured / reference if reference else float("inf")


def _value(median: float, runs: tuple[float, ...], unit: str) -> str:
    if len(runs) < 2:  # a count, or a constant (a budget such as 1 ms)
        return f"{median:.3f} {unit}"
    return f"{median:.3f} {unit} (median of {len(runs)}, {min(runs):.3f}–{max(runs):.3f})"


def _ratio_text(f: Figure) -> str:
    if not f.timed_runs:
        return f"{f.ratio:.2f}×"
    low, high = f.spread
    return f"{f.ratio:.2f}× ({low:.2f}–{high:.2f}×)"
