"""The self-check bundle's program: ``grade --local`` with the lab the bundle was made with.

Runs on the lab VM's own Python (3.9 or newer), from the folder the bundle unpacked itself to
(see grader.selfcheck.bundle): the rubric comes compiled (no TOML or pydantic needed), the checks as
files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grader.cli import grading
from grader.cli.core import main as grade
from grader.engine.pack import embedded_pack
from grader.engine.rubric import Rubric
from grader.selfcheck.bundle import COMPILED_RUBRIC


def main(argv: Sequence[str], here: str) -> int:
    lab = Path(here) / "_lab"
    rubric = Rubric.from_dict(json.loads((lab / COMPILED_RUBRIC).read_text()), lab)
    grading.EMBEDDED = embedded_pack(rubric)
    program = Path(sys.argv[0]).name or "selfcheck"
    student = lab / "student"  # a bundle made for one student: their report names them
    mine = ["--student", student.read_text()] if student.exists() else []
    return grade(argv, prog=f"python3 {program}", self_check=["--local", *mine])
