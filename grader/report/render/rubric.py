"""A rubric as a table: what is marked, for how many points, and the total."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from grader.engine.rubric import Rubric
from grader.report.render.text import points, text_console


def render(rubric: Rubric, color: bool = False, width: int = 100, **_: object) -> str:
    console = text_console(color, width)
    console.print(Text(rubric.title, style="bold"))
    console.print(f"{rubric.path} (sha256 {rubric.sha256[:12]}...), checks in {rubric.checks_dir}")
    table = Table(header_style="bold", expand=True, pad_edge=False)
    table.add_column("Item", no_wrap=True)
    table.add_column("Title", ratio=2)
    table.add_column("Points", justify="right", no_wrap=True)
    table.add_column("Depends on")
    table.add_column("Visibility", no_wrap=True)
    for section in rubric.sections:
        table.add_row("", Text(section, style="bold underline"), "", "", "")
        for item in (i for i in rubric.items if i.section == section):
            table.add_row(
                item.id, item.title, points(item.points), ", ".join(item.depends), item.visibility
            )
        table.add_section()
    console.print(table)
    hidden = [i for i in rubric.items if i.visibility == "hidden"]
    console.print(
        Text(
            f"Total {points(rubric.max_score)} points in {len(rubric.items)} items"
            f" ({len(hidden)} hidden from students)",
            style="bold",
        )
    )
    if rubric.vars:
        console.print(
            "Variables: "
            + ", ".join(
                f"{name} (secret)"
                if spec.secret
                else f"{name} (per student: {spec.derive})"
                if spec.derive is not None
                else f"{name} = {spec.default!r}"
                for name, spec in rubric.vars.items()
            )
        )
    if rubric.unique:
        console.print(
            "No two students' VMs may share: "
            + ", ".join(f"{u.what} ({u.command})" for u in rubric.unique)
        )
    for cause in rubric.causes.values():
        console.print(f"Cause {cause.id}: {cause.title}")
    for note in rubric.notes:
        console.print(Text(f"Note: {note}", style="yellow"))
    for warning in rubric.warnings:
        console.print(Text(f"Warning: {warning}", style="yellow"))
    return console.file.getvalue()  # type: ignore[attr-defined]
