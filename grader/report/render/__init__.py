"""Output formats: each is a pure function from a Report (or a Rubric) to text, imported on
first use; only the CLI writes what they return."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from grader.base.results import Report
from grader.engine.rubric import Rubric

FORMATS = {
    "text": "grader.report.render.text:render",
    "json": "grader.report.render.json:render",
    "rubric": "grader.report.render.rubric:render",
    "summary_csv": "grader.report.render.summary_csv:render",
    "class": "grader.report.render.class_text:render",
    "html": "grader.report.render.html:render",
    "md": "grader.report.render.markdown:render",
    "junit": "grader.report.render.junit:render",
    "gradescope": "grader.report.render.gradescope:render",
    "index": "grader.report.render.index:render",
}


def renderer(name: str) -> Callable[..., str]:
    module, function = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), function)


def render(name: str, subject: Report | Rubric | Sequence[Report], **options: object) -> str:
    return renderer(name)(subject, **options)
