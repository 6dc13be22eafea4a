"""Statistics on constructed repeats: a report's false-verdict rate, real differences, equivalence, too few repeats, outliers."""

import numpy as np

from runner.stats import (ALPHA, MIN_EFFECT, Evidence, compare_repeats, holm, judge, outliers, percentile_interval, repeats_to_decide,
                          summarize, verdict, weigh, weigh_many, welch_p_values)

BASE = [1.00, 1.02, 0.98, 1.01, 0.99]  # seconds per repeat: about 1% apart, as repeats on a quiet host are


def test_two_identical_quiet_cells_are_the_same_within_the_minimum_effect():
    same = compare_repeats(BASE, [0.99, 1.01, 1.00, 0.98, 1.02])
    assert same.verdict == "same" and same.repeats_needed is None
    assert same.ci_low <= 1.0 <= same.ci_high
    assert same.words == "same within 5%"
    assert same.as_times() == "1.00x (0.97-1.03) same within 5%"


def _report_family(cells: np.ndarray, resamples: int):
    """A report's comparisons of 12 cells, as analysis.pairs makes them: 11 speed-ups against the first cell and
    10 steps of one cell to the next (each cuDNN against the one before), for many reports at once."""
    reports, count, _ = cells.shape
    rows = [(0, i) for i in range(1, count)] + [(i, i + 1) for i in range(1, count - 1)]
    baselines = np.concatenate([cells[:, a] for a, _ in rows])  # row r * reports + report
    others = np.concatenate([cells[:, b] for _, b in rows])
    evidence = weigh_many(baselines, others, resamples=resamples)
    return [[evidence[row * reports + report] for row in range(len(rows))] for report in range(reports)], rows


def test_a_report_of_identical_cells_calls_any_false_difference_in_at_most_alpha_of_reports():
    # 1,000 reports of 12 cells alike: per-repeat medians with 10% spread, 5 repeats a cell. Every faster or slower
    # is false; Holm's correction keeps the share of reports with any at most alpha. (99 resamples: the test's
    # speed; the product's 9999 only steady the interval's ends.)
    cells = np.random.default_rng(2026).lognormal(mean=0.0, sigma=0.1, size=(1000, 12, 5))
    families, rows = _report_family(cells, resamples=99)
    judged = [judge(family) for family in families]
    false = [any(c.verdict in ("faster", "slower") for c in report) for report in judged]
    assert sum(false) <= ALPHA * len(judged)
    assert all(report[0].family == len(rows) == 21 for report in judged)
    # Without the correction, the same test and interval call some difference in far more reports than alpha.
    uncorrected = [any(verdict(e, e.p_value) in ("faster", "slower") for e in family) for family in families]
    assert sum(uncorrected) > ALPHA * len(families)


def test_a_true_ten_percent_difference_in_such_a_report_is_still_found():
    cells = np.random.default_rng(7).lognormal(mean=0.0, sigma=0.02, size=(200, 12, 5))
    cells[:, 5] /= 1.10  # cell 5 is 10% faster: its speed-up (row 4) and the steps to and from it (rows 14, 15) should say so
    families, rows = _report_family(cells, resamples=99)
    judged = [judge(family) for family in families]
    assert rows[4] == (0, 5) and rows[14] == (4, 5) and rows[15] == (5, 6)
    # With 2% spread and 5 repeats the interval of the ratio of medians clears +5% about three times in four; the rest
    # say no difference shown and ask for more repeats. Never the wrong way, never a false call beside it.
    for row, right in ((4, "faster"), (14, "faster"), (15, "slower")):
        said = [report[row].verdict for report in judged]
        assert said.count(right) >= 0.65 * len(judged) and set(said) <= {right, "no_difference"}
    assert not any(c.verdict in ("faster", "slower") for report in judged for row, c in enumerate(report) if row not in (4, 14, 15))


def test_many_pairs_at_once_weigh_each_as_it_is_weighed_alone():
    rows = np.random.default_rng(3).lognormal(sigma=0.05, size=(2, 3, 5))
    together = weigh_many(rows[0], rows[1])
    assert together[1] == weigh(rows[0][1], rows[1][1])


def test_a_real_twofold_difference_is_faster_with_an_interval_around_two():
    twice_as_fast = compare_repeats(BASE, [x / 2 for x in [1.01, 0.99, 1.00, 1.02, 0.98]])
    assert twice_as_fast.verdict == "faster" and twice_as_fast.p_value < ALPHA
    assert (twice_as_fast.p_adjusted, twice_as_fast.family) == (twice_as_fast.p_value, 1)
    assert twice_as_fast.ci_low < 2.0 < twice_as_fast.ci_high
    assert twice_as_fast.repeats == (5, 5)
    assert twice_as_fast.as_percent() == "+100.0% (+94.1% to +106.1%): faster"


def test_the_reverse_is_slower():
    assert compare_repeats([x / 2 for x in BASE], BASE).verdict == "slower"


def test_the_interval_is_a_seeded_bootstrap_of_the_ratio_of_medians():
    interval = weigh(BASE, [x / 2 for x in BASE])
    assert interval == weigh(BASE, [x / 2 for x in BASE])  # the same records, the same report
    assert interval.ci_low < 2.0 < interval.ci_high
    narrow = weigh(BASE, [x / 2 for x in BASE], alpha=0.5)
    assert narrow.ci_high - narrow.ci_low < interval.ci_high - interval.ci_low
    assert weigh([1.0], BASE).ci_low is None  # one repeat has no spread to resample


