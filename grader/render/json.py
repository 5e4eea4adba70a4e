"""The JSON report: the contract other tools and later gradings rely on."""

from __future__ import annotations

from grader.render.safe import json_text
from grader.results import Report


def render(report: Report, **_: object) -> str:
    return json_text(report.to_dict()) + "\n"
