"""Statistics on constructed repeats: the false-positive rate, real differences, too few repeats, outliers."""

import numpy as np
import pytest

from runner.stats import (ALPHA, MIN_EFFECT, compare_repeats, decide, lowest_p_value, outliers, ratio_interval, repeats_needed,
                          summarize)

BASE = [1.00, 1.02, 0.98, 1.01, 0.99]  # seconds per repeat: about 1% apart, as repeats on a quiet host are


def test_two_identical_cells_with_five_repeats_show_no_difference():
    same = compare_repeats(BASE, [0.99, 1.01, 1.00, 0.98, 1.02])
    assert same.verdict == "no_difference" and same.repeats_needed is None
    assert same.ci_low <= 1.0 <= same.ci_high
    assert same.words == "no difference shown"
    assert same.as_times() == "1.00x (0.97-1.03) no difference shown"


def test_the_false_positive_rate_on_identical_cells_is_at_most_alpha():
    # Pairs of cells with the same log-normal timing: every difference called is a false positive.
    generator = np.random.default_rng(2024)
    samples = generator.lognormal(mean=0.0, sigma=0.05, size=(600, 2, 5))
    by_test_alone = [decide(a, b, min_effect=0.0).verdict for a, b in samples]
    assert by_test_alone.count("no_difference") >= (1 - ALPHA) * len(samples)
    called = [decide(a, b).verdict != "no_difference" for a, b in samples]
    assert sum(called) <= ALPHA * len(samples)


def test_a_real_twofold_difference_is_faster_with_an_interval_around_two():
    twice_as_fast = compare_repeats(BASE, [x / 2 for x in [1.01, 0.99, 1.00, 1.02, 0.98]])
    assert twice_as_fast.verdict == "faster" and twice_as_fast.p_value < ALPHA
    assert twice_as_fast.ci_low < 2.0 < twice_as_fast.ci_high
    assert twice_as_fast.repeats == (5, 5)
    assert twice_as_fast.as_percent() == "+100.0% (+94.1% to +106.1%): faster"


def test_the_reverse_is_slower():
    assert compare_repeats([x / 2 for x in BASE], BASE).verdict == "slower"


def test_the_interval_is_a_seeded_bootstrap_of_the_ratio_of_medians():
    interval = ratio_interval(BASE, [x / 2 for x in BASE])
    assert interval == ratio_interval(BASE, [x / 2 for x in BASE])  # the same records, the same report
    assert interval[0] < 2.0 < interval[1]
    assert ratio_interval(BASE, [x / 2 for x in BASE], confidence=0.5)[1] - ratio_interval(BASE, [x / 2 for x in BASE], confidence=0.5)[0] < interval[1] - interval[0]
    assert ratio_interval([1.0], BASE) is None  # one repeat has no spread to resample


def test_too_few_repeats_say_how_many_are_needed_instead_of_guessing():
    # 3 against 3: even samples wholly apart give p = 0.1, so no result can be significant at 0.05.
    assert lowest_p_value(3, 3) == pytest.approx(0.1)
    assert lowest_p_value(4, 4) < ALPHA
    assert repeats_needed() == 4 and repeats_needed(0.01) == 5
    apart = compare_repeats(BASE[:3], [x / 2 for x in BASE[:3]])
    assert (apart.verdict, apart.repeats_needed) == ("no_difference", 4)
    assert apart.as_times() == "2.00x (1.92-2.08) needs 4 repeats per cell"
    one_each = compare_repeats([1.0], [0.5])
    assert one_each.ci_low is None and one_each.as_percent() == "+100.0%: needs 4 repeats per cell"


def test_a_significant_difference_below_the_minimum_effect_is_not_called():
    quiet = [1.000, 1.002, 0.998, 1.001, 0.999]
    two_percent = [x / 1.02 for x in quiet]
    assert decide(quiet, two_percent, min_effect=0.0).p_value < ALPHA
    assert decide(quiet, two_percent).verdict == "no_difference"
    assert MIN_EFFECT == 0.05
    assert decide(quiet, two_percent, min_effect=0.01).verdict == "faster"


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
    assert compare_repeats(summarize(stalled).per_repeat, summarize(same).per_repeat).verdict == "no_difference"
