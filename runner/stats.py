"""Statistics over repeats. Pure functions on plain numbers.

The unit of replication is one fresh process, a repeat: epochs of one process
share its memory layout, autotuning choices and caches, so they are not
independent samples, and two or three of them decide nothing. Each repeat
gives one number, the median of its timed epochs. Two cells are then set
against each other as asv does: a ratio of the medians of their repeats, with
a bootstrap interval. A report's comparisons are judged as one family
(`judge`): Welch's t-test on the logarithms of the repeats' seconds, its
p-values adjusted by Holm's step-down, and the minimum effect judged on the
interval. Outlier epochs are flagged by their distance from the median in
MADs, as hyperfine does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist, median
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy as np

# numpy and scipy.special (the t distribution) are imported by the functions that use them, so that commands
# which compare nothing (list, run's progress, clean) start at once. Not scipy.stats: its import takes a
# second more than scipy.special's, on every report, for a Welch test and a percentile bootstrap that are a
# few lines of numpy here (checked against scipy.stats' ttest_ind and bootstrap in tests/test_stats.py).

ALPHA = 0.05  # the family's level: the chance of any false faster/slower in a report; the interval's confidence is 1 - ALPHA
MIN_EFFECT = 0.05  # smaller differences are not called, however significant: 5% is within what a host drifts by
OUTLIER_MADS = 10.0  # hyperfine's threshold: 10 MADs, each scaled (x 1.4826) to a standard deviation
MAD_TO_SIGMA = 1 / NormalDist().inv_cdf(0.75)  # 1.4826: a normal sample's MAD times this is its standard deviation (scipy's scale="normal")
BOOTSTRAP_SEED = 0  # fixed, so that the same records always give the same interval, byte for byte
RESAMPLES = 9999  # bootstrap resamples per interval
VERDICTS = ("faster", "slower", "same", "no_difference", "not_comparable")
FEWEST_REPEATS = 3  # per cell, for any verdict: a bootstrap of two repeats has three medians to draw, an interval too narrow to trust
MOST_REPEATS_ESTIMATED = 100  # beyond this, "more than 100": the ratio sits on the edge of the minimum effect
CORRECTION = "holm"
VERDICT_RULE = ("with at least 3 repeats a side, faster/slower: the Holm-adjusted p < alpha and the interval wholly beyond "
                "+/-min_effect; same: the interval wholly inside +/-min_effect; otherwise no_difference; not_comparable (not "
                "tested, not in the family): the two cells' repeats are not balanced over the hosts that ran them")


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
    import numpy as np

    values = np.asarray(values, dtype=float)
    deviation = np.abs(values - np.median(values))
    with np.errstate(divide="ignore", invalid="ignore"):
        # When more than half the values are equal the MAD is 0: any other value is then infinitely far (flagged),
        # and the equal ones are 0/0 = nan, which no comparison flags.
        distance = deviation / (np.median(deviation) * MAD_TO_SIGMA)
    return tuple(int(i) for i in np.flatnonzero(distance > threshold))


@dataclass(frozen=True)
class Evidence:
    """What two cells' repeats say of `other` against `baseline`, before the family they are judged in is known."""

    ratio: float  # how many times faster `other` is: the baseline's median over the other's; above 1 is faster
    ci_low: float | None  # the ratio's bootstrap interval; None with fewer than two repeats on a side
    ci_high: float | None
    p_value: float  # Welch's t-test on log seconds, two-sided, unadjusted; 1.0 where there is no test
    repeats: tuple[int, int]  # baseline, other
    hosts: tuple[str, ...] = ()  # the hosts (strata) the repeats ran on, where known (runner/strata.py)
    refused: str = ""  # why the two cells cannot be compared at all (hosts not balanced): no test, no verdict


def weigh(baseline: Sequence[float], other: Sequence[float], alpha: float = ALPHA, resamples: int = RESAMPLES) -> Evidence:
    """Seconds per repeat of two cells -> the ratio, its interval at confidence 1 - alpha and the test's p-value."""
    import numpy as np

    return weigh_many(np.asarray([baseline], dtype=float), np.asarray([other], dtype=float), alpha, resamples)[0]


