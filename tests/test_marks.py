"""Marks as of a deadline (grader.course.marks): the late rule and the three policies, exactly as
issue 13 states them; a grading scored from its stored outcomes, overrides followed through
`depends`, a check not checked never lost; no database, no VM."""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.course.marks import (
    Accepted,
    CheckOverride,
    Graded,
    ItemSpec,
    Late,
    days_late,
    decide,
    mark_of,
    score_grading,
)
from grader.course.marks import Recorded as Grading
from grader.engine.scoring import Settled as Outcome

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


@settings(deadline=None)  # a loaded machine is no counterexample
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


#: A small lab: greets (1) depends on listens (1); login (2) depends on greets; files (1)
ITEMS = (
    ItemSpec("listens", 1), ItemSpec("greets", 1, ("listens",)),
    ItemSpec("login", 2, ("greets",)), ItemSpec("files", 1),
)  # fmt: skip


def grading(run: int, when: datetime, **statuses: str) -> Grading:
    """A grading of ITEMS; ``statuses``: each check's status, or "skipped:KIND", "error:KIND"."""
    outcomes = []
    for item in ITEMS:
        status, _, kind = statuses.get(item.id, "pass").partition(":")
        points = item.points if status == "pass" else 0.0
        outcomes.append(Outcome(item.id, status, points, item.points, kind or None))
    return Grading(run, when, "graded", 5, tuple(outcomes), ITEMS)


def test_a_check_not_checked_is_no_lost_mark_and_leaves_the_mark_incomplete():
    busy = grading(1, at(days=-1), greets="error:busy", login="skipped:dependency_not_checked")
    scored = score_grading(busy)
    assert scored.score == 2 and scored.unchecked == ("greets", "login")
    mark = mark_of([busy], DUE, LATE, "last_before_due")
    assert mark.mark == 2 and mark.incomplete == ("greets", "login")


def test_a_later_grading_fills_what_the_counting_one_could_not_check():
    busy = grading(1, at(minutes=-5), greets="error:turned_away",
                   login="skipped:dependency_not_checked", files="fail")  # fmt: skip
    # course due grading the incomplete student again, after the grace but within its window
    later = dataclasses.replace(grading(2, at(minutes=25), files="pass", login="fail"), kind="due")
    mark = mark_of([busy, later], DUE, LATE, "last_before_due")
    # greets and login come from the later grading; files stays as it was at the deadline
    assert mark.run == 1 and mark.incomplete == ()
    assert [(f.check, f.run, f.status, f.days_late) for f in mark.filled] == [
        ("greets", 2, "pass", 0), ("login", 2, "fail", 0)
    ]  # fmt: skip
    assert mark.mark == 2  # listens 1 + greets 1; login lost, files lost
    assert "greets from the grading of" in mark.reason


#: The due-time grading could not decide greets (a command hung until its time-out), and login
#: depends on it; the work was done later.
UNDECIDED = {"greets": "error:timeout", "login": "skipped:dependency_not_checked"}


def test_a_check_decided_only_after_the_due_time_is_late_work_not_on_time():
    at_due = grading(1, at(minutes=-5), **UNDECIDED)
    two_days_late = grading(2, at(days=1, hours=2), files="fail", login="fail")
    # best: the due-time grading (2 points) beats the late one (2 points, 20 % off) and counts;
    # greets, decided two days late, carries that grading's 20 % (it was free before)
    mark = mark_of([at_due, two_days_late], DUE, LATE, "best")
    assert mark.run == 1 and mark.penalty == 0
    assert [(f.check, f.days_late, f.penalty, f.taken) for f in mark.filled] == [
        ("greets", 2, 0.2, True), ("login", 2, 0.2, True)
    ]  # fmt: skip
    assert mark.score == 3 and math.isclose(mark.mark, 2.8)
    assert "greets from the grading of" in mark.reason and "2 day(s) late: 20% off" in mark.reason
    # a lab that takes no late work: what was decided only late counts as lost, not incomplete
    before = mark_of([at_due, two_days_late], DUE, LATE, "last_before_due")
    assert before.mark == 2 and before.incomplete == ()
    greets = next(o for o in before.outcomes if o.id == "greets")
    assert greets.lost and "this lab takes no late work" in greets.message
    assert "late work not taken, lost" in before.reason


def test_course_due_retries_within_the_window_and_accepted_checks_count_on_time():
    at_due = grading(1, at(minutes=-5), **UNDECIDED)
    window = LATE.grace_minutes + LATE.retry_minutes
    retried = dataclasses.replace(grading(2, at(minutes=window - 1)), kind="due")
    assert mark_of([at_due, retried], DUE, LATE, "last_before_due").mark == 5
    # the same grading made by hand, or by course due after the window, is late work
    by_hand = dataclasses.replace(retried, kind="run")
    assert mark_of([at_due, by_hand], DUE, LATE, "last_before_due").mark == 2
    too_late = dataclasses.replace(grading(2, at(minutes=window + 1)), kind="due")
    assert mark_of([at_due, too_late], DUE, LATE, "last_before_due").mark == 2
    # staff accept a check as on time (the fault was the grader's): it counts, and says so
    yes = {"greets": Accepted("greets", "ta", "our ps timed out")}
    accepted = mark_of([at_due, by_hand], DUE, LATE, "last_before_due", accepted=yes)
    assert accepted.mark == 3  # greets accepted; login still decided late, not taken
    assert [(f.check, f.accepted is not None, f.taken) for f in accepted.filled] == [
        ("greets", True, True), ("login", False, False)
    ]  # fmt: skip
    assert "accepted as on time by ta" in accepted.reason


def test_an_override_is_followed_through_depends_like_a_live_result():
    lost = grading(1, at(days=-1), listens="fail", greets="skipped:dependency",
                   login="skipped:dependency")  # fmt: skip
    assert score_grading(lost).score == 1  # files only
    # a TA passes listens: greets and login were never checked, so they are not lost now
    passed = score_grading(lost, {"listens": CheckOverride("listens", 1, "ta", "seen live")})
    assert passed.score == 2 and passed.unchecked == ("greets", "login")
    # a TA fails greets on a complete grading: login, which depends on it, is lost with it
    done = grading(2, at(days=-1))
    failed = score_grading(done, {"greets": CheckOverride("greets", 0, "ta", "copied")})
    assert failed.score == 2 and [o.status for o in failed.outcomes] == [
        "pass", "fail", "skipped", "pass"
    ]  # fmt: skip
    assert failed.outcomes[2].lost
    # what an override left unknown is for a person: no later grading fills it
    mark = mark_of([lost, done], DUE, LATE, "best",
                   {"listens": CheckOverride("listens", 1, "ta", "seen live")})  # fmt: skip
    assert mark.run == 2 and mark.mark == 5


def test_an_override_made_on_other_points_is_noted():
    done = grading(1, at(days=-1), login="fail")
    mark = mark_of([done], DUE, LATE, "last",
                   {"login": CheckOverride("login", 1, "ta", "half", max_points=1)})  # fmt: skip
    assert mark.mark == 4 and "made when it was worth 1 points" in mark.notes[0]
