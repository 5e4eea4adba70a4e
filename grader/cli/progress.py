"""Progress of a roster run: a live bar on a terminal, a line per student otherwise.

What a VM sent (an SSH error, a greeting) can end up in a line here: it is never read as markup
and reaches the terminal with its control characters escaped.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from grader.base.results import Report
from grader.report.render.safe import escaped
from grader.report.render.text import points

if TYPE_CHECKING:  # the self-check has no roster (nor paramiko, which it imports)
    from grader.classrun.roster import Student


def describe(report: Report) -> str:
    """One line about a finished grading, escaped for a terminal."""
    if report.status == "graded":
        return (
            f"graded {points(report.score or 0)}/{points(report.max_score)} "
            f"in {report.duration_s:.1f} s"
        )
    return escaped(f"NOT GRADED ({report.error_kind}): {report.error}")


def who_is(report: Report) -> str:
    """ "s2400137 (vm3)", or the host alone for a grading of one host with no student named."""
    return f"{report.student} ({report.host})" if report.student else report.host


class PlainProgress:
    """One line per finished student on stderr, for logs and pipes."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def started(self, student: Student) -> None:
        return None

    def finished(self, report: Report, reused: bool) -> None:
        with self._lock:
            self.count += 1
            what = "kept from the earlier run" if reused else describe(report)
            who = escaped(who_is(report))
            sys.stderr.write(f"[{self.count}/{self.total}] {who}: {what}\n")
            sys.stderr.flush()


class LiveProgress:
    """A live bar: done / total, graded and not graded so far, the hosts being graded now."""

    def __init__(self, total: int, verb: str = "Grading", color: bool = True) -> None:
        self.total = total
        self.graded = self.failed = 0
        self.current: dict[str, str] = {}
        self._lock = threading.Lock()
        # what a column or a line shows is text, never markup
        console = Console(stderr=True, no_color=not color, markup=False, highlight=False)
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn(verb, style="bold", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[graded]} graded", style="green", markup=False),
            TextColumn("{task.fields[failed]} not graded", style="red", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[now]}", style="dim", markup=False),
            console=console,
        )
        self._task = self._bar.add_task("grading", total=total, graded=0, failed=0, now="")

    def __enter__(self) -> LiveProgress:
        self._bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def _update(self, advance: int = 0) -> None:
        names = sorted(self.current.values())
        now = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        self._bar.update(
            self._task,
            advance=advance,
            graded=self.graded,
            failed=self.failed,
            now=escaped(f"now: {now}") if names else "",
        )

    def started(self, student: Student) -> None:
        with self._lock:
            self.current[student.student] = student.target.host
            self._update()

    def finished(self, report: Report, reused: bool) -> None:
        with self._lock:
            self.current.pop(report.student or "", None)
            if report.status == "graded":
                self.graded += 1
            else:
                self.failed += 1
                who = escaped(who_is(report))
                self._bar.console.print(Text(f"{who}: {describe(report)}"))
            self._update(advance=1)


def progress_for(
    total: int, verb: str = "Grading", color: bool = True
) -> PlainProgress | LiveProgress:
    return LiveProgress(total, verb, color) if sys.stderr.isatty() else PlainProgress(total)
