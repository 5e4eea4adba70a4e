"""A readable table for the terminal: grouped by section, score at the bottom, then the hint
of every lost mark. Colour only when writing to a terminal."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.base.results import CheckResult, Report
from grader.base.words import AGAIN, STATUS_WORDS, ErrorKind, Status
from grader.report.feedback import fix_first, numbered

#: Each status's label and colour (the one table: grader.base.words)
_STATUS = {str(status): (words.label, words.style) for status, words in STATUS_WORDS.items()}


def points(value: float) -> str:
    return f"{value:g}"


def not_checked(report: Report) -> str:
    """What the score leaves out, when a check could not be checked: "15.5 of 15.5 checked;
    4.5 points not checked" (a score is over what was checked, never a 0 for the rest)."""
    if report.status != "graded" or not report.unchecked:
        return ""
    return (
        f"{points(report.score or 0)} of {points(report.checked_max)} checked; "
        f"{points(report.unchecked_points)} point{'s' * (report.unchecked_points != 1)} "
        "not checked"
    )


def text_console(color: bool, width: int) -> Console:
    """A rich console that renders into a string (``console.file.getvalue()``): colour only
    when asked, no guessing from the environment."""
    return Console(
        file=io.StringIO(),
        force_terminal=color,
        no_color=not color,
        width=width,
        markup=False,  # nothing in a report is markup: it may quote what a VM sent
        highlight=False,
        emoji=False,
    )


def render(
    report: Report,
    color: bool = False,
    width: int = 100,
    brief: bool = False,
    since: Sequence[str] = (),
    only: bool = False,
    evidence: bool | None = None,
    **_: object,
) -> str:
    """The report for a terminal; ``brief``: only the score and what lost marks (no table);
    ``since``: what changed since the student's last self-check; ``only``: --only was given;
    ``evidence``: under each lost mark, what it was looked at (default: not in a student's
    view, which ends with what to do next)."""
    console = text_console(color, width)
    who = report.student or report.host
    where = (
        f"{report.host} ({report.address})"
        if report.address not in (None, report.host)
        else report.host
    )
    console.print(Text(report.rubric.title, style="bold"))
    console.print(
        f"{'Student ' + who + ', host ' if report.student else 'Host '}{where}, "
        f"graded {report.graded_at} in {report.duration_s:g} s"
        + (f", regraded {report.regraded_at} from its evidence" if report.regraded_at else "")
    )
    if report.system:
        console.print(Text(f"System: {report.system}"))
    if report.variant:
        mine = ", ".join(
            f"{name} = {value or '(not known)'}" for name, value in report.variant.items()
        )
        console.print(Text(f"Your variant: {mine}", style="bold"))
    if report.host_key:
        replaced = report.host_key_replaced
        console.print(
            Text(
                f"Host key {report.host_key}"
                + (f" (accepted as changed: it was {replaced})" if replaced else "")
            )
        )
    if report.status != "graded":
        console.print(Text(f"NOT GRADED ({report.error_kind}): {report.error}", style="bold red"))
        return console.file.getvalue()  # type: ignore[attr-defined]

    if not brief:
        console.print(_table(report))
    _feedback(console, report, report.view != "student" if evidence is None else evidence)
    if only:
        console.print(f"Only {', '.join(c.id for c in report.checks)} checked (--only).")
    if since:
        console.print()
        for line in since:
            console.print(Text(line))
    if report.view == "student":  # the line a student ends on: what to do next
        console.print()
        console.print(_next_step(report))
    return console.file.getvalue()  # type: ignore[attr-defined]


def _table(report: Report) -> Table:
    table = Table(show_header=True, header_style="bold", expand=True, pad_edge=False)
    table.add_column("", width=5, no_wrap=True)
    table.add_column("Check", ratio=2, overflow="fold")  # an id is never cut: --only needs it
    table.add_column("Points", justify="right", no_wrap=True, width=7)
    table.add_column("Details", ratio=3)
    for section in dict.fromkeys(c.section for c in report.checks):
        table.add_row("", Text(section, style="bold underline"), "", "")
        for check in (c for c in report.checks if c.section == section):
            label, style = _STATUS[check.status]
            table.add_row(
                Text(label, style=style),
                Text.assemble(check.title, "\n", (check.id, "dim")),
                f"{points(check.points)}/{points(check.max_points)}",
                Text("\n".join([check.message, *(f"Note: {n}" for n in check.notes)]).strip()),
            )
        table.add_section()
    return table