def weigh_many(baselines: np.ndarray, others: np.ndarray, alpha: float = ALPHA, resamples: int = RESAMPLES) -> list[Evidence]:
    """`weigh` for many pairs of equal repeat counts at once, one pair a row: a row gives what `weigh` gives it alone."""
    import numpy as np

    ratios = _ratio_of_medians(baselines, others, axis=-1)
    counts = (baselines.shape[-1], others.shape[-1])
    if min(counts) < 2:  # one repeat has no spread: nothing to resample, nothing to test
        return [Evidence(float(ratio), None, None, 1.0, counts) for ratio in ratios]
    # On log seconds, a difference of means is a ratio and a repeat that ran 10% slow weighs as one that ran 10% fast.
    # Welch's t, not a rank test: with 5 repeats a side no rank or permutation test can give p below 2/252 = 0.008,
    # which Holm's correction over a report's ~20 comparisons never reaches; t's p-values are continuous (and ties,
    # which switch Mann-Whitney silently to its asymptotic method, mean nothing to it).
    logs = np.log(baselines), np.log(others)
    p_values = welch_p_values(*logs)
    # Repeats equal to the last digit on both sides (t is 0/0 or x/0): without any spread, a difference is certain.
    unspread = (np.ptp(logs[0], axis=-1) == 0) & (np.ptp(logs[1], axis=-1) == 0)
    p_values = np.where(unspread, np.where(ratios == 1, 1.0, 0.0), p_values)
    lows, highs = percentile_interval(baselines, others, alpha, resamples)
    return [Evidence(float(ratio), float(low), float(high), float(p), counts) for ratio, low, high, p in zip(ratios, lows, highs, p_values)]


