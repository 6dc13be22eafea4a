"""Statistics over timed epochs. Pure functions on plain numbers.

A cell's timing is the median of its timed epochs (warm-up excluded, all
repeats pooled) with the min-max range as its spread. A speed-up is a ratio of
medians; its bounds come from the ranges (the slowest baseline epoch over the
fastest other epoch, and the reverse). Those min/max bounds are deliberately
conservative: when they include 1.0 the difference is within noise, and it is
never reported as a win.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    count: int

    @property
    def spread(self) -> float:
        """The min-max range as a fraction of the median."""
        return (self.high - self.low) / self.median


@dataclass(frozen=True)
class Ratio:
    """How many times faster `other` is than `baseline`: above 1 is faster."""

    value: float
    low: float
    high: float

    @property
    def within_noise(self) -> bool:
        return self.low <= 1.0 <= self.high

    def as_times(self) -> str:
        mark = " ~" if self.within_noise else ""
        return f"{self.value:.2f}x ({self.low:.2f}-{self.high:.2f}){mark}"

    def as_percent(self) -> str:
        """+1.2% means faster; the bounds follow; ~ marks a difference within noise."""
        mark = ", within noise" if self.within_noise else ""
        return f"{(self.value - 1) * 100:+.1f}% ({(self.low - 1) * 100:+.1f}% to {(self.high - 1) * 100:+.1f}%{mark})"


def summarize(seconds: list[float]) -> Summary:
    return Summary(median(seconds), min(seconds), max(seconds), len(seconds))


def speedup(baseline: Summary, other: Summary) -> Ratio:
    return Ratio(baseline.median / other.median, baseline.low / other.high, baseline.high / other.low)
