"""Statistics over repeats. Pure functions on plain numbers.

The unit of replication is one fresh process, a repeat: epochs of one process
share its memory layout, autotuning choices and caches, so they are not
independent samples, and two or three of them decide nothing. Each repeat
gives one number, the median of its timed epochs. Two cells are then set
against each other as asv does: a ratio of the medians of their repeats, with
a bootstrap interval, and a difference is called only when a Mann-Whitney U
test finds it (p < alpha) and it is at least a minimum effect. Outlier epochs
are flagged by their distance from the median in MADs, as hyperfine does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from statistics import median
from typing import Sequence

import numpy as np

# scipy.stats takes a second or more to import: it is imported by the functions that use it, so that
# commands which compare nothing (list, run's progress, clean) start at once.

ALPHA = 0.05  # the test's level; the interval's confidence is 1 - ALPHA
MIN_EFFECT = 0.05  # smaller differences are not called, however significant: 5% is within what a host drifts by
OUTLIER_MADS = 10.0  # hyperfine's threshold: 10 MADs, each scaled (x 1.4826) to a standard deviation
BOOTSTRAP_SEED = 0  # fixed, so that the same records always give the same interval, byte for byte
VERDICTS = ("faster", "slower", "no_difference")


@dataclass(frozen=True)
class Summary:
    """A cell's timing: one number per repeat, and which epochs stood out."""

    per_repeat: tuple[float, ...]  # each repeat's median timed epoch, seconds
    outliers: tuple[tuple[int, int], ...]  # (repeat, timed epoch) positions, as given to summarize()

    @property
    def median(self) -> float:
        return median(self.per_repeat)

    @property
    def low(self) -> float:
        return min(self.per_repeat)

    @property
    def high(self) -> float:
        return max(self.per_repeat)


def summarize(epochs_per_repeat: Sequence[Sequence[float]]) -> Summary:
    """Timed epoch seconds, one list per repeat -> a Summary; outliers are judged over all the cell's epochs."""
    positions = [(repeat, index) for repeat, epochs in enumerate(epochs_per_repeat) for index in range(len(epochs))]
    flagged = outliers([seconds for epochs in epochs_per_repeat for seconds in epochs])
    return Summary(tuple(float(median(epochs)) for epochs in epochs_per_repeat), tuple(positions[i] for i in flagged))


def outliers(values: Sequence[float], threshold: float = OUTLIER_MADS) -> tuple[int, ...]:
    """Positions of the values more than `threshold` scaled MADs from their median."""
    from scipy.stats import median_abs_deviation

    values = np.asarray(values, dtype=float)
    deviation = np.abs(values - np.median(values))
    with np.errstate(divide="ignore", invalid="ignore"):
        # When more than half the values are equal the MAD is 0: any other value is then infinitely far (flagged),
        # and the equal ones are 0/0 = nan, which no comparison flags.
        distance = deviation / median_abs_deviation(values, scale="normal")
    return tuple(int(i) for i in np.flatnonzero(distance > threshold))


@dataclass(frozen=True)
class Decision:
    """What the test says about `other` against `baseline`, without the interval."""

    ratio: float  # how many times faster `other` is: the baseline's median over the other's; above 1 is faster
    p_value: float
    verdict: str  # one of VERDICTS
    repeats_needed: int | None  # set when there are too few repeats for any result to be significant


def decide(baseline: Sequence[float], other: Sequence[float], min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> Decision:
    """Seconds per repeat of two cells -> faster, slower or no difference, and why."""
    from scipy.stats import mannwhitneyu

    ratio = median(baseline) / median(other)
    p_value = float(mannwhitneyu(baseline, other, alternative="two-sided").pvalue)
    needed = None if lowest_p_value(len(baseline), len(other)) < alpha else repeats_needed(alpha)
    shown = needed is None and p_value < alpha and abs(ratio - 1) >= min_effect
    return Decision(float(ratio), p_value, ("faster" if ratio > 1 else "slower") if shown else "no_difference", needed)


@cache  # a function of two counts, asked once per comparison
def lowest_p_value(count_a: int, count_b: int) -> float:
    """The smallest p-value the exact two-sided test can give for these sample sizes: that of samples apart."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(range(count_a), range(count_a, count_a + count_b), alternative="two-sided", method="exact").pvalue)


def repeats_needed(alpha: float = ALPHA) -> int:
    """The fewest repeats per cell (equal on both sides) with which a difference can be significant at `alpha`."""
    count = 2
    while lowest_p_value(count, count) >= alpha:
        count += 1
    return count


def ratio_interval(baseline: Sequence[float], other: Sequence[float], confidence: float = 1 - ALPHA) -> tuple[float, float] | None:
    """A percentile bootstrap interval of the ratio of medians, or None with fewer than two repeats on a side."""
    from scipy.stats import bootstrap

    if min(len(baseline), len(other)) < 2:
        return None
    # Percentile, not BCa: BCa's jackknife breaks down on the two to five repeats a cell has.
    result = bootstrap((np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)), _ratio_of_medians,
                       vectorized=True, method="percentile", confidence_level=confidence, n_resamples=9999,
                       random_state=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _ratio_of_medians(baseline: np.ndarray, other: np.ndarray, axis: int) -> np.ndarray:
    return np.median(baseline, axis=axis) / np.median(other, axis=axis)


@dataclass(frozen=True)
class Comparison:
    """How many times faster `other` is than `baseline` (above 1 is faster), with its interval and verdict."""

    ratio: float
    ci_low: float | None  # None with fewer than two repeats on a side
    ci_high: float | None
    p_value: float
    repeats: tuple[int, int]  # baseline, other
    verdict: str  # one of VERDICTS
    repeats_needed: int | None

    @property
    def words(self) -> str:
        if self.repeats_needed is not None:
            return f"needs {self.repeats_needed} repeats per cell"
        return {"no_difference": "no difference shown"}.get(self.verdict, self.verdict)

    def as_times(self) -> str:
        """12.50x (12.22-12.91) faster."""
        interval = f" ({self.ci_low:.2f}-{self.ci_high:.2f})" if self.ci_low is not None else ""
        return f"{self.ratio:.2f}x{interval} {self.words}"

    def short_times(self) -> str:
        """12.5x (12.2-12.9), 1.02x (0.99-1.05): three figures, for a narrow column."""
        figures = lambda value: f"{value:.1f}" if value >= 10 else f"{value:.2f}"  # noqa: E731
        interval = f" ({figures(self.ci_low)}-{figures(self.ci_high)})" if self.ci_low is not None else ""
        return f"{figures(self.ratio)}x{interval}"

    @property
    def short_words(self) -> str:
        return f"needs {self.repeats_needed} repeats" if self.repeats_needed is not None else self.words

    def as_percent(self) -> str:
        """+25.0% (+22.2% to +27.8%): faster; +1.2% means faster."""
        interval = f" ({_percent(self.ci_low)} to {_percent(self.ci_high)})" if self.ci_low is not None else ""
        return f"{_percent(self.ratio)}{interval}: {self.words}"


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def compare_repeats(baseline: Sequence[float], other: Sequence[float], min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> Comparison:
    """Seconds per repeat of two cells -> the ratio, its interval at confidence 1 - alpha, the p-value and the verdict."""
    decision = decide(baseline, other, min_effect, alpha)
    low, high = ratio_interval(baseline, other, 1 - alpha) or (None, None)
    return Comparison(decision.ratio, low, high, decision.p_value, (len(baseline), len(other)), decision.verdict, decision.repeats_needed)
