"""The closing table of a roster run: how the class did, who was not graded and why, and what
to look at (flags)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table
from rich.text import Text

from grader.base.results import Report
from grader.engine.rubric import Rubric
from grader.report.render.text import points, text_console

BANDS = 10


def render(
    reports: Sequence[Report],
    rubric: Rubric,
    directory: Path | None = None,
    elapsed: float | None = None,
    interrupted: bool = False,
    expected: int | None = None,
    color: bool = False,
    width: int = 100,
    **_: object,
) -> str:
    console = text_console(color, width)
    graded = [r for r in reports if r.status == "graded"]
    missing = [r for r in reports if r.status != "graded"]
    total = expected if expected is not None else len(reports)
    took = f" in {elapsed:.1f} s" if elapsed is not None else ""
    summary = f"{rubric.title}: {len(graded)} of {total} students graded{took}"
    console.print(Text(summary, style="bold"))
    if interrupted:
        left = total - len(reports)
        console.print(
            Text(
                f"Interrupted: {left} students were not reached; run again with --resume.",
                style="yellow",
            )
        )

    scores = [r.score or 0.0 for r in graded]
    # out of what the reports were marked on: a student view's is over the visible items
    most = {r.max_score for r in graded}
    max_score = most.pop() if len(most) == 1 else rubric.max_score
    if scores:
        mean, median = statistics.mean(scores), statistics.median(scores)
        console.print(
            f"Scores out of {points(max_score)}: mean {mean:.2f}, median {points(median)}, "
            f"lowest {points(min(scores))}, highest {points(max(scores))}"
        )
        table = Table(title="Score distribution", show_header=True, header_style="bold")
        table.add_column("Score", justify="right", no_wrap=True)
        table.add_column("Students", justify="right")
        table.add_column("", ratio=1)
        step = max_score / BANDS if max_score else 1.0
        counts = [0] * BANDS
        for score in scores:
            counts[min(int(score / step), BANDS - 1)] += 1
        biggest = max(counts)
        for band in reversed(range(BANDS)):
            low, high = band * step, (band + 1) * step
            label = f"{points(low)}-{points(high)}" + ("" if band == BANDS - 1 else " ")
            bar = "#" * round(30 * counts[band] / biggest) if counts[band] else ""
            table.add_row(label, str(counts[band]), bar)
        console.print(table)

    if missing:
        table = Table(title="Not graded", show_header=True, header_style="bold", expand=True)
        table.add_column("Student", no_wrap=True)
        table.add_column("Host", no_wrap=True)
        table.add_column("Why", no_wrap=True)
        table.add_column("Details", ratio=1)
        for r in missing:
            table.add_row(r.student or "", r.host, r.error_kind or r.status, Text(r.error or ""))
        console.print(table)

    incomplete = [r for r in graded if r.unchecked]
    if incomplete:
        console.print(
            Text(
                "Not checked in full (their score is over what could be checked; grade them "
                "again):",
                style="bold",
            )
        )
        for r in incomplete:
            console.print(
                Text(
                    f"  {r.student or r.host}: {points(r.unchecked_points)} point(s) not "
                    f"checked ({', '.join(r.unchecked)})"
                )
            )

    flagged = [r for r in reports if r.flags]
    if flagged:
        console.print(Text("To look at", style="bold"))
        for r in flagged:
            for flag in r.flags:
                console.print(Text(f"  {r.student or r.host}: {flag.message}"))
    if directory is not None:
        console.print(
            f"Reports: {directory}/  (index.html for the class; <student>.json, .html, .md; "
            "summary.csv, junit.xml, gradescope/)"
        )
    return console.file.getvalue()  # type: ignore[attr-defined]
