"""The gradebook's actions: what staff (and, of their own marks, students) do with the book.

Each takes the course (an open ``Gradebook``), who acts and a request, and returns a result;
see ``grader.actions``. Marks, history and explanations are a student's own only (another's is
``NotFound``); everything that changes the book is staff's, recorded as done by the actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from grader.actions.common import Actor, CourseAt
from grader.base.clock import now
from grader.base.errors import InputError
from grader.course import access
from grader.course.book import Explained, Row
from grader.course.explain import explanation
from grader.course.exports import book_export
from grader.course.gradebook import Gradebook, open_gradebook
from grader.course.imports import Imported
from grader.course.page import pages


@contextlib.contextmanager
def open_course(where: CourseAt, actor: Actor, create: bool = False) -> Iterator[Gradebook]:
    """The course and its book, open for one front end's call (closed after); ``create``: make
    a SQLite book that is not there yet (only what records does)."""
    gradebook = open_gradebook(where.course, where.db, actor.name, create=create)
    try:
        yield gradebook
    finally:
        gradebook.close()


# -- what the book says ----------------------------------------------------------------------


@dataclass(frozen=True)
class MarksRequest:
    lab: str | None = None  # one lab, or every lab of the course


@dataclass(frozen=True)
class Marks:
    title: str
    at: datetime  # the marks as of this moment
    rows: list[Row]  # a student's row per lab (``book show --format json`` is their contract)


def marks(course: Gradebook, actor: Actor, request: MarksRequest) -> Marks:
    """Every student's mark for every lab (or one): a student's own rows only."""
    if request.lab is not None:
        course.course.lab(request.lab)
    if actor.staff:
        rows = course.rows(request.lab)
    else:
        labs = [request.lab] if request.lab else list(course.course.labs)
        rows = [course.explain(actor.student or "", lab).row for lab in labs]
    return Marks(course.course.title, now(), rows)


@dataclass(frozen=True)
class HistoryRequest:
    student: str
    lab: str | None = None


@dataclass(frozen=True)
class History:
    events: list[dict[str, Any]]  # in time order; a grading's ``counts``: it is the one that counts


def history(course: Gradebook, actor: Actor, request: HistoryRequest) -> History:
    """Every run, regrade, drop, override and acceptance of a student, and which grading of
    each lab counts."""
    actor.may_see(request.student)
    if request.lab is not None:
        course.course.lab(request.lab)
    events = course.book.history(request.student, request.lab)
    counting = {
        lab: course.explain(request.student, lab).row.run
        for lab in course.course.labs
        if request.lab in (None, lab)
    }
    not_gradings = ("override", "withdraw", "first_passed", "drop", "undrop", "accept", "unaccept")
    for e in events:
        if e["kind"] not in not_gradings:
            original = e["regrade_of"] if e["kind"] == "regrade" else e["run"]
            e["counts"] = counting.get(e["lab"]) == original
    return History(events)


@dataclass(frozen=True)
class ExplainRequest:
    student: str
    lab: str


@dataclass(frozen=True)
class Explanation:
    row: Row  # as ``book show --format json`` gives it
    text: str  # what ``book explain`` prints: the grading that counts, each check, and why
    explained: Explained


def explain(course: Gradebook, actor: Actor, request: ExplainRequest) -> Explanation:
    """A student's mark for a lab and why, on one screen."""
    actor.may_see(request.student)
    lab = course.course.lab(request.lab).id
    student = request.student
    if student not in course.roster and student not in course.book.students(lab):
        course.on_roster(student)  # names the closest
    explained = course.explain(student, lab)
    return Explanation(explained.row, explanation(course, explained), explained)


# -- what staff change -----------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideRequest:
    student: str
    lab: str
    check: str | None  # None: the lab's final mark
    value: float  # the check's points, or the lab's mark
    reason: str


@dataclass(frozen=True)
class Changed:
    """A change recorded in the book: its row's id there."""

    id: int


def override(course: Gradebook, actor: Actor, request: OverrideRequest) -> Changed:
    """Set a check's points or a lab's mark for a student, with the reason, as the actor."""
    actor.must_be_staff("override marks")
    points = request.value if request.check is not None else None
    mark = request.value if request.check is None else None
    made = course.acting(actor.name).override(
        request.student, request.lab, request.check, points, mark, request.reason
    )
    return Changed(made)


@dataclass(frozen=True)
class WithdrawRequest:
    student: str
    lab: str
    check: str | None  # None: the override of the lab's mark
    reason: str


def withdraw(course: Gradebook, actor: Actor, request: WithdrawRequest) -> Changed:
    """Take back the override in force (kept in the history)."""
    actor.must_be_staff("withdraw overrides")
    made = course.acting(actor.name).withdraw(
        request.student, request.lab, request.check, request.reason
    )
    return Changed(made)