def welch_p_values(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Welch's two-sided t-test along the last axis, as scipy.stats.ttest_ind(equal_var=False) computes it; nan without spread."""
    import numpy as np
    from scipy.special import stdtr

    per_mean = np.var(a, axis=-1, ddof=1) / a.shape[-1], np.var(b, axis=-1, ddof=1) / b.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        freedom = sum(per_mean) ** 2 / (per_mean[0] ** 2 / (a.shape[-1] - 1) + per_mean[1] ** 2 / (b.shape[-1] - 1))
        t = (np.mean(a, axis=-1) - np.mean(b, axis=-1)) / np.sqrt(sum(per_mean))
        return 2 * stdtr(np.where(np.isnan(freedom), 1, freedom), -np.abs(t))


def percentile_interval(baselines: np.ndarray, others: np.ndarray, alpha: float, resamples: int) -> tuple[np.ndarray, np.ndarray]:
    """The ratio of medians' percentile bootstrap interval, pair by pair, resampled as scipy.stats.bootstrap resamples.

    Percentile, not BCa: BCa's jackknife breaks down on the two to five repeats a cell has.
    """
    import numpy as np

    generator = np.random.default_rng(BOOTSTRAP_SEED)
    drawn = [side[..., generator.integers(0, side.shape[-1], (resamples, side.shape[-1]))] for side in (baselines, others)]
    low, high = np.quantile(_ratio_of_medians(*drawn, axis=-1), [alpha / 2, 1 - alpha / 2], axis=-1)
    return low, high


def _ratio_of_medians(baseline: np.ndarray, other: np.ndarray, axis: int) -> np.ndarray:
    return _median(baseline, axis) / _median(other, axis)


def _median(values: np.ndarray, axis: int) -> np.ndarray:
    """np.median to the last bit, by sorting: on the few repeats a cell has, numpy's partition is four times slower."""
    import numpy as np

    ordered = np.sort(values, axis=axis)
    count = ordered.shape[axis]
    return np.take(ordered, [(count - 1) // 2, count // 2], axis=axis).mean(axis=axis)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the smallest times k, the next times k - 1, ..., each at least the one before.

    Rejecting where the adjusted p < alpha keeps the chance of any false rejection among the k at most alpha,
    whatever their dependence. statsmodels (multipletests) is no dependency of ours and scipy.stats has only
    false_discovery_control (Benjamini-Hochberg, which bounds a share of false calls, not the chance of one).
    """
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(sorted(range(len(p_values)), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """How many times faster `other` is than `baseline` (above 1 is faster), with its interval and the verdict's basis."""

    ratio: float
    ci_low: float | None  # None with fewer than two repeats on a side
    ci_high: float | None
    p_value: float  # unadjusted
    p_adjusted: float  # by Holm's step-down over the `family` comparisons judged together
    family: int
    repeats: tuple[int, int]  # baseline, other
    verdict: str  # one of VERDICTS, by VERDICT_RULE
    repeats_needed: int | None  # for no_difference: about how many repeats per cell would decide (repeats_to_decide)
    min_effect: float
    hosts: tuple[str, ...] = ()  # the hosts (strata) compared within
    reason: str = ""  # for not_comparable: why

    @property
    def words(self) -> str:
        if self.verdict == "not_comparable":
            return f"not comparable: {self.reason}"
        if self.verdict == "same":
            return f"same within {self.min_effect * 100:g}%"
        if self.verdict == "no_difference":
            return f"no difference shown (needs {_about(self.repeats_needed)} repeats)"
        return self.verdict

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
        if self.verdict == "not_comparable":
            return "not comparable"
        return f"needs {_about(self.repeats_needed)} repeats" if self.verdict == "no_difference" else self.words

    def as_percent(self) -> str:
        """+25.0% (+22.2% to +27.8%): faster; +1.2% means faster."""
        interval = f" ({_percent(self.ci_low)} to {_percent(self.ci_high)})" if self.ci_low is not None else ""
        return f"{_percent(self.ratio)}{interval}: {self.words}"


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _about(repeats: int | None) -> str:
    return f"over {MOST_REPEATS_ESTIMATED}" if repeats is not None and repeats > MOST_REPEATS_ESTIMATED else f"~{repeats}"


def judge(family: Sequence[Evidence], min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> list[Comparison]:
    """One report's comparisons, judged together: Holm-adjusted p-values, then each verdict by VERDICT_RULE.

    A comparison refused (its hosts not balanced) is no test: not_comparable, and not counted in the family.
    """
    tested = [evidence for evidence in family if not evidence.refused]
    adjusted = iter(holm([evidence.p_value for evidence in tested]))
    return [judged(evidence, 1.0 if evidence.refused else next(adjusted), len(tested), min_effect, alpha) for evidence in family]


def judged(evidence: Evidence, p_adjusted: float, family: int, min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> Comparison:
    """One comparison's verdict by VERDICT_RULE, its p-value already adjusted over a family of `family` tests."""
    said = "not_comparable" if evidence.refused else verdict(evidence, p_adjusted, min_effect, alpha)
    needed = repeats_to_decide(evidence, min_effect) if said == "no_difference" else None
    return Comparison(evidence.ratio, evidence.ci_low, evidence.ci_high, evidence.p_value, p_adjusted, family,
                      evidence.repeats, said, needed, min_effect, evidence.hosts, evidence.refused)


def verdict(evidence: Evidence, p_adjusted: float, min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> str:
    """VERDICT_RULE: the minimum effect is judged on the interval, not on the point ratio."""
    low, high = evidence.ci_low, evidence.ci_high
    if low is None or min(evidence.repeats) < FEWEST_REPEATS:
        return "no_difference"
    if p_adjusted < alpha and low >= 1 + min_effect:
        return "faster"
    if p_adjusted < alpha and high <= 1 - min_effect:
        return "slower"
    if 1 - min_effect < low and high < 1 + min_effect:
        return "same"
    return "no_difference"


def repeats_to_decide(evidence: Evidence, min_effect: float = MIN_EFFECT) -> int:
    """About how many repeats per cell would give a verdict, were the ratio and the repeats' spread to stay as they are.

    An interval narrows as one over the square root of the repeats: this is the count at which it would be
    narrower than the ratio's distance to the nearer edge of +/-min_effect (past it: faster or slower, inside: same).
    """
    fewest = min(evidence.repeats)
    if evidence.ci_low is None or fewest < FEWEST_REPEATS:
        return FEWEST_REPEATS
    half_width = (evidence.ci_high - evidence.ci_low) / 2
    distance = min(abs(evidence.ratio - (1 + min_effect)), abs(evidence.ratio - (1 - min_effect)))
    if distance * math.sqrt(MOST_REPEATS_ESTIMATED / fewest) <= half_width:
        return MOST_REPEATS_ESTIMATED + 1
    return max(fewest + 1, FEWEST_REPEATS, math.ceil(fewest * (half_width / distance) ** 2))


def compare_repeats(baseline: Sequence[float], other: Sequence[float], min_effect: float = MIN_EFFECT, alpha: float = ALPHA) -> Comparison:
    """Seconds per repeat of two cells, judged alone (a family of one): the ratio, its interval, the test and the verdict."""
    return judge([weigh(baseline, other, alpha)], min_effect, alpha)[0]
