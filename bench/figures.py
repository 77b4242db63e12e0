"""One benchmark figure: a measurement, its reference from the same run, and the target ratio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    name: str
    measured: float
    reference: float
    unit: str
    target_ratio: float  # measured / reference must not exceed this
    reference_name: str

    @property
    def ratio(self) -> float:
        return self.measured / self.reference if self.reference else float("inf")

    @property
    def ok(self) -> bool:
        return self.ratio <= self.target_ratio

    @staticmethod
    def table(figures: list[Figure]) -> str:
        lines = [
            "| figure | measured | reference | ratio | target | ok |",
            "|---|---|---|---|---|---|",
        ]
        for f in figures:
            lines.append(
                f"| {f.name} | {f.measured:.3f} {f.unit} | {f.reference:.3f} {f.unit} ({f.reference_name}) "
                f"| {f.ratio:.2f}× | ≤ {f.target_ratio:g}× | {'yes' if f.ok else 'NO'} |"
            )
        return "\n".join(lines)
