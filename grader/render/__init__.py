"""Report formats: each is a pure function from a Report to text, imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from grader.results import Report

FORMATS = {
    "text": "grader.render.text:render",
    "json": "grader.render.json:render",
}


def renderer(name: str) -> Callable[..., str]:
    module, function = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), function)


def render(name: str, report: Report, **options: object) -> str:
    return renderer(name)(report, **options)
