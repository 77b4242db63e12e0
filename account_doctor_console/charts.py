"""Charts drawn on the server as inline SVG (templates/charts.html): every bar carries its label and number in
words, and a second series is hatched as well as coloured, so nothing is told by colour alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Each row is a label above its bar, so a long cause name never crowds the bars: the chart stays narrow enough
# that, scaled to a 375 px phone, its text is still about 12 px high.
ROW = 44
BAR_WIDTH = 300
VALUE_WIDTH = 110
WIDTH = BAR_WIDTH + VALUE_WIDTH


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    # What the number reads as beside the bar ("3 accounts", "12 h"), so the value is never only a length.
    text: str
    series: str = "first"  # "second": hatched


@dataclass(frozen=True)
class DrawnBar:
    bar: Bar
    y: int
    length: float

    @property
    def text_x(self) -> float:
        return self.length + 6


@dataclass(frozen=True)
class Chart:
    """Horizontal bars scaled to the largest; `summary` says in words what the chart shows (its description)."""

    title: str
    summary: str
    bars: tuple[DrawnBar, ...]
    width: int = WIDTH

    @property
    def key(self) -> str:
        """A name for the chart's own ids (its hatch pattern), unique per title on a page."""
        return "".join(c if c.isalnum() else "-" for c in self.title.lower())

    @property
    def height(self) -> int:
        return ROW * len(self.bars) + 4


def bar_chart(title: str, bars: Sequence[Bar], *, summary: str) -> Chart:
    largest = max((bar.value for bar in bars), default=0) or 1
    drawn = tuple(
        DrawnBar(bar, n * ROW, max(2.0, BAR_WIDTH * bar.value / largest) if bar.value else 0.0)
        for n, bar in enumerate(bars)
    )
    return Chart(title, summary, drawn)


@dataclass(frozen=True)
class Day:
    date: str
    failures: int
    recovered: int


def daily_chart(days: Sequence[Day]) -> Chart:
    """Failures and recoveries per day: two bars a day, the recoveries hatched, each with its number."""
    bars = []
    # Quiet days are left out (the summary says how many days the span has): 30 days of empty rows hide the rest.
    for day in (d for d in days if d.failures or d.recovered):
        bars.append(Bar(f"{day.date} failures", day.failures, count(day.failures, "failure")))
        bars.append(Bar(f"{day.date} recovered", day.recovered, count(day.recovered, "recovery"), "second"))
    failures = sum(day.failures for day in days)
    recovered = sum(day.recovered for day in days)
    summary = (
        f"{count(failures, 'failure')} and {count(recovered, 'recovery')} over {count(len(days), 'day')}; "
        "each day with any has a solid bar for failures and a hatched bar for recoveries"
    )
    return bar_chart("Failures and recoveries per day", bars, summary=summary)


def count(number: float, noun: str) -> str:
    """ "1 account", "3 accounts", "2 recoveries"."""
    whole = int(number)
    plural = {"recovery": "recoveries"}.get(noun, noun + "s")
    return f"{whole} {noun if whole == 1 else plural}"
