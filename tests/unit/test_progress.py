"""Progress in parts: one task's bar rises through several sub-steps, each reporting on its own scale."""

import pytest

from layerscope.progress import Cancelled, in_parts, stoppable


def test_parts_reporting_on_their_own_scales_make_one_rising_bar_that_ends_full():
    calls = []
    first, second, third = in_parts(lambda *c: calls.append(c), "featurevis conv2", [256, 256, 128])
    # what layer_featurevis's three optimisations report: each from 0 to its own total, under its own name
    ends = []
    for fn, task, total in ((first, "featurevis conv2", 256), (second, "featurevis conv2 naive", 256)):
        for done in range(total + 1):
            fn(task, done, total)
        ends.append(calls[-1][1] / calls[-1][2])
    for done in range(129):
        third("accentuate conv2", done, 128)
    assert {task for task, _, _ in calls} == {"featurevis conv2"}
    fractions = [done / total for _, done, total in calls]
    assert fractions[0] == 0 and fractions[-1] == 1
    assert all(a <= b for a, b in zip(fractions, fractions[1:], strict=False))
    assert ends == [0.4, 0.8]  # each part takes its share of the bar: 256, 256 and 128 of 640 steps


def test_a_part_going_back_or_reporting_late_never_moves_the_bar_back():
    calls = []
    first, second = in_parts(lambda *c: calls.append(c), "t", [10, 10])
    first("a", 10, 10)
    second("b", 6, 10)
    second("b", 2, 10)  # a restart within the part
    first("a", 3, 10)  # an earlier part, late
    second("b", 10, 10)
    fractions = [done / total for _, done, total in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1


def test_a_stop_asked_for_stops_the_work_at_the_next_report_of_any_part():
    asked = []
    first, second = in_parts(stoppable(lambda *c: None, lambda: bool(asked)), "t", [10, 10])
    first("a", 10, 10)
    second("b", 3, 10)
    asked.append(True)
    with pytest.raises(Cancelled):
        second("b", 3, 10)  # a report that moves the bar no further still stops


def test_parts_must_be_sizes():
    with pytest.raises(ValueError, match="at least 0"):
        in_parts(lambda *c: None, "t", [3, -1])
