"""The self-check bundle: one file a student copies onto the lab's own VM and runs with its own
python3 (3.9 or newer), offline, with nothing to install (``grade bundle``).

It is a zip application (the standard library's zipapp): the grader's code, the pure-Python
libraries the self-check uses (testinfra, rich, Jinja2, python-nmap), the student copy of the
lab's rubric (hidden items left out) compiled for it, and the lab's checks. Run, it unpacks
itself into a private temporary folder (removed when it ends) and behaves as ``grade --local``
with that lab: the same options, the same output. What only the instructor's side needs
(pydantic for reading rubrics and archives back, paramiko for SSH, matplotlib for the class
page, click, pytest) is left out, and nothing in the self-check's path imports it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import json
import shutil
import tempfile
import zipapp
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grader
from grader.base.errors import InputError
from grader.engine.rubric import Rubric

#: The distributions a self-check imports, besides the grader: pure Python, Python 3.9+.
LIBRARIES = ("pytest-testinfra", "rich", "pygments", "markdown-it-py", "mdurl", "jinja2",
             "markupsafe", "python-nmap")  # fmt: skip
#: Files of theirs left out: compiled extensions (each has a pure-Python fallback), caches.
SKIPPED = (".so", ".pyd", ".pyc", ".dist-info")
COMPILED_RUBRIC = "rubric.json"

MAIN = '''\
"""The lab's self-check: python3 THIS_FILE --help"""
import os, shutil, sys, tempfile, zipfile

if sys.version_info < (3, 9):
    sys.exit("this self-check needs Python 3.9 or newer (python3 --version)")
here = tempfile.mkdtemp(prefix="lab-selfcheck-")
try:
    with zipfile.ZipFile(os.path.dirname(os.path.abspath(__file__))) as bundle:
        bundle.extractall(here)
    sys.path.insert(0, here)
    from grader.cli.selfcheck import main
    code = main(sys.argv[1:], here)
finally:
    shutil.rmtree(here, ignore_errors=True)
sys.exit(code)
'''


def compiled(rubric: Rubric, student: str | None, values: dict[str, str]) -> dict[str, Any]:
    """The rubric as JSON values: the self-check rebuilds it without reading TOML or
    validating it again (it was validated when the bundle was made). For one ``student``, their
    variant is written in as their variables' values; no secret is ever written in."""
    variables = {}
    for name, var in rubric.vars.items():
        if var.secret:
            var = dataclasses.replace(var, default="", derive=None, key=None, range=None)
        elif var.derive is not None and student is not None:
            var = dataclasses.replace(var, default=values.get(name, ""), derive=None, key=None)
        variables[name] = var
    # the hidden items' checks are left out of the bundle: only how many there are is kept
    data = dataclasses.asdict(dataclasses.replace(rubric, vars=variables, hidden_ids=()))
    data["path"] = "rubric.toml"
    data["checks_dir"] = "checks"
    return json.loads(json.dumps(data))


def _leave_out_unmarked(checks: Path, marked: set[str]) -> None:
    """Take out of the checks' files every check that no item of the student's rubric marks
    (the hidden ones): nothing of them (id, title, code) goes into a student's file."""
    for path in sorted(checks.rglob("test_*.py")):
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        spans = [
            (min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno)
            for node in ast.parse(text).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name.startswith("test_")
            and node.name.removeprefix("test_") not in marked
        ]
        for first, last in reversed(spans):
            del lines[first - 1 : last]
        if spans:
            path.write_text("".join(lines))


def _library_files(name: str) -> Iterable[tuple[Path, str]]:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise InputError(f"the self-check needs {name}, which is not installed here") from None
    for file in dist.files or ():
        text = str(file)
        if text.startswith("..") or any(part.endswith(SKIPPED) for part in file.parts):
            continue
        if text.endswith(SKIPPED) or "__pycache__" in file.parts:
            continue
        yield Path(str(dist.locate_file(file))), text


def build(
    rubric: Rubric,
    student_copy_text: str,
    output: Path,
    student: str | None = None,
    values: dict[str, str] | None = None,
) -> int:
    """Write the bundle of ``rubric`` (the student copy's) to ``output``, for one ``student``
    when given (their variant's ``values`` written in); returns its size in bytes."""

    with tempfile.TemporaryDirectory(prefix="lab-bundle-") as staging:
        root = Path(staging) / "app"
        shutil.copytree(
            Path(grader.__file__).parent,
            root / "grader",
            ignore=shutil.ignore_patterns("__pycache__", "_lab", "_labs", "*.pyc"),
        )
        for name in LIBRARIES:
            for source, relative in _library_files(name):
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        lab = root / "_lab"
        shutil.copytree(
            rubric.checks_dir, lab / "checks", ignore=shutil.ignore_patterns("__pycache__")
        )
        _leave_out_unmarked(lab / "checks", {item.id for item in rubric.items})
        (lab / "rubric.toml").write_text(student_copy_text)
        (lab / COMPILED_RUBRIC).write_text(
            json.dumps(compiled(rubric, student, values or {}), indent=1)
        )
        if student is not None:
            (lab / "student").write_text(student)
        (root / "__main__.py").write_text(MAIN)
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(root, output, interpreter="/usr/bin/env python3", compressed=True)
    return output.stat().st_size
