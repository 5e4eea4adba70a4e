"""Gradebook import files (CSV) for Moodle and Canvas: one writer, for a class run's folder
(``grade export``, one grade column) and for a course's book (``grade book export``, a column
per lab).

* Moodle ("Import grades: CSV file"): an identifier column (its header is yours to map to
  ID number, username or email in the import form), the student's name and email when the
  roster has them, and for each grade column its grade (the header says what it is out of) and
  a feedback column with the lost marks (visible checks only).
* Canvas ("Import" in the Gradebook): the columns Student, ID, SIS User ID, SIS Login ID and
  Section, of which Canvas needs one identifier filled (the roster's id goes to SIS User ID by
  default), then one column per assignment, with a "Points Possible" row under the header.

A student with no grade has an empty cell, never 0. Cells are neutralised against spreadsheet
formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from grader.base.errors import InputError
from grader.base.results import Report
from grader.base.words import Status
from grader.report.render.summary_csv import cell
from grader.report.render.text import points

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
DEFAULT_ID = {"moodle": "ID number", "canvas": "SIS User ID"}
FEEDBACK_CHARS = 2000


@dataclass(frozen=True)
class Column:
    """A grade column: an assignment (a lab), and what it is out of."""

    title: str
    out_of: float | None = None


@dataclass(frozen=True)
class Entry:
    """One student's row: who they are (the roster's name, email ...), and per column a grade
    (None: no grade) and its feedback."""

    student: str
    person: Mapping[str, str] = field(default_factory=dict)
    grades: Mapping[str, float | None] = field(default_factory=dict)
    feedback: Mapping[str, str] = field(default_factory=dict)


def lost_marks(report: Report) -> str:
    """The student's lost marks in one line, each with its points, so that they add up to the
    grade: the visible checks by name, the hidden ones as one sum."""
    if report.status != "graded":
        return ""
    lost = [c for c in report.checks if c.lost and c.visibility != "hidden"]
    hidden = sum(c.max_points for c in report.checks if c.lost and c.visibility == "hidden")
    unchecked = [c for c in report.checks if c.status != Status.PASS and not c.lost]
    # messages shortened, then left out, before a lost mark's points would be cut off
    for room in (FEEDBACK_CHARS, 160, 0):
        parts = [
            f"{c.title} (-{points(c.max_points)})" + (f": {_clip(c.message, room)}" if room else "")
            for c in lost
        ]
        if sum(len(p) + 2 for p in parts) < FEEDBACK_CHARS - 200:
            break
    if hidden:
        parts.append(f"checks marked by your instructor only (-{points(hidden)})")
    if unchecked:
        worth = points(sum(c.max_points for c in unchecked))
        parts.append(
            f"not checked, to be graded again: {', '.join(c.id for c in unchecked)} ({worth} "
            "point(s), not lost)"
        )
    return "; ".join(parts)


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 3] + "..."


def _name(person: Mapping[str, str]) -> str:
    names = (person.get("first name", ""), person.get("last name", ""))
    return person.get("name") or person.get("full name") or " ".join(n for n in names if n)


def _email(person: Mapping[str, str]) -> str:
    return person.get("email") or person.get("email address") or ""


def write(
    lms: str,
    entries: Sequence[Entry],
    columns: Sequence[Column],
    id_column: str | None = None,
    feedback: bool = True,
) -> str:
    """The import file: a row per entry, a grade column per ``columns``."""
    id_column = id_column or DEFAULT_ID[lms]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if lms == "canvas" and id_column not in CANVAS_COLUMNS[:4]:
        raise InputError(
            f"--id-column {id_column!r}: Canvas matches students by one of "
            f"{', '.join(CANVAS_COLUMNS[:4])}"
        )

    def heading(column: Column) -> str:
        if lms == "moodle" and column.out_of is not None:
            return f"{column.title} (out of {points(column.out_of)})"
        return column.title

    def grade(entry: Entry, column: Column) -> str:
        value = entry.grades.get(column.title)
        return "" if value is None else points(value)

    if lms == "moodle":
        names = any(_name(e.person) for e in entries)
        emails = any(_email(e.person) for e in entries)
        header = [id_column] + ["Full name"] * names + ["Email address"] * emails
        for column in columns:
            header.append(heading(column))
            if feedback:
                header.append("Feedback" if len(columns) == 1 else f"{column.title} feedback")
        writer.writerow(header)
        for entry in entries:
            row = [entry.student]
            row += [_name(entry.person)] * names + [_email(entry.person)] * emails
            for column in columns:
                row.append(grade(entry, column))
                if feedback:
                    row.append(entry.feedback.get(column.title, ""))
            writer.writerow(cell(v) for v in row)
        return buffer.getvalue()
    writer.writerow([*CANVAS_COLUMNS, *(heading(c) for c in columns)])
    if any(c.out_of is not None for c in columns):
        writer.writerow(
            ["    Points Possible", "", "", "", ""]
            + ["" if c.out_of is None else points(c.out_of) for c in columns]
        )
    for entry in entries:
        ids = dict.fromkeys(CANVAS_COLUMNS, "")
        about = entry.person  # a Canvas export's own columns, when the roster kept them
        ids["Student"] = _name(about)
        ids["ID"] = about.get("id", "")
        ids["SIS Login ID"] = about.get("sis login id", "")
        ids["Section"] = about.get("section", "")
        ids[id_column] = entry.student
        writer.writerow(cell(v) for v in [*ids.values(), *(grade(entry, c) for c in columns)])
    return buffer.getvalue()


def render(
    reports: Sequence[Report],
    lms: str,
    id_column: str | None = None,
    grade_column: str | None = None,
    feedback: bool = True,
) -> str:
    """A class run's import file: one grade column, the reports' scores."""
    column = Column(grade_column or reports[0].rubric.title, reports[0].max_score)
    entries = [
        Entry(
            report.student or "",
            report.person,
            {column.title: report.score if report.status == "graded" else None},
            {column.title: lost_marks(report)},
        )
        for report in sorted(reports, key=lambda r: r.student or "")
    ]
    return write(lms, entries, [column], id_column, feedback)
