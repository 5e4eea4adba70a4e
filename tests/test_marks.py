"""Marks as of a deadline (grader.course.marks): the late rule and the three policies, exactly as
issue 13 states them; no database, no VM."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from grader.course.marks import Graded, Late, days_late, decide

DUE = datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc)
LATE = Late(per_day=0.10, max=0.50, grace_minutes=15)


def at(**delta: float) -> datetime:
    return DUE + timedelta(**delta)


def test_days_late_counts_started_days_after_the_grace():
    assert days_late(at(minutes=15), DUE, LATE) == 0  # within the grace
    assert days_late(at(minutes=16), DUE, LATE) == 1
    assert days_late(at(days=1, minutes=15), DUE, LATE) == 1
    assert days_late(at(days=1, minutes=16), DUE, LATE) == 2
    assert days_late(at(days=-3), DUE, LATE) == 0


def test_the_three_policies():
    runs = [
        Graded(at(days=-2), 12.0, 20, 1),
        Graded(at(minutes=10), 14.0, 20, 2),  # on time (grace)
        Graded(at(days=1, hours=2), 20.0, 20, 3),  # 2 days late: 20 %
        Graded(at(days=9), 20.0, 20, 4),  # 9 days late: the 50 % cap
    ]
    before = decide(runs, DUE, LATE, "last_before_due")
    assert (before.mark, before.run, before.days_late, before.penalty) == (14.0, 2, 0, 0.0)
    best = decide(runs, DUE, LATE, "best")
    assert (best.mark, best.run, best.days_late) == (16.0, 3, 2)
    last = decide(runs, DUE, LATE, "last")
    assert (last.mark, last.run, last.days_late, last.penalty) == (10.0, 4, 9, 0.5)


def test_no_grading_that_counts_is_no_mark_never_zero():
    assert decide([], DUE, LATE, "best").mark is None
    late_only = decide([Graded(at(days=1), 20.0, 20, 1)], DUE, LATE, "last_before_due")
    assert late_only.mark is None and "no grading at or before the due time" in late_only.reason
    unreachable = decide([Graded(at(days=-1), None, 20, 1)], DUE, LATE, "last")
    assert unreachable.mark is None and "could not be graded" in unreachable.reason


@given(
    st.lists(
        st.tuples(st.integers(-10_000, 20_000), st.floats(0, 20, allow_nan=False)),
        min_size=1,
        max_size=8,
    ),
    st.floats(0, 1),
    st.floats(0, 1),
    st.integers(0, 120),
)
def test_the_rule_as_written(runs, per_day, cap, grace):
    late = Late(per_day, cap, grace)
    gradings = [Graded(at(minutes=m), s, 20, n) for n, (m, s) in enumerate(runs)]
    for policy in ("best", "last", "last_before_due"):
        mark = decide(gradings, DUE, late, policy)
        if mark.mark is None:
            assert policy == "last_before_due"
            assert all(g.at > at(minutes=grace) for g in gradings)
            continue
        chosen = next(g for g in gradings if g.run == mark.run)
        past = (chosen.at - DUE - timedelta(minutes=grace)) / timedelta(days=1)
        days = math.ceil(past) if past > 0 else 0
        expected = chosen.score * (1 - min(cap, per_day * days))
        assert mark.days_late == days and math.isclose(mark.mark, expected, abs_tol=1e-5)
        penalised = [
            g.score
            * (1 - min(cap, per_day * max(0, math.ceil((g.at - DUE - timedelta(minutes=grace))
                                                         / timedelta(days=1)))))
            for g in gradings
        ]  # fmt: skip
        if policy == "best":
            assert math.isclose(mark.mark, max(penalised), abs_tol=1e-5)
        if policy == "last":
            assert chosen.at == max(g.at for g in gradings)
