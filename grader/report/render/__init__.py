"""Output formats: each is a pure function from a Report (or a Rubric, a class's reports, a
proof's findings) to text, imported on first use; only the CLI writes what they return."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Union

from grader.base.proving import MutantsProved, ScenariosProved
from grader.base.results import Report
from grader.engine.rubric import Rubric

#: What a renderer draws: a host's report, a rubric, a class's reports, a proof's findings
Subject = Union[Report, Rubric, Sequence[Report], ScenariosProved, MutantsProved]

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
    "proof": "grader.report.render.proof:scenarios",
    "proof_json": "grader.report.render.proof:scenarios_json",
    "kill_matrix": "grader.report.render.proof:kill_matrix",
    "kill_matrix_json": "grader.report.render.proof:kill_matrix_json",
}


def renderer(name: str) -> Callable[..., str]:
    module, function = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), function)


def render(name: str, subject: Subject, **options: object) -> str:
    return renderer(name)(subject, **options)
