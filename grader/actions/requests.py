"""Gradings asked for on the web: a student's "Grade my VM now" (or staff's for a student),
where a request stands, and a worker's grading of the next one.

The rules are here, so that every front end keeps them: a student asks for their own VM only
(another student's is not there for them), a lab after its due time only where its late rule
takes late work, and then only once they have seen what penalty it would carry; no more often
than the lab's ``requests`` allow (a request refused, or one our side or their unreachable VM
left ungraded, uses none up); asking again while one waits gives that one back. A request's
lateness is when it was asked, not when it was graded.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from grader.actions.common import Actor, NotFound
from grader.actions.grading import Connection, setup_of
from grader.base.clock import now
from grader.base.errors import CourseBusy, InputError
from grader.course import queue
from grader.course.gradebook import Gradebook
from grader.course.grading import grade_lab
from grader.course.lock import course_lock
from grader.course.marks import PRACTICE, REQUEST, days_late, penalty

#: The batch every request's grading holds the course's lock in: requests share it with each
#: other, never with ``course due`` or ``course run``
BATCH = "web-requests"


class TooSoon(InputError):
    """Past the lab's limit on requests: ``retry_after`` seconds until the next is allowed."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Closed(InputError):
    """The lab takes no grading now (its due time has passed and it takes no late work)."""


class ConfirmLate(InputError):
    """After the due time: the grading would be late work; asked again with ``confirm_late``
    it is queued."""

    def __init__(self, message: str, penalty: float) -> None:
        super().__init__(message)
        self.penalty = penalty


@dataclass(frozen=True)
class GradeRequest:
    lab: str
    student: str | None = None  # staff's: whose VM; a student's: their own (None)
    confirm_late: bool = False  # the student has seen what penalty a late grading carries


@dataclass(frozen=True)
class Asked:
    request: queue.Request
    again: bool  # it was waiting already: this is that one


def ask(course: Gradebook, actor: Actor, request: GradeRequest) -> Asked:
    """Queue a grading of a student's VM for a lab."""
    student = request.student if actor.staff else actor.student
    if student is None or (not actor.staff and request.student not in (None, actor.student)):
        raise NotFound(f"no student {request.student!r} here")
    if student not in course.roster:
        if not actor.staff:
            raise NotFound(f"no student {student!r} here")
        course.on_roster(student)  # names the closest
    if request.lab not in course.course.labs and not actor.staff:
        raise NotFound(f"no lab {request.lab!r} here")
    lab = course.course.lab(request.lab)
    waiting = [r for r in queue.of_student(course.book, student, lab.id)
               if r.state in (queue.QUEUED, queue.GRADING)]  # fmt: skip
    if waiting:
        return Asked(waiting[0], again=True)
    if not actor.staff:
        _late_or_closed(course, student, lab, request.confirm_late)
        _within_limits(course, student, lab)
    made = queue.add(course.book, lab.id, student, actor.name, lab.requests.count)
    return Asked(made, again=False)


def _late_or_closed(course: Gradebook, student: str, lab: Any, confirmed: bool) -> None:
    due = course.course.due_for(student, lab.id)
    days = days_late(now(), due, lab.late)
    if days == 0:
        return
    if lab.policy == "last_before_due":
        raise Closed(f"{lab.id} was due {due.isoformat()} and takes no late work: no more gradings")
    taken = penalty(days, lab.late)
    if not confirmed:
        raise ConfirmLate(
            f"{lab.id} was due {due.isoformat()}: a grading now is {days} day(s) late, and its "
            f"mark carries a {taken:.0%} penalty; ask again to confirm",
            taken,
        )


def _within_limits(course: Gradebook, student: str, lab: Any) -> None:
    """The lab's limits: at most ``per_day`` gradings done (or waiting) in a day, and one
    every ``every``. A refused request, one their VM could not be reached for, or one our side
    could not grade, uses none up; but a VM that cannot be reached ``per_day`` times in a day
    is not tried again that day (a VM that never answers would keep a grader busy)."""
    limits = lab.requests
    if limits.per_day == 0:
        raise Closed(f"{lab.id} takes no gradings asked for here (its requests' per_day is 0)")
    moment = now()
    recent = queue.of_student(course.book, student, lab.id, since=moment - timedelta(days=1))
    used = [r for r in recent if r.state in (queue.QUEUED, queue.GRADING, queue.DONE)]
    if len(used) >= limits.per_day:
        wait = used[0].asked_at + timedelta(days=1) - moment
        raise TooSoon(
            f"{lab.id}: at most {limits.per_day} grading(s) a day; the next one from "
            f"{(moment + wait).isoformat()}",
            max(1, int(wait.total_seconds()) + 1),
        )
    unreachable = [r for r in recent if r.state == queue.NOT_GRADED and r.detail is None]
    if len(unreachable) >= limits.per_day:
        wait = unreachable[0].asked_at + timedelta(days=1) - moment
        raise TooSoon(
            f"{lab.id}: your VM could not be reached {len(unreachable)} times today; make sure "
            f"it answers, and ask again from {(moment + wait).isoformat()}",
            max(1, int(wait.total_seconds()) + 1),
        )
    last = max((r.asked_at for r in used), default=None)
    if last is not None and moment - last < limits.every:
        wait = last + limits.every - moment
        raise TooSoon(
            f"{lab.id}: at most one grading every {_said(limits.every)}; the next one from "
            f"{(moment + wait).isoformat()}",
            max(1, int(wait.total_seconds()) + 1),
        )


