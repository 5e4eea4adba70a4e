"""What the CLI writes for people: renderings fitted to the terminal, coloured only where
colour is wanted, with everything in them that came from a VM escaped; and the exit statuses
that follow from reports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from grader.base.errors import ExitStatus
from grader.base.results import Report
from grader.report.render import render
from grader.report.render.safe import escaped_all


def use_color(choice: str, stream: TextIO) -> bool:
    """--color always/never, or auto: on a terminal, unless NO_COLOR is set (no-color.org)."""
    if choice in ("always", "never"):
        return choice == "always"
    return stream.isatty() and not os.environ.get("NO_COLOR")


def to_terminal(kind: str, subject: Any, color: bool, **fields: Any) -> None:
    """Write a rendering for people to stdout. Text from a VM reaches the terminal as escapes
    (``\\u001b``), never as control characters, and is never read as markup."""
    width = min(shutil.get_terminal_size((100, 24)).columns, 140)
    text = render(kind, escaped_all(subject), color=color, width=width, **escaped_all(fields))
    sys.stdout.write(text)
    sys.stdout.flush()


def class_exit_status(reports: Sequence[Report]) -> int:
    graded = all(r.status == "graded" for r in reports)
    return ExitStatus.OK if graded else ExitStatus.NOT_GRADED


def exit_status(report: Report) -> int:
    """0 every check (every one shown, in a student's view) was checked and passed, 1 some
    were not, 3 not graded. A check not checked is no lost mark, and no full marks either: a
    student who stops at 0 has nothing left to do (the report's last line says what is)."""
    if report.status != "graded":
        return ExitStatus.NOT_GRADED
    return ExitStatus.OK if report.all_passed else ExitStatus.NOT_ALL_PASSED


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a class run as Ctrl-C does: within seconds, keeping what finished."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
