"""What a proof of a pack's checks found (``grade prove``), for people and for tools: the
scenarios' problems, and the kill matrix of a proof with mutants. Pure functions of the
records (grader.base.proving).

The text is drawn as a terminal of ``width`` columns draws it (``terminal``: with its styles
and colours, as rich finds the terminal can show them; else plain); what came from a VM (a
file's line, a command's error) is escaped and never read as markup.
"""

from __future__ import annotations

import io
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.base.proving import MutantsProved, ScenariosProved
from grader.report.render.safe import escaped


def _console(terminal: bool, width: int) -> tuple[Console, io.StringIO]:
    """A console drawing into a string, as rich's own draws on a terminal (markup read,
    numbers highlighted: what came from a VM is printed with neither)."""
    drawn = io.StringIO()
    return Console(file=drawn, force_terminal=terminal, width=width), drawn


def _said(console: Console, text: str) -> None:
    """A line that may hold what a VM wrote: control characters escaped, no markup read."""
    console.print(escaped(text), markup=False, highlight=False)


def scenarios(proved: ScenariosProved, terminal: bool = False, width: int = 80, **_: object) -> str:
    """Each problem of the pack's checks, and the verdict."""
    console, drawn = _console(terminal, width)
    for line in proved.problems:
        console.print(f"  {line}", markup=False, highlight=False)
    found = proved.problems
    verdict = "the checks prove the lab" if not found else f"{len(found)} problem(s)"
    console.print(f"{proved.rubric}: {verdict} on {len(proved.graded)} scenarios", markup=False)
    return drawn.getvalue()


def scenarios_json(proved: ScenariosProved, **_: object) -> str:
    shown = {"rubric": str(proved.rubric), "problems": proved.problems, "graded": proved.graded}
    return json.dumps(shown, indent=2) + "\n"


def kill_matrix(proved: MutantsProved, terminal: bool = False, width: int = 80, **_: object) -> str:
    """Each check and the mutants that made it fail; the gaps, the mutants not applied, the
    problems, the checks no mutant killed; and the verdict."""
    console, drawn = _console(terminal, width)
    tried = {m.id: m for m in proved.mutants}
    applied = [m for m in proved.mutants if m.applied]
    title = f"the VM at {proved.reference}" if proved.live else proved.reference
    table = Table(title=f"Mutants of {title}: which made each check fail", header_style="bold")
    for column in ("Check", "Killed by", "For example"):
        table.add_column(column, overflow="fold")
    for check, killers in proved.killed.items():
        table.add_row(
            check,
            str(len(killers)) if killers else "[red]none[/red]",
            Text(escaped(tried[killers[0]].description)) if killers else "",
        )
    console.print(table)
    gaps = proved.gaps
    if gaps:
        console.print(
            f"{len(gaps)} mutant(s) changed no verdict (a gap in the rubric, or "
            "harmless: the lab's author judges), e.g.:",
            markup=False,
        )
        for gap in gaps[:8]:
            _said(console, f"  {tried[gap].description}")
    same = [tried[m] for m in proved.equivalent]
    if same:
        console.print(
            f"{len(same)} mutant(s) equivalent: no command the checks ran answered otherwise "
            "with them (not graded), e.g.:",
            markup=False,
        )
        for mutant in same[:8]:
            _said(console, f"  {mutant.description}")
    kept_back = [m for m in proved.mutants if not m.applied]
    if kept_back:
        console.print(f"{len(kept_back)} mutant(s) not applied:", markup=False)
        for mutant in kept_back[:8]:
            _said(console, f"  {mutant.description}: {mutant.not_applied}")
    if proved.allowed:
        _said(console, "allowed by its owner (--allow): " + ", ".join(proved.allowed))
    for line in proved.problems:
        _said(console, f"  {line}")
    for check in proved.survivors:
        read = [m.description for m in applied if check in m.read_by][:2]
        if check in proved.not_proved:
            why = proved.not_proved[check]
            _said(
                console,
                f"not proved: {check}: "
                + (
                    f"no mutant applied made it fail, and {len(why)} of what it reads could "
                    "not be applied"
                    if read
                    else "every mutant of what it reads was not applied"
                )
                + f" ({why[0]})",
            )
            continue
        _said(
            console,
            f"survives: {check} passes with every mutant"
            + (
                f" (e.g. {'; '.join(read)})"
                if read
                else " (it reads nothing of the VM a mutant can change)"
            ),
        )
    survivors, problems, unproved = proved.survivors, proved.problems, proved.not_proved
    verdict = (
        "every check fails when it should"
        if not survivors and not problems
        else f"{len(survivors)} check(s) no mutant made fail"
        + (f" ({len(unproved)} of them not proved here)" if unproved else "")
        + (f"; {len(problems)} problem(s)" if problems else "")
    )
    _said(
        console,
        f"{proved.rubric}: {verdict} ({len(applied)} mutants in {proved.seconds:.0f} s)",
    )
    return drawn.getvalue()


def kill_matrix_json(proved: MutantsProved, **_: object) -> str:
    shown = {
        "rubric": str(proved.rubric),
        "reference": f"live:{proved.reference}" if proved.live else proved.reference,
        "mutants": [
            {
                "id": m.id,
                "description": m.description,
                "read_by": list(m.read_by),
                "changed": m.changed,
                "error": m.error,
                "not_applied": m.not_applied,
                "equivalent": m.equivalent,
            }
            for m in proved.mutants
        ],
        "killed": proved.killed,
        "survivors": proved.survivors,
        "not_proved": {c: why[0] for c, why in proved.not_proved.items()},
        "gaps": proved.gaps,
        "equivalent": proved.equivalent,  # applied, and no command answered otherwise
        "problems": proved.problems,
        "allowed": list(proved.allowed),  # what --allow let mutants change
        # on the live VM: file -> where its original is (kept when it did not come back)
        "originals_kept": proved.originals_kept,
    }
    return json.dumps(shown, indent=2) + "\n"
