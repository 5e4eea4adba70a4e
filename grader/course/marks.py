"""Marks as of a deadline: a pure function of the recorded gradings, the rubric they were graded
with, the overrides in force and the course's policy. The book (grader.course.book) stores what
was observed; everything here computes from it, so ``book show``, the course page, the exports
and ``book explain`` cannot disagree.

**A grading's score** is computed from its stored outcomes through its rubric's scoring (the one
rule the runner scored it with, grader.engine.scoring.settle): an item earns its points when its
check passed. A check override (a TA's points for one check) replaces that check's verdict (pass
when it gives points, fail when it gives none) and is followed through ``depends`` like a live
result: a check whose dependency an override failed is lost with it; a check that was skipped
because its dependency failed, when an override now passes that dependency, has no verdict of
its own on record: it is not checked.

**Not checked is never lost.** A check that could not be checked (the grader's error, a
variable not given, a dependency not checked) earns nothing and costs nothing: the grading is
*incomplete*, and the mark says which checks. When a later grading checked them, their verdicts
fill the gap, and the mark says from which grading and when.

**A check decided late is late work.** A check filled in by a grading after the due time (the
student's, with the grace) carries that grading's lateness: the late rule's penalty for that
grading's time on that check's points, or, where the lab takes no late work
(``last_before_due``), it counts as lost. Otherwise a student could make the grading at the due
time fail to decide (a ``ps`` that hangs) and do the work days later. Two gradings after the due
time still count on time: those ``grade course due`` makes again for an incomplete student
within ``retry_minutes`` of the due time (and its grace), and any whose check staff accepted as
on time (``grade book accept``, for when the fault was ours).

**The policy** picks one grading. For a student with due time D (their extension, if any) and
grace g, a grading at time t is

    days_late = ceil((t - D - g) / 1 day)   when t > D + g, else 0

days late, and its penalised score is ``score * (1 - min(max, per_day * days_late))``.

* ``last_before_due``: the last grading at or before D + g counts; later ones do not.
* ``best``: the best penalised score of all.
* ``last``: the latest grading, penalised.

A student with no grading that counts has no mark (None, never 0), and the reason says why. An
override of the lab's final mark replaces the mark.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from grader.engine.scoring import (
    OVERRIDDEN_DEPENDENCY,
    CheckOverride,
    ItemSpec,
    OnRecord,
    Settled,
    earned,
    settle,
)

POLICIES = ("last_before_due", "best", "last")
#: The kind of run a student's request from the web is recorded as; one that counts in no mark
REQUEST, PRACTICE = "request", "practice"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Late:
    per_day: float = 0.0  # fraction of the score taken per day late (0.10: 10 %)
    max: float = 0.0  # at most this fraction in all
    grace_minutes: float = 0.0  # after the due time, still on time
    #: after the due time and its grace, ``course due``'s gradings again of an incomplete
    #: student still count on time for the checks they fill in
    retry_minutes: float = 30.0


@dataclass(frozen=True)
class Graded:
    """One recorded grading of one student's lab, as the policy sees it: its time, and the
    score it gave (None: the host could not be graded)."""

    at: datetime
    score: float | None
    max_score: float
    run: int  # the book's run id, to say which one counted


@dataclass(frozen=True)
class Recorded:
    """One student's grading of a lab as the book keeps it, as its latest regrade has it (a
    regrade keeps the time the VM was seen). What grading a host gives (its report and evidence
    archive) is grader.engine.runner.Grading."""

    run: int  # the original run: a regrade is the same grading, marked again
    at: datetime  # when the VM was seen
    status: str  # graded | unreachable | error
    max_score: float
    outcomes: tuple[Settled, ...] = ()
    items: tuple[ItemSpec, ...] | None = None  # its rubric's, when the book knows them
    rubric_sha256: str | None = None
    version: int = 0  # the run whose report this is (a regrade's run, or the run itself)
    report_path: str = ""
    batch: str | None = None  # the class grading its run was a shard of (None: a run alone)
    kind: str = "run"  # run | due | import | request (a regrade keeps its original's kind)
    asked_at: datetime | None = None  # a student's request: when they asked for it

    @property
    def when(self) -> datetime:
        """The time the grading counts as made, for lateness and order: when the student
        asked for it (a request made before the due time counts on time when it is graded
        after it), else when the VM was seen."""
        return self.asked_at or self.at


@dataclass(frozen=True)
class Accepted:
    """Staff's word that a check decided after the due time counts on time (the fault was
    the grader's, not the student's)."""

    check: str
    by: str
    reason: str


@dataclass(frozen=True)
class Scored:
    """A grading scored: each check's outcome as it counts (overrides applied, followed
    through depends), and the points."""

    outcomes: tuple[Settled, ...]
    score: float

    @property
    def unchecked(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.outcomes if not o.checked)


def score_grading(grading: Recorded, overrides: Mapping[str, CheckOverride] = {}) -> Scored:
    """The grading's outcomes settled again with the check overrides in force, through its
    rubric's dependencies (grader.engine.scoring.settle, as the runner settled them)."""
    items: Sequence[ItemSpec] | None = grading.items
    if items is None:  # recorded before the book kept rubrics: as stored, no dependencies
        items = tuple(ItemSpec(o.id, o.max_points) for o in grading.outcomes)
    counted = settle(items, {o.id: OnRecord(o.outcome) for o in grading.outcomes}, overrides)
    return Scored(counted, sum(o.points for o in counted))


