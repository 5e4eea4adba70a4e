"""Gradescope's autograder results (results.json), so the grader can run inside a Gradescope
autograder: ``grade --host $VM --format gradescope > /autograder/results/results.json``.

One test per check: name, number, score, max_score, status, output, visibility. Hidden rubric
items get visibility "after_published". A host that could not be graded gets no score and no
tests, only the reason: Gradescope then shows the submission as not autograded instead of
recording a zero.
"""

from __future__ import annotations

from typing import Any

from grader.base.results import Report
from grader.base.words import Status
from grader.report.render.safe import json_text
from grader.report.render.text import looked_at

OUTPUT_CHARS = 4000  # of one test's output


def results(report: Report) -> dict[str, Any]:
    if report.status != "graded":
        return {
            "output": f"Your VM could not be graded ({report.error_kind}): {report.error}",
            "extra_data": {
                "status": report.status,
                "error_kind": report.error_kind,
                "host": report.host,
            },
        }
    sections = list(dict.fromkeys(c.section for c in report.checks))
    numbers: dict[str, int] = {}
    tests = []
    for check in report.checks:
        s = sections.index(check.section) + 1
        numbers[check.section] = numbers.get(check.section, 0) + 1
        lines = [check.message] if check.message else []
        lines += [f"Note: {n}" for n in check.notes]
        if check.hint and check.status in (Status.FAIL, Status.SKIPPED):
            lines.append(f"Hint: {check.hint}")
        if check.status == Status.FAIL and (sources := looked_at(check)):
            lines.append("Looked at: " + "; ".join(sources))
        tests.append(
            {
                "name": check.title,
                "number": f"{s}.{numbers[check.section]}",
                "score": check.points,
                "max_score": check.max_points,
                "status": "passed" if check.status == Status.PASS else "failed",
                "output": "\n".join(lines)[:OUTPUT_CHARS],
                "visibility": "after_published" if check.visibility == "hidden" else "visible",
                "tags": [check.id, check.status],
            }
        )
    return {
        "score": report.score,
        "execution_time": round(report.duration_s),
        "output": f"{report.rubric.title}: graded {report.graded_at}"
        + (f", regraded {report.regraded_at}" if report.regraded_at else ""),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def render(report: Report, **_: object) -> str:
    return json_text(results(report)) + "\n"
