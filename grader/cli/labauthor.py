"""``grade new-lab DIR`` and ``grade prove --expect [FILE]``: a lab's author makes a pack that
runs as made, and grades the VMs its expected verdicts name (grader.actions.labauthor)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from grader.actions import labauthor as act
from grader.base.errors import ExitStatus
from grader.cli.definition import Given
from grader.cli.grading import connection_of, given_variables
from grader.report.render.safe import escaped


def new_lab(args: Given) -> int:
    made = act.new_lab(act.NewLabRequest(Path(args.directory), args.title))
    folder = made.rubric.parent
    listed = "\n".join(f"  {path.relative_to(folder)}" for path in made.files)
    rubric = made.rubric
    steps = [
        (f"grade rubric {rubric}", "its items and points"),
        (f"sudo grade prove --rubric {rubric}", "its scenarios give the verdicts they state"),
        (f"sudo grade prove --mutants --rubric {rubric}", "every check fails when it should"),
        (f"sudo grade prove --expect --rubric {rubric}", "each VM of expected.toml as expected"),
    ]
    wide = max(len(command) for command, _ in steps)
    sys.stdout.write(
        f"Made the lab pack {made.title!r} in {folder}:\n{listed}\n\n"
        "It grades, proves and checks its expected verdicts as it is. Next:\n"
        + "".join(f"  {command:<{wide}}  {what}\n" for command, what in steps)
        + "The lab author's guide (docs/guide in the grader's source) takes it from there.\n"
    )
    return ExitStatus.OK


def prove_expected(
    args: Given, pack: act.PackScenarios, ready: Callable[[], bool], watch: act.SimWatch
) -> int:
    """``grade prove --expect``: each VM graded, the verdicts that differ shown. ``ready``
    says whether the simulator can boot the scenarios' VMs here (and why not, when not)."""
    expected = act.expected_of(pack, args.expect if args.expect != Path() else None)
    if expected.scenarios and not ready():
        return ExitStatus.BAD_INPUT
    hosts = any(vm.host is not None for vm in expected.vms)
    request = act.ExpectRequest(
        pack, expected, connection_of(args) if hosts else None,
        given_variables(args) if hosts else {}, args.student,
    )  # fmt: skip
    done = act.check_expected(request, watch)
    if args.fmt == "json":
        found = {
            "expected": str(done.path),
            "as_expected": done.as_expected,
            "vms": [{"name": v.name, "where": v.where, "checks": dict(v.statuses)}
                    for v in done.vms],
            "differences": act.shown(done.differences),
        }  # fmt: skip
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
    else:
        _differences(Console(), done)
    return ExitStatus.OK if done.as_expected else ExitStatus.NOT_ALL_PASSED


def _differences(console: Console, done: act.ExpectedChecked) -> None:
    count = len(done.vms)
    if done.as_expected:
        console.print(
            f"{done.path}: every verdict as expected on the {count} VM(s) "
            f"({', '.join(v.name for v in done.vms)}), in {done.seconds:.1f} s.",
            markup=False, highlight=False,
        )  # fmt: skip
        return
    table = Table(title=f"Verdicts not as {done.path} expects them", header_style="bold")
    for column in ("VM", "check", "expected", "got", "the check's reason"):
        table.add_column(column, overflow="fold")
    for d in done.differences:
        table.add_row(*(escaped(x) for x in (d.vm, d.check, d.expected, d.got, d.reason)))
    console.print(table)
    console.print(
        f"{len(done.differences)} verdict(s) differ on "
        f"{len({d.vm for d in done.differences})} of {count} VM(s).",
        markup=False, highlight=False,
    )  # fmt: skip