def _said(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


@dataclass(frozen=True)
class Standing:
    """Where a request stands, as its student sees it."""

    request: queue.Request
    ahead: int  # requests asked before it, still waiting (queued)
    estimate_s: float | None  # about how long until it is done, from recent gradings
    mark: float | None  # the student's mark for the lab now (once it is done)


def standing(course: Gradebook, actor: Actor, request_id: int) -> Standing:
    """A request's state, place in the queue, phases and, done, the mark."""
    found = queue.get(course.book, request_id) if 0 < request_id < 2**31 else None
    if found is None or not (actor.staff or actor.student == found.student):
        raise NotFound(f"no request {request_id} here")
    ahead = queue.ahead_of(course.book, found) if found.state == queue.QUEUED else 0
    estimate = None
    if found.state in (queue.QUEUED, queue.GRADING):
        took = queue.recent_seconds(course.book)
        if took:
            estimate = statistics.median(took) * (ahead + 1)
    mark = None
    if found.state == queue.DONE:
        mark = course.explain(found.student, found.lab).row.mark
    return Standing(found, ahead, estimate, mark)


# -- a worker --------------------------------------------------------------------------------


class _Phases:
    """What a grading's progress tells, written to each request as phases."""

    def __init__(self, course: Gradebook, taken: list[queue.Request], worker: str) -> None:
        self.course, self.worker = course, worker
        self.of = {r.student: r for r in taken}

    def started(self, student: Any) -> None:
        found = self.of.get(student.student)
        if found is not None:
            queue.phase(self.course.book, found, self.worker, "checking")

    def finished(self, report: Any, reused: bool) -> None:
        found = self.of.get(report.student or "")
        if found is not None:
            queue.phase(self.course.book, found, self.worker, "scoring")


def work_one(
    course: Gradebook, worker: str, connection: Connection, lease: timedelta, most: int = 1
) -> list[queue.Request]:
    """Take the next requests (up to ``most`` of one lab, one a student) and grade them as one
    class run, recorded with each request marked done in one transaction; none when none
    waits, or when the course's other gradings hold it (``course due``): the requests wait
    for it untouched, and the worker waits a moment."""
    if not queue.any_queued(course.book):
        return []  # nothing to take: the course's lock is not asked for
    try:
        with course_lock(course.book, "web requests", wait=0, batch=BATCH):
            taken = queue.take(course.book, worker, lease, most)
            if not taken:
                return []
            return _graded(course, worker, connection, taken)
    except CourseBusy:
        return []


def _graded(
    course: Gradebook, worker: str, connection: Connection, taken: list[queue.Request]
) -> list[queue.Request]:
    @contextlib.contextmanager
    def watch(count: int) -> Iterator[_Phases]:
        yield _Phases(course, taken, worker)

    def done(sql: Any, run: int) -> None:
        for request in taken:
            queue.finish(sql, request, worker, run)

    first = taken[0]
    try:
        setup = setup_of(connection, course.rubric(first.lab))
        recorded = grade_lab(
            course.acting(first.asked_by if len(taken) == 1 else "web requests"), first.lab,
            [r.student for r in taken], REQUEST if first.counts else PRACTICE, setup,
            watch=watch, asked_at={r.student: r.asked_at for r in taken}, also=done,
        )  # fmt: skip
    except queue.LostRequest:  # nothing recorded: the others of the batch wait again, untried
        for request in taken:
            queue.put_back(course.book, request, worker, "another worker took one", tried=False)
    except Exception as e:  # our side could not grade them: tried again, a few times
        for request in taken:
            queue.put_back(course.book, request, worker, f"{type(e).__name__}: {e}", tried=True)
    else:
        if recorded is None or recorded.run is None:  # interrupted: nothing was recorded
            for request in taken:
                queue.put_back(course.book, request, worker, "interrupted", tried=False)
    course.forget()
    return [r for r in (queue.get(course.book, t.id) for t in taken) if r is not None]


def ask_for_lab(course: Gradebook, actor: Actor, lab: str) -> list[Asked]:
    """Staff's grading of every student's VM for a lab, each a request of its own."""
    actor.must_be_staff("grade a whole lab")
    course.course.lab(lab)
    return [ask(course, actor, GradeRequest(lab, student)) for student in course.roster]


def latest(course: Gradebook, actor: Actor, count: int = 50) -> list[queue.Request]:
    """The latest requests, newest first (staff's view of the queue)."""
    actor.must_be_staff("see the queue")
    return queue.latest(course.book, count)
