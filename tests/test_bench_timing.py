"""The benchmark's statistics: what the tables' ratios are computed from."""
import math

from cnnative.bench import timing


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    # The host slows down 3x halfway: each repeat's ratio is still 2, the medians' is not.
    one = timing.Timing("one", 1, [2.0, 2.0, 2.0, 6.0, 6.0, 6.0, 6.0])
    two = timing.Timing("two", 1, [1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    two.samples[0] = 0.5  # one outlier repeat moves the median of ratios by nothing
    assert timing.paired_ratio(one, two) == 2.0
    assert one.median / two.median == 2.0
    uneven = timing.Timing("uneven", 1, [1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0])
    assert one.median / uneven.median == 6.0
    assert timing.paired_ratio(one, uneven) == 2.0


def test_paired_ratio_without_samples_is_nan():
    assert math.isnan(timing.paired_ratio(timing.Timing("a", 1), timing.Timing("b", 1)))
