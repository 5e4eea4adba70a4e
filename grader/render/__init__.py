"""Output formats: each is a pure function from a Report (or a Rubric) to text, imported on
first use; only the CLI writes what they return."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from grader.results import Report
from grader.rubric import Rubric

FORMATS = {
    "text": "grader.render.text:render",
    "json": "grader.render.json:render",
    "rubric": "grader.render.rubric:render",
    "summary_csv": "grader.render.summary_csv:render",
    "class": "grader.render.class_text:render",
    "html": "grader.render.html:render",
    "md": "grader.render.markdown:render",
    "junit": "grader.render.junit:render",
    "gradescope": "grader.render.gradescope:render",
    "index": "grader.render.index:render",
}


def renderer(name: str) -> Callable[..., str]:
    module, function = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), function)


def render(name: str, subject: Report | Rubric | Sequence[Report], **options: object) -> str:
    return renderer(name)(subject, **options)
