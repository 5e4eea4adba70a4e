"""Grading a course's lab into its book: whom to grade, with which variables, into which folder.

* ``grade_lab``: the roster (or some of its students) graded now into a new folder under
  ``runs/`` (never one another grading made), each report signed with the course's key
  (grader.evidence.signing), recorded in the book with the lab's rubric and its code.
  A grading that lacks a variable a check needs (a lab user's password) refuses to start, naming the
  variable and the students: a check skipped for it would leave every mark incomplete.
* ``due_now``: whom ``grade course due`` grades: exactly the students whose due time has
  passed since their last recorded grading of the lab, and those whose mark is incomplete
  (a check the grader could not run at the grading that counts), at most ``RETRIES`` times.
* ``regrade_lab``: every recorded grading of a lab marked again from its evidence archive
  with the lab's current rubric, and recorded as its regrade (signed reports verified first,
  the new ones signed).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.base.clock import now
from grader.base.closest import closest
from grader.base.errors import InputError
from grader.base.words import ErrorKind
from grader.classrun.regrade import regrade_folder
from grader.classrun.roster import load_roster
from grader.classrun.roster import shard as slice_of
from grader.classrun.run import ClassRun, run_class
from grader.course.gradebook import Gradebook
from grader.course.marks import OVERRIDDEN_DEPENDENCY
from grader.engine.runner import Setup
from grader.evidence.manifest import sha256_of
from grader.evidence.signing import KEY_FILE, Key
from grader.machine.execution import Target
from grader.report.store import ReportStore

#: Gradings after a due time that ``course due`` makes to complete an incomplete mark
RETRIES = 3


@dataclass(frozen=True)
class Recorded:
    lab: str
    kind: str
    run: int | None  # the book's run (None: nothing was graded to record)
    folder: Path
    done: ClassRun


def lab_variables(gradebook: Gradebook, lab_id: str) -> dict[str, str]:
    """The lab's variables of course.toml (secrets from the environment), each a variable of
    the lab's rubric."""
    lab = gradebook.course.lab(lab_id)
    rubric = gradebook.rubric(lab_id)
    for name in lab.vars:
        if name not in rubric.vars:
            raise InputError(
                f"{lab.where}labs ({lab.id}).vars.{name}: {lab.id}'s rubric has no variable "
                f"{name!r}{closest(name, rubric.vars)} (it has: {', '.join(rubric.vars)})"
            )
    return lab.given()


def missing_variables(
    rubric: Any, given: Mapping[str, str], students: Sequence[Any]
) -> dict[str, list[str]]:
    """Each variable that would be empty at grading, and for whom."""
    missing: dict[str, list[str]] = {}
    for student in students:
        values = rubric.resolve_vars({**given, **student.vars}, student=student.student)
        for name, value in values.items():
            if not value:
                missing.setdefault(name, []).append(student.student)
    return missing


