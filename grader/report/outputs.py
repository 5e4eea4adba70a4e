"""What a roster run leaves in its folder, as {relative path: text}: a pure function of the
reports. Pages meant to be sent to students (HTML, Markdown) show the student view; the class
overview, summary, JUnit and Gradescope files are the instructor's (Gradescope itself hides the
hidden items until grades are published)."""

from __future__ import annotations

from collections.abc import Sequence

from grader.base.files import safe_name
from grader.base.results import Report
from grader.engine.rubric import Rubric
from grader.report.render import render
from grader.report.views import student_view

#: The class's own files in a run's folder, and the suffixes of each student's files there
CLASS_FILES = ("index.html", "junit.xml", "summary.csv")
STUDENT_SUFFIXES = ("html", "md", "json")


def class_outputs(reports: Sequence[Report], rubric: Rubric) -> dict[str, str]:
    files: dict[str, str] = {}
    for report in reports:
        stem = safe_name(report.student or report.host)
        shown = student_view(report, rubric)
        files[f"{stem}.html"] = render("html", shown)
        files[f"{stem}.md"] = render("md", shown)
        files[f"gradescope/{stem}/results.json"] = render("gradescope", report)
    index, junit, summary = CLASS_FILES
    files[index] = render("index", reports, rubric=rubric)
    files[junit] = render("junit", reports)
    files[summary] = render("summary_csv", reports, rubric=rubric)
    return files
