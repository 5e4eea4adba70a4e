"""The JSON report: the contract other tools and later gradings rely on."""

from __future__ import annotations

import json

from grader.results import Report


def render(report: Report, **_: object) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