@dataclass(frozen=True)
class Filled:
    """A check the counting grading could not check, and the later grading that checked it:
    on time, or late work (``days_late``) with its ``penalty`` on this check's points, or late
    work the lab does not take (``taken`` False: the check counts as lost)."""

    check: str
    run: int
    at: datetime
    status: str  # what the later grading found
    days_late: int = 0  # 0: on time (the due time, its grace, or course due's retry window)
    penalty: float = 0.0  # the fraction of this check's points its lateness takes
    taken: bool = True  # False: late work the lab does not take, so the check is lost
    accepted: Accepted | None = None  # late, and accepted as on time by staff


@dataclass(frozen=True)
class Mark:
    mark: float | None  # None: no mark (see reason), never 0
    score: float | None  # the chosen grading's score (with fill-ins), before the penalty
    max_score: float | None
    penalty: float  # the fraction taken off (0.2: 20 %)
    days_late: int
    run_at: datetime | None  # when the chosen grading was made
    run: int | None
    reason: str  # why there is no mark, or how it was chosen
    incomplete: tuple[str, ...] = ()  # checks of the counting grading still not checked
    filled: tuple[Filled, ...] = ()  # checks taken from a later grading
    outcomes: tuple[Settled, ...] = ()  # each check as it counts
    grading: Recorded | None = None  # the one that counts
    notes: tuple[str, ...] = field(default_factory=tuple)  # e.g. an override on old points


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


def mark_of(
    gradings: Sequence[Recorded],
    due: datetime,
    late: Late,
    policy: str,
    overrides: Mapping[str, CheckOverride] = {},
    accepted: Mapping[str, Accepted] = {},
) -> Mark:
    """The mark of one student's lab: each grading scored (check overrides applied), the
    policy's pick, and what a later grading checked that the pick could not, with that
    grading's lateness (unless staff ``accepted`` the check as on time)."""
    scored = {g.run: score_grading(g, overrides) for g in gradings if g.status == "graded"}
    decided = decide(
        [
            Graded(g.when, scored[g.run].score if g.run in scored else None, g.max_score, g.run)
            for g in gradings
        ],
        due,
        late,
        policy,
    )
    if decided.run is None:
        return decided
    chosen = next(g for g in gradings if g.run == decided.run)
    outcomes = list(scored[chosen.run].outcomes)
    later = sorted(
        (g for g in gradings if g.run in scored and (g.when, g.run) > (chosen.when, chosen.run)),
        key=lambda g: (g.when, g.run),
    )
    filled = []
    for n, outcome in enumerate(outcomes):
        if outcome.checked or outcome.error_kind == OVERRIDDEN_DEPENDENCY:
            continue  # a gap an override made is for a person to fill, not a later grading
        for other in later:
            found = next((o for o in scored[other.run].outcomes if o.id == outcome.id), None)
            if found is not None and found.checked:
                fill = _lateness(
                    Filled(outcome.id, other.run, other.when, found.status), other.kind, due,
                    late, policy, decided.penalty, accepted.get(outcome.id),
                )  # fmt: skip
                worth = outcome.max_points
                outcomes[n] = (
                    dataclasses.replace(found, points=earned(worth, found.status),
                                        max_points=worth)
                    if fill.taken
                    else dataclasses.replace(
                        found, status="fail", points=0.0, max_points=worth, error_kind=None,
                        cause=None, message=f"decided only by the grading of "
                        f"{other.when.isoformat()}, after the due time; this lab takes no late "
                        f"work ({policy})",
                    )
                )  # fmt: skip
                filled.append(fill)
                break
    score = sum(o.points for o in outcomes)
    cost = {f.check: f.penalty for f in filled}  # a check decided late: its own penalty
    mark = round(sum(o.points * (1 - cost.get(o.id, decided.penalty)) for o in outcomes), 6)
    notes = tuple(
        f"the override of {o.check} was made when it was worth {o.max_points:g} points; in "
        f"the grading that counts it is worth {item.max_points:g}"
        for o in overrides.values()
        for item in outcomes
        if item.id == o.check and o.max_points is not None and o.max_points != item.max_points
    )
    reason = decided.reason
    if filled:
        reason += "; " + ", ".join(f"{f.check} from the grading of {f.at.isoformat()}"
                                   + _late_words(f) for f in filled)  # fmt: skip
    return dataclasses.replace(
        decided,
        mark=mark,
        score=score,
        incomplete=tuple(o.id for o in outcomes if not o.checked),
        filled=tuple(filled),
        outcomes=tuple(outcomes),
        grading=chosen,
        reason=reason,
        notes=notes,
    )


def _lateness(
    fill: Filled, kind: str, due: datetime, late: Late, policy: str, chosen: float,
    accepted: Accepted | None,
) -> Filled:  # fmt: skip
    """How late a check filled in by a later grading is, and what that costs. ``chosen``: the
    counting grading's own penalty, which a check filled on time carries like the others."""
    retry = due + timedelta(minutes=late.grace_minutes + late.retry_minutes)
    days = days_late(fill.at, due, late)
    if days == 0 or (kind == "due" and fill.at <= retry):
        return dataclasses.replace(fill, penalty=chosen)
    if accepted is not None:
        return dataclasses.replace(fill, days_late=days, penalty=chosen, accepted=accepted)
    if policy == "last_before_due":  # no late work: a check decided only late is lost
        return dataclasses.replace(fill, days_late=days, penalty=0.0, taken=False)
    return dataclasses.replace(fill, days_late=days, penalty=max(chosen, penalty(days, late)))


def _late_words(fill: Filled) -> str:
    if not fill.days_late:
        return ""
    if fill.accepted is not None:
        return f" ({fill.days_late} day(s) late, accepted as on time by {fill.accepted.by})"
    if not fill.taken:
        return f" ({fill.days_late} day(s) late: late work not taken, lost)"
    return f" ({fill.days_late} day(s) late: {fill.penalty:.0%} off)"
