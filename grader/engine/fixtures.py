"""What a check may ask for by parameter name, built in one place for the grader's runner and
for plain pytest (grader.pytest_plugin): ``host`` (testinfra's), ``lab`` (the rubric's paths
and variables) and ``outside`` (probes from the grading machine)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.engine.lab import Lab, Paths

#: What a check may ask for by parameter name.
FIXTURES = ("host", "lab", "outside")


def check_fixtures(
    host: Any, rubric: Any, variables: Mapping[str, str], outside: Any
) -> dict[str, object]:
    return {"host": host, "lab": Lab(Paths(rubric.paths), variables), "outside": outside}
