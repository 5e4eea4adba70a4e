"""What a student sees of their own marks, and when (a lab's ``feedback``).

* ``immediate``: every visible check with its reason and hint, each grading's report in the
  student's view (the hidden checks only counted), the evidence;
* ``after_due``: until the student's due time the mark and which checks lost marks (no
  reasons, hints or evidence); after it, everything;
* ``on_release``: the mark only, until staff release the lab's feedback (``grade book
  release``); then everything.

A student never sees the hidden checks (but how many there are), the questions for staff
(identity flags), nor what staff took on trust. Another student's marks are not there for them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from grader.actions.common import Actor, NotFound
from grader.base.clock import now
from grader.base.results import Report
from grader.base.words import Status
from grader.course import access, queue
from grader.course.book import Row
from grader.course.gradebook import Gradebook
from grader.course.marks import days_late, penalty
from grader.report.views import student_view

Seen = Literal["all", "lost", "mark"]


def seen(course: Gradebook, student: str, lab_id: str) -> Seen:
    """How much of a lab's gradings the student sees now."""
    lab = course.course.lab(lab_id)
    if lab.feedback == "after_due":
        return "all" if now() >= course.course.due_for(student, lab.id) else "lost"
    if lab.feedback == "on_release":
        return "all" if access.released(course.book, lab.id) else "mark"
    return "all"


def hidden(course: Gradebook, lab_id: str) -> set[str]:
    return {i.id for i in course.rubric(lab_id).items if i.visibility == "hidden"}


def student_row(course: Gradebook, row: Row) -> Row:
    """A student's row as they may see it: nothing of hidden checks (but the mark they count
    in), of questions for staff, or of what was taken on trust; the mark alone while the
    lab's feedback is kept back (``on_release``)."""
    if seen(course, row.student, row.lab) == "mark":
        return dataclasses.replace(
            row, incomplete=[], filled=[], notes=[], flags=[], trusted=[],
            reason="the mark only, until your staff release this lab's feedback",
        )  # fmt: skip
    secret = hidden(course, row.lab)

    def shown(text: str) -> bool:
        return not any(check in text for check in secret)

    return dataclasses.replace(
        row,
        incomplete=[c for c in row.incomplete if c not in secret],
        filled=[f for f in row.filled if f["check"] not in secret],
        notes=[n for n in row.notes if shown(n)],
        reason="; ".join(part for part in row.reason.split("; ") if shown(part)),
        flags=[],
        trusted=[],
    )


@dataclass(frozen=True)
class CheckLine:
    id: str
    title: str
    points: float
    max_points: float
    state: Literal["pass", "lost", "not checked"]
    message: str  # why (what the student sees of it: none unless they see everything)
    hint: str
    decided: str  # where its verdict came from, when not the grading that counts


@dataclass(frozen=True)
class GradingLine:
    run: int
    at: datetime  # when the VM was seen
    kind: str
    score: float | None  # its own score over every check (None: not graded)
    max_score: float
    counts: bool  # the grading that counts
    report: bool  # its report may be opened


@dataclass(frozen=True)
class LabView:
    lab: str
    title: str
    due: datetime  # the student's (an extension, if any)
    extended: bool
    policy: str
    late: str  # the late rule in words
    seen: Seen
    row: Row
    checks: list[CheckLine]
    hidden: int  # checks marked by staff only (not shown)
    gradings: list[GradingLine]
    requests: list[queue.Request]
    may_ask: bool  # "Grade my VM now" is open
    late_penalty: float | None  # what a grading asked for now would carry (after the due time)
    notes: list[str] = field(default_factory=list)


def lab_view(course: Gradebook, actor: Actor, student: str, lab_id: str) -> LabView:
    """One of a student's labs, as the student (or staff, on their behalf) sees it."""
    actor.may_see(student)
    if lab_id not in course.course.labs or student not in course.roster:
        raise NotFound(f"no lab {lab_id!r} here")
    lab = course.course.lab(lab_id)
    explained = course.explain(student, lab.id)
    shows = seen(course, student, lab.id)
    secret = hidden(course, lab.id)
    rubric = course.rubric(lab.id)
    items = {i.id: i for i in rubric.items}
    filled = {f.check: f for f in explained.decided.filled}
    overridden = {o["check"]: o for o in explained.overrides}
    checks = []
    for o in explained.decided.outcomes:
        if o.id in secret or (shows == "mark") or (shows == "lost" and not o.lost):
            continue
        state: Any = "lost" if o.lost else ("pass" if o.status == Status.PASS else "not checked")
        decided = ""
        if o.id in overridden:
            decided = f"set by {overridden[o.id]['by']}: {overridden[o.id]['reason']}"
        elif o.id in filled:
            f = filled[o.id]
            decided = f"from the grading of {f.at.isoformat()}" + (
                f", {f.days_late} day(s) late" if f.days_late else ""
            )
        item = items.get(o.id)
        checks.append(
            CheckLine(
                o.id, item.title if item else o.id, o.points, o.max_points, state,
                o.message if shows == "all" else "", item.hint if item and shows == "all" else "",
                decided,
            )
        )  # fmt: skip
    counting = explained.decided.run
    gradings = [
        GradingLine(
            g.run, g.at, g.kind, sum(o.points for o in g.outcomes)
            if g.status == "graded" and shows != "mark" else None, g.max_score,
            g.run == counting, shows == "all" and bool(g.report_path),
        )
        for g in sorted(explained.gradings, key=lambda g: (g.at, g.run))
    ]  # fmt: skip
    due = course.course.due_for(student, lab.id)
    days = days_late(now(), due, lab.late)
    open_now = days == 0 or lab.policy != "last_before_due"
    rule = (
        f"{lab.late.per_day:.0%} a day, at most {lab.late.max:.0%}"
        if lab.late.per_day
        else "no penalty"
        if lab.policy != "last_before_due"
        else "no late work"
    )
    return LabView(
        lab.id, rubric.title, due, due != lab.due, lab.policy, rule, shows,
        student_row(course, explained.row), checks, len(secret), gradings,
        queue.of_student(course.book, student, lab.id)[-10:], open_now,
        penalty(days, lab.late) if days else None,
    )  # fmt: skip


def report_of(course: Gradebook, actor: Actor, student: str, lab_id: str, run: int) -> Report:
    """A grading's report as the actor may read it: staff the instructor's view, a student
    theirs (the hidden checks only counted), and only when they see everything of the lab."""
    actor.may_see(student)
    if lab_id not in course.course.labs:
        raise NotFound(f"no grading {run} here")
    grading = next((g for g in course.book.gradings(student, lab_id) if g.run == run), None)
    if grading is None or not grading.report_path:
        raise NotFound(f"no grading {run} here")
    if not actor.staff and seen(course, student, lab_id) != "all":
        raise NotFound(f"no grading {run} here")
    path = course.book.absolute(grading.report_path)
    try:
        report = Report.from_dict(json.loads(path.read_text())) if path else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        report = None
    if report is None:
        raise NotFound(f"grading {run}'s report cannot be read (its folder moved?)")
    return report if actor.staff else student_view(report, course.rubric(lab_id))