def new_run_folder(gradebook: Gradebook, lab_id: str, kind: str) -> Path:
    """runs/<lab>-<kind>-<time>[-N]: made here, so no two gradings ever share one."""
    runs = gradebook.course.folder / "runs"
    private = gradebook.course.private
    runs.mkdir(mode=0o700 if private else 0o777, exist_ok=True)
    if private:
        os.chmod(runs, 0o700)
    stamp = now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = runs / (f"{lab_id}-{kind}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            folder.mkdir(mode=0o700 if private else 0o777)
        except FileExistsError:
            continue
        return folder
    raise InputError(f"{runs}: no free folder name for {lab_id}-{kind}-{stamp}")


def grade_lab(
    gradebook: Gradebook,
    lab_id: str,
    only: Sequence[str] | None,
    kind: str,
    setup: Setup,
    ignore: Sequence[str] = (),
    watch: Any = None,
    batch: str | None = None,
    shard: tuple[int, int] | None = None,
    on_students: Callable[[Sequence[Any]], None] = lambda students: None,
    asked_at: Mapping[str, datetime] | None = None,
    also: Callable[[Any, int], None] | None = None,
) -> Recorded | None:
    """Grade the lab's roster (or the students ``only``) now and record it; ``on_students``
    hears whom, before anything is graded."""

    lab = gradebook.course.lab(lab_id)
    pack = gradebook.pack(lab.id)
    given = lab_variables(gradebook, lab.id)
    students = load_roster(
        gradebook.course.roster,
        pack.rubric,
        setup.target,
        ignore=[*ignore, *gradebook.others_columns(lab.id)],
    )
    if shard is not None:
        students = slice_of(students, *shard)
    if only is not None:
        wanted = set(gradebook.students_named(only))
        students = [s for s in students if s.student in wanted]
    if not students:
        return None
    missing = missing_variables(pack.rubric, given, students)
    if missing:
        lines = [
            f"{name} for {', '.join(who[:8])}{' ...' if len(who) > 8 else ''}"
            for name, who in missing.items()
        ]
        raise InputError(
            f"{lab.id}: not graded, a variable its checks need is not given: "
            + "; ".join(lines)
            + f". Give it in {gradebook.course.path}'s [[labs]] entry (vars = {{ NAME = "
            '{ env = "ENVVAR" } }) or in the roster\'s column of that name; nothing was '
            "recorded"
        )
    signer = course_key(gradebook).prepared()  # before anything is graded
    on_students(students)
    folder = new_run_folder(gradebook, lab.id, kind)
    done = run_class(
        students,
        pack,
        given,
        setup.options,
        folder,
        roster_sha256=sha256_of(gradebook.course.roster),
        shard=shard,
        workers=setup.workers,
        plan=setup.plan,
        watch=watch,
        signer=signer,
    )

    found = ReportStore(folder).read_all().found
    run = None
    if found:
        run = gradebook.book.record(
            lab.id, folder, found, kind, rubric=pack.rubric, batch=batch, asked_at=asked_at,
            also=also,
        )  # fmt: skip
    return Recorded(lab.id, kind, run, folder, done)


@dataclass(frozen=True)
class Due:
    student: str
    why: str  # "due" or what is incomplete


def due_now(gradebook: Gradebook, lab_id: str, moment: datetime) -> list[Due]:
    """The students ``grade course due`` grades now for a lab."""
    lab = gradebook.course.lab(lab_id)
    last = gradebook.book.last_graded(lab.id)
    todo = []
    for student in gradebook.roster:
        due = gradebook.course.due_for(student, lab.id)
        if due > moment:
            continue
        seen = last.get(student)
        if seen is None or seen < due:
            todo.append(Due(student, "due"))
            continue
        explained = gradebook.explain(student, lab.id)
        incomplete = [
            o.id
            for o in explained.decided.outcomes
            if o.id in explained.row.incomplete and o.error_kind != OVERRIDDEN_DEPENDENCY
        ]
        after = [g for g in explained.gradings if g.at > due]
        if incomplete and len(after) < RETRIES:
            todo.append(Due(student, f"incomplete: {', '.join(incomplete)} not checked"))
    return todo


def regrade_lab(gradebook: Gradebook, lab_id: str) -> list[RegradedRun]:
    """Every recorded grading of the lab not yet on its current rubric, regraded from its
    evidence archives and recorded (a report signed with the course's key must verify: one
    that does not is refused, as a changed archive is)."""

    lab = gradebook.course.lab(lab_id)
    sha = gradebook.pack(lab.id).rubric.sha256
    done = []
    for run in gradebook.book.runs_of(lab.id):
        if gradebook.book.latest_version(run["id"])["rubric_sha256"] != sha:
            done.append(regrade_run(gradebook, lab.id, run["id"]))
    return done


def regrade_run(
    gradebook: Gradebook, lab_id: str, run: int, student: str | None = None
) -> RegradedRun:
    """One recorded grading (of every student in it, or ``student`` only) marked again from
    its evidence archives with the lab's current rubric, and recorded as its regrade."""
    lab = gradebook.course.lab(lab_id)
    pack = gradebook.pack(lab.id)
    given = lab_variables(gradebook, lab.id)
    students = load_roster(
        gradebook.course.roster,
        pack.rubric,
        Target(host=""),
        keys=False,
        ignore=gradebook.others_columns(lab.id),
    )
    # the course's variables for everyone, the roster's own for each student over them
    per_student = {s.student: ({**given, **s.vars}, s.target.password) for s in students}
    latest = gradebook.book.latest_version(run)
    source = gradebook.book.absolute(latest["folder"])
    if source is None or not source.is_dir():
        raise InputError(
            f"run {run}'s folder {source} is not there: restore it, or drop the run "
            "(grade book drop)"
        )
    found = [
        (path, report) for path, report in ReportStore(source, create=False).read_all().found
        if student is None or report.student == student
    ]  # fmt: skip
    if not found:
        raise InputError(f"run {run} has no grading of {student}")
    target = new_run_folder(gradebook, lab.id, "regrade")
    key = course_key(gradebook).prepared()
    result = regrade_folder(
        found, target, pack, {}, per_student=per_student, verify=key, signer=key
    )
    recorded = ReportStore(target).read_all().found
    new = gradebook.book.record(
        lab.id, target, recorded, "regrade", regrade_of=run, rubric=pack.rubric
    )
    refused = [r for r in result.reports if r.error_kind == ErrorKind.EVIDENCE_REFUSED]
    return RegradedRun(run, target, new, refused)


@dataclass(frozen=True)
class RegradedRun:
    run: int  # the run regraded
    folder: Path  # its regrade's folder
    new: int  # the regrade's run
    refused: list[Any]  # the reports not regraded (their evidence or signature refused)


def course_key(gradebook: Gradebook) -> Key:
    """The course's signing key: what a course grading writes is signed with it."""
    return Key(gradebook.course.folder / KEY_FILE)
