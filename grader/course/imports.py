"""What ``grade book import`` believes of a folder graded outside the course: only what its
evidence shows.

A report is a file anyone can edit. Before a folder's reports enter the book, each is checked,
and the whole import is refused (nothing recorded) when one fails:

* its student is on the course's roster (an id with a control character never is);
* it was graded with the lab's rubric (its sha256, or one the book already knows for this lab);
* its numbers are finite and add up: each check's points are 0 or its item's, by its status,
  the score is their sum, within 0..the rubric's maximum, and its checks are the rubric's;
* a graded report has its evidence archive, unchanged since grading (the checksum the report
  records), made for this student and host;
* graded with the lab's current rubric, its verdicts follow from that archive: the checks run
  again on what the VM answered (as ``grade regrade`` does) give the statuses the report says,
  but where the replay needs a secret the course does not give.

An archive is evidence, not a signature: someone who knows its format can make one up. Import
folders that you (or a grader you trust) graded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.base.errors import InputError
from grader.base.results import Report
from grader.classrun.regrade import archive_of
from grader.classrun.roster import id_problem, load_roster
from grader.engine.runner import regrade
from grader.evidence.archive import ArchiveError
from grader.machine.execution import Target

STATUSES = ("pass", "fail", "error", "skipped")
#: A replayed check that could not decide for want of a secret not given to the import: it
#: neither confirms nor contradicts the report. (An archive of a grading with this rubric holds
#: every answer its checks asked: a check that needs the live VM on replay was never graded.)
UNDECIDED = ("needs_secret",)


def check_import(gradebook: Any, lab_id: str, found: Sequence[tuple[Path, Report]]) -> None:
    """Refuse (InputError naming each file and what is wrong) unless every report holds."""
    problems: list[str] = []
    for path, report in found:
        problems += [f"{path}: {p}" for p in report_problems(gradebook, lab_id, path, report)]
    if problems:
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        shown = problems[:20] + more
        raise InputError("nothing was recorded; the import is refused:\n  " + "\n  ".join(shown))


def report_problems(gradebook: Any, lab_id: str, path: Path, report: Report) -> list[str]:
    student = report.student
    if not student:
        return ["names no student (a roster run's report does)"]
    problem = id_problem(student)
    if problem:
        return [problem]
    if student not in gradebook.roster:
        return [f"{student!r} is not a student of the roster {gradebook.course.roster}"]
    rubric = gradebook.rubric(lab_id)
    known = gradebook.book.rubric_items(lab_id)
    sha = report.rubric.sha256
    if sha != rubric.sha256 and sha not in known:
        return [
            f"graded with another rubric (sha256 {sha[:12]}) than {lab_id}'s "
            f"({rubric.sha256[:12]}, {rubric.path}), and not one the book knows for {lab_id}"
        ]
    items = (
        {i.id: i.points for i in rubric.items}
        if sha == rubric.sha256
        else {i.id: i.points for i in known[sha]}
    )
    if report.status not in ("graded", "unreachable", "error"):
        return [f"status {report.status!r} is not a report's"]
    if report.view != "instructor":
        return ["a student's view (the hidden checks left out): import an instructor's grading"]
    numbers = _numbers(report, items)
    if numbers or report.status != "graded":
        return numbers
    archived = _archive(path, report)
    if isinstance(archived, str):
        return [archived]
    if sha != rubric.sha256:
        return []  # an older rubric's checks are not here to replay
    return _replayed(gradebook, lab_id, report, archived)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(report: Report, items: dict[str, float]) -> list[str]:
    total = sum(items.values())
    if not _finite(report.max_score) or abs(report.max_score - total) > 1e-9:
        return [f"max_score {report.max_score!r} is not the rubric's {total:g}"]
    if report.status != "graded":
        if report.score is not None or report.checks:
            return ["a report that was not graded has no score and no checks"]
        return []
    score = report.score
    if score is None or not _finite(score) or not 0 <= score <= report.max_score:
        return [f"score {score!r} is not a number from 0 to {report.max_score:g}"]
    problems = []
    ids = [c.id for c in report.checks]
    if sorted(ids) != sorted(items):
        missing = sorted(set(items) - set(ids))
        extra = sorted(set(ids) - set(items))
        problems.append(
            "its checks are not the rubric's"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + (f" (not in the rubric: {', '.join(extra)})" if extra else "")
        )
    for c in report.checks:
        worth = items.get(c.id)
        if c.status not in STATUSES:
            problems.append(f"{c.id}: status {c.status!r} is not a check's")
        elif worth is None:
            continue
        elif not _finite(c.points) or not _finite(c.max_points) or c.max_points != worth:
            problems.append(f"{c.id}: out of {c.max_points!r}, but the rubric gives {worth:g}")
        elif c.points != (worth if c.status == "pass" else 0):
            problems.append(f"{c.id}: {c.points!r} point(s) for a check that ended {c.status}")
    if not problems and abs(sum(c.points for c in report.checks) - score) > 1e-6:
        problems.append(f"score {score:g} is not the sum of its checks' points")
    return problems


def _archive(path: Path, report: Report) -> Any:
    """The report's evidence archive, checked against it; a str says what is wrong."""

    try:
        return archive_of(path, report)
    except ArchiveError as e:
        return f"its evidence does not hold: {e}"


def _replayed(gradebook: Any, lab_id: str, report: Report, kept: Any) -> list[str]:
    lab = gradebook.course.lab(lab_id)
    try:
        given = lab.given()
    except InputError:
        given = {}  # a secret not given: the checks that need it cannot confirm anything
    students = load_roster(
        gradebook.course.roster,
        gradebook.rubric(lab_id),
        Target(host=""),
        keys=False,
        ignore=gradebook.others_columns(lab_id),
    )
    own = next((dict(s.vars) for s in students if s.student == report.student), {})
    again = regrade(report, kept, gradebook.pack(lab_id), {**given, **own})
    said = {c.id: c.status for c in report.checks}
    differ = [
        f"{c.id} is {said.get(c.id)} in the report but {c.status} from its evidence"
        for c in again.checks
        if c.error_kind not in UNDECIDED and c.id in said and said[c.id] != c.status
    ]
    if not differ:
        return []
    return [f"its verdicts do not follow from its evidence archive: {'; '.join(differ)}"]