def test_welchs_test_and_the_bootstrap_give_what_scipy_stats_gives():
    """The numbers scipy.stats 1.17.1's ttest_ind(equal_var=False) and bootstrap(method="percentile", the same seed) gave on these
    repeats: the runner computes both with numpy and scipy.special, to spare every report scipy.stats' second-long import."""
    baselines = np.array([[1.00, 1.02, 0.99, 1.01, 1.03], [2.0, 2.1, 1.9, 2.05, 1.95]])
    others = np.array([[0.90, 0.93, 0.91, 0.92, 0.89], [2.0, 2.02, 1.98, 2.01, 1.99]])
    assert np.allclose(welch_p_values(np.log(baselines), np.log(others)), [9.374847964249804e-06, 0.9749237743005268], rtol=1e-12)
    low, high = percentile_interval(baselines, others, ALPHA, 9999)
    assert np.allclose(low, [1.076086956521739, 0.95], rtol=1e-12) and np.allclose(high, [1.1444444444444444, 1.05], rtol=1e-12)


def test_holm_multiplies_the_smallest_p_by_k_and_never_lets_a_larger_p_fall_below_a_smaller():
    assert holm([0.01, 0.04, 0.03, 0.5]) == [0.04, 0.09, 0.09, 0.5]
    assert holm([0.3]) == [0.3] and holm([]) == []
    assert holm([0.6, 0.6]) == [1.0, 1.0]


def test_the_minimum_effect_is_judged_on_the_interval_not_the_point_ratio():
    significant = 0.001
    assert verdict(Evidence(1.10, 1.06, 1.14, significant, (5, 5)), significant) == "faster"
    assert verdict(Evidence(1.10, 1.03, 1.17, significant, (5, 5)), significant) == "no_difference"  # the point is 10%, the interval not
    assert verdict(Evidence(1.10, 1.06, 1.14, 0.2, (5, 5)), 0.2) == "no_difference"  # the interval alone calls nothing
    assert verdict(Evidence(0.90, 0.86, 0.94, significant, (5, 5)), significant) == "slower"
    assert verdict(Evidence(1.01, 0.97, 1.04, 0.5, (5, 5)), 0.5) == "same"
    assert verdict(Evidence(1.01, 0.94, 1.04, 0.5, (5, 5)), 0.5) == "no_difference"


def test_no_difference_shown_says_about_how_many_repeats_would_decide():
    unclear = Evidence(1.00, 0.90, 1.10, 0.9, (5, 5))  # half-width 0.10, 0.05 from the nearer edge of +/-5%: 4 times the repeats
    assert repeats_to_decide(unclear) == 20
    (judged,) = judge([unclear])
    assert (judged.verdict, judged.repeats_needed) == ("no_difference", 20)
    assert judged.words == "no difference shown (needs ~20 repeats)"
    assert judged.short_words == "needs ~20 repeats"
    on_the_edge = judge([Evidence(1.05, 1.00, 1.10, 0.2, (5, 5))])[0]
    assert on_the_edge.words == "no difference shown (needs over 100 repeats)"
    one_each = compare_repeats([1.0], [0.5])
    assert one_each.ci_low is None and one_each.as_percent() == "+100.0%: no difference shown (needs ~3 repeats)"


def test_a_significant_difference_below_the_minimum_effect_is_not_called():
    quiet = [1.000, 1.002, 0.998, 1.001, 0.999]
    two_percent = [x / 1.02 for x in quiet]
    assert compare_repeats(quiet, two_percent, min_effect=0.0).p_value < ALPHA
    assert compare_repeats(quiet, two_percent).verdict == "same"  # 2% faster, and surely within 5%
    assert MIN_EFFECT == 0.05
    assert compare_repeats(quiet, two_percent, min_effect=0.01).verdict == "faster"


def test_repeats_equal_to_the_last_digit_are_certain_of_their_difference():
    assert (compare_repeats([1.0] * 4, [1.0] * 4).p_value, compare_repeats([1.0] * 4, [1.0] * 4).verdict) == (1.0, "same")
    assert (compare_repeats([1.0] * 4, [1.25] * 4).p_value, compare_repeats([1.0] * 4, [1.25] * 4).verdict) == (0.0, "slower")


def test_mad_flags_exactly_the_stalled_epoch():
    epochs = [[1.00, 1.01, 0.99], [1.02, 3.50, 1.00], [0.98, 1.00, 1.01]]
    summary = summarize(epochs)
    assert summary.outliers == ((1, 1),)
    assert summary.per_repeat == (1.00, 1.02, 1.00)  # the stall moves only its own repeat's median
    assert outliers([1.0, 1.1, 0.9, 1.05]) == ()
    assert outliers([1.0, 1.0, 1.0, 1.3]) == (3,)  # a MAD of 0: anything else is far


def test_one_stalled_epoch_does_not_ruin_a_verdict():
    stalled = [[s, s, s] for s in BASE]
    stalled[2][1] = 9.0
    fast = [[s / 2] * 3 for s in BASE]
    assert compare_repeats(summarize(stalled).per_repeat, summarize(fast).per_repeat).verdict == "faster"
    same = [[s] * 3 for s in [0.99, 1.01, 1.00, 0.98, 1.02]]
    assert compare_repeats(summarize(stalled).per_repeat, summarize(same).per_repeat).verdict == "same"
