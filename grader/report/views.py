"""Who a report is for. The instructor sees everything; a student sees the visible checks,
and only a count of the hidden ones: no status, message or evidence, and the score is over the
visible checks. Integrity flags are for the instructor only."""

from __future__ import annotations

import dataclasses

from grader.base.results import Report
from grader.engine.rubric import Rubric


def student_view(report: Report, rubric: Rubric) -> Report:
    visible = tuple(c for c in report.checks if c.visibility != "hidden")
    hidden_items = sum(1 for i in rubric.items if i.visibility == "hidden")
    return dataclasses.replace(
        report,
        checks=visible,
        score=None if report.score is None else sum(c.points for c in visible),
        max_score=sum(i.points for i in rubric.items if i.visibility != "hidden"),
        flags=(),
        view="student",
        hidden_checks=hidden_items + rubric.hidden_items,
    )