@dataclass(frozen=True)
class AcceptRequest:
    student: str
    lab: str
    check: str
    reason: str
    undo: bool = False


def accept(course: Gradebook, actor: Actor, request: AcceptRequest) -> Changed:
    """Count a check decided only after the due time on time (the fault was the grader's), or
    take that back; kept in the history."""
    actor.must_be_staff("accept late work as on time")
    made = course.acting(actor.name).accept(
        request.student, request.lab, request.check, request.reason, undo=request.undo
    )
    return Changed(made)


@dataclass(frozen=True)
class DropRequest:
    run: int
    reason: str
    undo: bool = False  # put a dropped run back


def drop(course: Gradebook, actor: Actor, request: DropRequest) -> Changed:
    """Take a recorded run out of the marks (kept in the book and its history), or put it
    back."""
    actor.must_be_staff("drop runs")
    book = course.acting(actor.name).book
    if request.undo:
        book.undrop(request.run, request.reason)
    else:
        book.drop(request.run, request.reason)
    return Changed(request.run)


@dataclass(frozen=True)
class ImportRequest:
    lab: str
    folder: Path
    trust: str | None = None  # staff's reason to take reports the book cannot replay


@dataclass(frozen=True)
class ImportDone:
    run: int
    count: int
    checked: Imported  # what was replayed, signed, and taken on trust


def import_folder(course: Gradebook, actor: Actor, request: ImportRequest) -> ImportDone:
    """Record a folder graded outside the course, every report checked first."""
    actor.must_be_staff("import gradings")
    run, count, checked = course.acting(actor.name).import_folder(
        request.lab, request.folder, request.trust
    )
    return ImportDone(run, count, checked)


# -- what the book is turned into ------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    lms: Literal["moodle", "canvas"]
    feedback: bool = True  # Moodle: the feedback columns
    include_incomplete: bool = False


@dataclass(frozen=True)
class Exported:
    text: str  # the LMS's import file


def export(course: Gradebook, actor: Actor, request: ExportRequest) -> Exported:
    """The final marks as an LMS import file, refused while a mark is incomplete unless
    ``include_incomplete``."""
    actor.must_be_staff("export marks")
    text, incomplete = book_export(course, request.lms, feedback=request.feedback)
    if incomplete and not request.include_incomplete:
        raise InputError(
            "not exported: these marks are incomplete (a check could not be checked at the "
            "grading that counts, so the mark is short of what the student may have earned): "
            + "; ".join(f"{s} {lab} ({', '.join(ids)})" for s, lab, ids in incomplete[:20])
            + ("; ..." if len(incomplete) > 20 else "")
            + ". Grade them again (grade course due), override the checks, or give "
            "--include-incomplete to export them as they are"
        )
    return Exported(text)


@dataclass(frozen=True)
class PageRequest:
    target: Path | None = None  # course.html's path (default: in the course folder)


@dataclass(frozen=True)
class Pages:
    target: Path  # course.html
    files: dict[Path, str] = field(default_factory=dict)  # every page's path and its HTML


def page(course: Gradebook, actor: Actor, request: PageRequest) -> Pages:
    """The course page and each student's page (for the front end to write)."""
    actor.must_be_staff("make the course page")
    target = request.target or course.course.folder / "course.html"
    found = pages(course.course, course.rows(), course.class_notes())
    files = {
        (target if relative == "course.html" else target.parent / relative): html
        for relative, html in found.items()
    }
    return Pages(target, files)


@dataclass(frozen=True)
class BackupRequest:
    target: Path  # a new file


@dataclass(frozen=True)
class BackedUp:
    target: Path
    source: str  # the book's file, to restore over


def backup(course: Gradebook, actor: Actor, request: BackupRequest) -> BackedUp:
    """A consistent copy of a SQLite book while it is in use."""
    actor.must_be_staff("back the book up")
    course.book.backup(request.target)
    return BackedUp(request.target, course.book.url.removeprefix("sqlite:///"))


@dataclass(frozen=True)
class ReleaseRequest:
    lab: str


def release(course: Gradebook, actor: Actor, request: ReleaseRequest) -> None:
    """Release a lab's feedback to its students (a lab whose feedback is ``on_release``); kept
    with who and when."""
    actor.must_be_staff("release feedback")
    lab = course.course.lab(request.lab)
    if lab.feedback != "on_release":
        raise InputError(
            f"{lab.where}labs ({lab.id}).feedback is {lab.feedback!r}: its students see their "
            'feedback without a release (feedback = "on_release" keeps it back until one)'
        )
    if access.released(course.book, lab.id):
        raise InputError(f"{lab.id}'s feedback is released already")
    access.release(course.acting(actor.name).book, lab.id)


def released(course: Gradebook, actor: Actor) -> dict[str, bool]:
    """Each lab: whether its feedback is released (for a lab whose feedback is on_release)."""
    return {lab: access.released(course.book, lab) for lab in course.course.labs}
