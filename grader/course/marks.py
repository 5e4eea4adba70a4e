"""Marks as of a deadline: which recorded grading counts for a student's lab, and its penalty.

The grader sees a VM only as it is now, so a mark is decided from the gradings recorded in the
course's book (grader.course.book), never by grading again. For a student with due time D (their
extension, if any) and grace g, a grading at time t is

    days_late = ceil((t - D - g) / 1 day)   when t > D + g, else 0

days late, and its penalised score is ``score * (1 - min(max, per_day * days_late))``.

* ``last_before_due``: the last grading at or before D + g counts; later ones do not.
* ``best``: the best penalised score of all.
* ``last``: the latest grading, penalised.

A student with no grading that counts has no mark (None, never 0), and the reason says why.
An override of the lab's final mark replaces the mark; an override of a check's points is
applied to the score of the grading before the policy picks one (see grader.course.book).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

POLICIES = ("last_before_due", "best", "last")
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Late:
    per_day: float = 0.0  # fraction of the score taken per day late (0.10: 10 %)
    max: float = 0.0  # at most this fraction in all
    grace_minutes: float = 0.0  # after the due time, still on time


@dataclass(frozen=True)
class Graded:
    """One recorded grading of one student's lab: its time, and the score it gave (None: the
    host could not be graded)."""

    at: datetime
    score: float | None
    max_score: float
    run: int  # the book's run id, to say which one counted


@dataclass(frozen=True)
class Mark:
    mark: float | None  # None: no mark (see reason), never 0
    score: float | None  # the chosen grading's score, before the penalty
    max_score: float | None
    penalty: float  # the fraction taken off (0.2: 20 %)
    days_late: int
    run_at: datetime | None  # when the chosen grading was made
    run: int | None
    reason: str  # why there is no mark, or how it was chosen


def days_late(at: datetime, due: datetime, late: Late) -> int:
    past = at - due - timedelta(minutes=late.grace_minutes)
    return math.ceil(past / DAY) if past > timedelta(0) else 0


def penalty(days: int, late: Late) -> float:
    return min(late.max, late.per_day * days) if days > 0 else 0.0


def decide(gradings: Sequence[Graded], due: datetime, late: Late, policy: str) -> Mark:
    """The mark ``policy`` gives from ``gradings`` (in any order)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}")
    graded = sorted((g for g in gradings if g.score is not None), key=lambda g: (g.at, g.run))
    if not graded:
        why = "never graded" if not gradings else "could not be graded (see the runs)"
        return Mark(None, None, None, 0.0, 0, None, None, why)
    cutoff = due + timedelta(minutes=late.grace_minutes)

    def scored(g: Graded) -> tuple[float, float, int]:
        days = days_late(g.at, due, late)
        taken = penalty(days, late)
        return (g.score or 0.0) * (1 - taken), taken, days

    if policy == "last_before_due":
        on_time = [g for g in graded if g.at <= cutoff]
        if not on_time:
            return Mark(None, None, None, 0.0, 0, None, None,
                        f"no grading at or before the due time {cutoff.isoformat()}")  # fmt: skip
        chosen = on_time[-1]
    elif policy == "last":
        chosen = graded[-1]
    else:  # best: the best penalised score; the earlier of equals
        chosen = max(graded, key=lambda g: (scored(g)[0], -g.at.timestamp()))
    mark, taken, days = scored(chosen)
    return Mark(
        round(mark, 6), chosen.score, chosen.max_score, taken, days, chosen.at, chosen.run,
        f"{policy}: the grading of {chosen.at.isoformat()}",
    )  # fmt: skip
