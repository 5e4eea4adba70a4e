"""summary.csv: one row per student, for gradebooks and spreadsheets.

student, host, status, score, max_score, the points not checked, one column per check with the
points earned, then the checks not checked, why a student was not graded, the connection
attempts and any flags. A student who could not be graded has empty score and check cells,
never 0; so has a check that could not be checked (it is not a lost mark). Cells that a
spreadsheet would read as a formula (starting with = + - @) are neutralised with a leading
quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from grader.base.results import Report
from grader.engine.rubric import Rubric
from grader.report.render.text import points

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: The columns before and after the checks' (one per check id, in rubric order).
LEADING = ("student", "host", "status", "score", "max_score", "unchecked_points")
TRAILING = ("unchecked", "error_kind", "error", "attempts", "flags")


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def render(reports: Sequence[Report], rubric: Rubric, **_: object) -> str:
    ids = [item.id for item in rubric.items]
    person = list(dict.fromkeys(k for r in reports for k in r.person))  # the roster's name ...
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*LEADING, *ids, *TRAILING, *person])
    for report in reports:
        unchecked = report.unchecked if report.status == "graded" else ()
        earned = {c.id: points(c.points) for c in report.checks if c.id not in unchecked}
        writer.writerow(
            cell(v)
            for v in [
                report.student,
                report.host,
                report.status,
                "" if report.score is None else points(report.score),
                points(report.max_score),
                points(report.unchecked_points) if report.status == "graded" else "",
                *(earned.get(i, "") for i in ids),
                " ".join(unchecked),
                report.error_kind or "",
                report.error or "",
                report.attempts,
                "; ".join(f.message for f in report.flags),
                *(report.person.get(k, "") for k in person),
            ]
        )
    return buffer.getvalue()
