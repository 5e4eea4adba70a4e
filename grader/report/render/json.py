"""The JSON report: the contract other tools and later gradings rely on."""

from __future__ import annotations

from grader.base.results import Report
from grader.report.render.safe import json_text


def render(report: Report, **_: object) -> str:
    return json_text(report.to_dict()) + "\n"
