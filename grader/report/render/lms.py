"""Gradebook import files (CSV) for Moodle and Canvas, from a class's reports.

* Moodle ("Import grades: CSV file"): an identifier column (its header is yours to map to
  ID number, username or email in the import form), the grade, and optionally a feedback column
  with the lost marks (visible checks only).
* Canvas ("Import" in the Gradebook): the columns Student, ID, SIS User ID, SIS Login ID and
  Section, of which Canvas needs one identifier filled (the roster's id goes to SIS User ID by
  default), then one column for the assignment.

A student who could not be graded has an empty grade, never 0. Cells are neutralised against
spreadsheet formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from grader.base.errors import InputError
from grader.base.results import Report
from grader.report.render.summary_csv import cell
from grader.report.render.text import points

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
DEFAULT_ID = {"moodle": "ID number", "canvas": "SIS User ID"}
FEEDBACK_CHARS = 2000


def lost_marks(report: Report) -> str:
    """The student's lost marks in one line, each with its points, so that they add up to the
    grade: the visible checks by name, the hidden ones as one sum."""
    if report.status != "graded":
        return ""
    lost = [c for c in report.checks if c.lost and c.visibility != "hidden"]
    hidden = sum(c.max_points for c in report.checks if c.lost and c.visibility == "hidden")
    unchecked = [c for c in report.checks if c.status != "pass" and not c.lost]
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
            f"not checked, to be looked at again: {', '.join(c.id for c in unchecked)} (-{worth})"
        )
    return "; ".join(parts)


def _clip(text: str, room: int) -> str:
    return text if len(text) <= room else text[: room - 3] + "..."


def render(
    reports: Sequence[Report],
    lms: str,
    id_column: str | None = None,
    grade_column: str | None = None,
    feedback: bool = True,
) -> str:
    id_column = id_column or DEFAULT_ID[lms]
    grade_column = grade_column or reports[0].rubric.title
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if lms == "moodle":
        writer.writerow([id_column, grade_column] + (["Feedback"] if feedback else []))
    else:
        if id_column not in CANVAS_COLUMNS[:4]:
            raise InputError(
                f"--id-column {id_column!r}: Canvas matches students by one of "
                f"{', '.join(CANVAS_COLUMNS[:4])}"
            )
        writer.writerow([*CANVAS_COLUMNS, grade_column])
    for report in sorted(reports, key=lambda r: r.student or ""):
        grade = (
            points(report.score) if report.status == "graded" and report.score is not None else ""
        )
        if lms == "moodle":
            row = [report.student, grade] + ([lost_marks(report)] if feedback else [])
        else:
            ids = dict.fromkeys(CANVAS_COLUMNS, "")
            about = report.person  # a Canvas export's own columns, when the roster kept them
            names = (about.get("first name", ""), about.get("last name", ""))
            ids["Student"] = about.get("name") or " ".join(n for n in names if n)
            ids["ID"] = about.get("id", "")
            ids["SIS Login ID"] = about.get("sis login id", "")
            ids["Section"] = about.get("section", "")
            ids[id_column] = report.student or ""
            row = [*ids.values(), grade]
        writer.writerow(cell(v) for v in row)
    return buffer.getvalue()