def _feedback(console: Console, report: Report, evidence: bool) -> None:
    lost = [c for c in report.checks if c.lost]
    unchecked = [c for c in report.checks if c.status != Status.PASS and not c.lost]
    counts = {
        "passed": sum(c.status == Status.PASS for c in report.checks),
        "lost": len(lost),
        "not checked": len(unchecked),
    }
    summary = ", ".join(f"{n} {word}" for word, n in counts.items() if n)
    lost_points = sum(c.max_points for c in lost)
    unchecked_note = not_checked(report)
    console.print(
        Text(
            f"Score {points(report.score or 0)} / {points(report.max_score)}  ({summary}"
            + (f"; {points(lost_points)} point(s) lost" if lost else "")
            + (f"; {unchecked_note}" if unchecked_note else "")
            + ")",
            style="bold",
        )
    )
    if report.hidden_checks:
        more = report.hidden_checks
        console.print(
            f"{more} more check{'s are' if more > 1 else ' is'} marked by your "
            "instructor (not shown here, and not in this score)."
        )
    need_root = [c.id for c in report.checks if c.error_kind == ErrorKind.NEEDS_ROOT]
    if need_root:
        console.print(
            Text(
                f"Not run as root: {len(need_root)} check{'s' if len(need_root) > 1 else ''} "
                f"could not look where only root may: {', '.join(need_root)}. Run the grader "
                "again as root to grade them (with sudo, or after su - where there is no sudo).",
                style="yellow",
            )
        )
    causes = fix_first(report)
    if causes:
        console.print()
        console.print(Text("Fix this first", style="bold"))
        for n, cause in enumerate(causes, 1):
            line = Text(cause.title, style="bold")
            line.append(
                f": {points(cause.points)} point(s) lost in "
                + ", ".join(c.id for c in cause.checks)
            )
            if cause.hint:
                line.append(f"\nHint: {cause.hint}", style="cyan")
            console.print(_hanging(f"  {n}. ", line))
    grouped = numbered(causes)
    if lost:
        console.print()
        console.print(Text("Where the marks were lost", style="bold"))
        for check in lost:
            console.print(_hanging("  - ", _lost_line(check, grouped.get(check.id), evidence)))
    if unchecked:
        console.print()
        console.print(Text("Not checked (not counted against you)", style="bold"))
        for check in unchecked:
            console.print(_hanging("  - ", _lost_line(check, None, evidence)))


def _next_step(report: Report) -> Text:
    """What a student does next, said last: the first fix, what would make the rest
    checkable, or that nothing is left."""
    lost = [c for c in report.checks if c.lost]
    unchecked = [c for c in report.checks if c.status != Status.PASS and not c.lost]
    if lost:
        first = "item 1 under 'Fix this first'" if fix_first(report) else lost[0].id
        return Text(f"Next: fix {first}, then run the self-check again.", style="bold")
    if unchecked:
        said = [
            f"{c.id} {c.message}, or your instructor will check it"
            if c.error_kind == ErrorKind.NEEDS_VARIABLE
            else f"{c.id}: {AGAIN.get(c.error_kind or '', c.message)}"
            for c in unchecked
        ]
        return Text("Nothing lost, not all checked yet: " + "; ".join(said), style="bold")
    shown = len(report.checks)
    return Text(f"Full marks: all {shown} checks shown here passed.", style="bold green")


#: testinfra's plumbing (file tests, sizes, finding a command): not what a mark was decided on
_PLUMBING = re.compile(
    r"^(test -\w |stat -c|command -v|uname |lsb_release|cat /etc/os-release|"
    r"readlink )"
)
_READ = re.compile(r"^p=('[^']*'|\S+); if \[ -L ")  # checks/support's safe file read


def looked_at(check: CheckResult) -> list[str]:
    """What a check looked at, in a few words: files by name, commands and probes as run."""
    seen: dict[str, None] = {}
    for piece in check.evidence:
        if not _PLUMBING.match(piece.source):
            read = _READ.match(piece.source)
            seen[read.group(1).strip("'") if read else piece.source] = None
    return list(seen)


def _hanging(marker: str, body: Text) -> Table:
    """``marker`` then ``body``, whose wrapped lines keep to the body's own column."""
    grid = Table.grid()
    grid.add_column(width=len(marker), no_wrap=True)
    grid.add_column()
    grid.add_row(marker, body)
    return grid


def _lost_line(check: CheckResult, fix_first: int | None = None, evidence: bool = True) -> Text:
    line = Text(check.id, style="bold")
    worth = f"{points(check.max_points)} point{'s' * (check.max_points != 1)}"
    line.append(f" ({worth} {'lost' if check.lost else 'not checked'}): {check.message}")
    if fix_first is not None:  # its hint is the cause's, said once above
        line.append(f"\nSee 'Fix this first' {fix_first} above.", style="cyan")
    elif check.hint and check.lost:
        line.append(f"\nHint: {check.hint}", style="cyan")
    if check.error_kind == ErrorKind.NEEDS_ROOT:
        line.append("\nThe grader needs root to check this (sudo).", style="yellow")
    elif check.status == Status.ERROR:
        line.append("\nThis is a problem of the grading, not of your VM.", style="yellow")
    sources = looked_at(check) if evidence else []
    if check.status == Status.FAIL and sources:
        line.append(f"\nLooked at: {'; '.join(sources)}", style="dim")
    return line
