"""A roster run's folder: one JSON report per student and the class summary.

Every file is written atomically (write, then rename): an interrupted run leaves whole files
only, and ``--resume`` can trust every report it finds.
"""

from __future__ import annotations

import json
from pathlib import Path

from grader.files import safe_name, write_atomic
from grader.render import render
from grader.results import Report
from grader.rubric import Rubric


class ReportStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, student: str) -> Path:
        return self.directory / f"{safe_name(student)}.json"

    def save(self, report: Report) -> None:
        assert report.student is not None
        write_atomic(self.path(report.student), render("json", report))

    def reusable(self, student: str, rubric: Rubric) -> Report | None:
        """The student's report, if it is complete, graded, and made with this same rubric."""
        try:
            report = Report.from_dict(json.loads(self.path(student).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        same = report.student == student and report.rubric.sha256 == rubric.sha256
        return report if same and report.status == "graded" else None

    def save_summary(self, reports: list[Report], rubric: Rubric) -> Path:
        path = self.directory / "summary.csv"
        write_atomic(path, render("summary_csv", reports, rubric=rubric))
        return path
