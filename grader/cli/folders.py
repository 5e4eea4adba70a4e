"""The subcommands: a rubric (``rubric``), the labs there are (``labs``), a self-check
(``bundle``), and graded folders (``export``, ``merge``, ``regrade``, ``show``: each one request
of grader.actions.folders)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from grader.actions import folders as act
from grader.actions.common import Actor, CourseAt
from grader.base.errors import ExitStatus, InputError
from grader.base.files import safe_name, write_atomic
from grader.cli.definition import Given, UsageError
from grader.cli.grading import given_variables, rubric_path, ssh_password, the_pack
from grader.cli.terminal import class_exit_status, to_terminal, use_color
from grader.engine.catalog import available
from grader.engine.pack import copy_pack, load_pack
from grader.engine.rubric import load_rubric
from grader.report.render.safe import escaped
from grader.report.store import Folder

T = TypeVar("T")


def rubric(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.selfcheck.student_copy import student_copy

    loaded = the_pack(args, args.path or args.rubric_path).rubric
    if args.copy is not None:
        if args.student_copy or args.output is not None:
            raise UsageError(
                "--copy writes a whole lab; --student-copy and --output do not go with it"
            )

        where = copy_pack(loaded, args.copy)
        sys.stdout.write(
            f"Copied {loaded.title} to {args.copy}/ (rubric.toml and checks/); grade with it: "
            f"grade --rubric {where}\n"
        )
        return ExitStatus.OK
    if args.student_copy:
        output = args.output
        text = student_copy(loaded, output.parent if output is not None else None)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomic(output, text)
        return ExitStatus.OK
    if args.output is not None:
        raise UsageError("--output is for --student-copy")
    to_terminal("rubric", loaded, use_color(args.color, sys.stdout))
    return ExitStatus.OK


def _complain(folder: Folder) -> int:
    """Name every file of a folder that should be a report and could not be read; the exit
    status a command ends with when there was one (a student was left out)."""
    for line in folder.complaints():
        sys.stderr.write(f"grade: error: {escaped(line)}\n")
    return ExitStatus.NOT_GRADED if folder.unreadable else ExitStatus.OK


def export(args: Given) -> int:
    request = act.ExportRequest(
        args.directory, args.lms, args.id_column, args.grade_column, args.feedback,
        bool(args.include_incomplete),
    )  # fmt: skip
    done = _said(lambda: act.export(Actor.here(args.by), request))
    sys.stdout.write(done.text)
    return _complain(done.read)


def _said(action: Callable[[], T]) -> T:
    """``action()``; what could not be read of a folder that had nothing to act on is named
    before the error says so."""
    try:
        return action()
    except act.NoReports as e:
        _complain(e.read)
        raise


def merge(args: Given) -> int:
    pack = the_pack(args) if rubric_path(args) is not None else None
    request = act.MergeRequest(tuple(args.directories), Path(args.out), pack)
    done = act.merge(Actor.here(args.by), request)
    color = use_color(args.color, sys.stdout)
    to_terminal(
        "class", done.reports, color, rubric=done.rubric, directory=request.out,
        expected=len(done.expected),
    )  # fmt: skip
    status = max(class_exit_status(done.reports), *(_complain(f) for f in done.read))
    if done.absent:
        sys.stderr.write(
            f"grade: error: {len(done.absent)} student(s) of the roster have no report in any "
            f"shard: {escaped(', '.join(done.absent[:20]))}"
            f"{' ...' if len(done.absent) > 20 else ''}\n"
        )
        status = ExitStatus.NOT_GRADED
    return status


def regrade(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.regrade import describe_changes
    from grader.cli.progress import progress_for

    directory = args.directory
    pack = the_pack(args) if rubric_path(args) else None
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    target = Path(args.out or directory.with_name(f"{directory.name}-regraded-{stamp}"))
    request = act.RegradeRequest(
        directory, target, pack, given_variables(args), ssh_password(args),
        Path(args.roster) if args.roster is not None else None,
        tuple(args.ignore_columns or ()), CourseAt(args.course, args.db),
    )  # fmt: skip
    color = use_color(args.color, sys.stdout)
    watch = lambda count: progress_for(count, verb="Regrading", color=color)  # noqa: E731
    done = _said(lambda: act.regrade(Actor.here(args.by), request, watch))
    result = done.result
    to_terminal(
        "class", result.reports, color, rubric=done.rubric, directory=done.target,
        elapsed=done.elapsed,
    )  # fmt: skip
    sys.stdout.write(describe_changes(result.changes))
    sys.stdout.write(
        f"Regraded {result.replayed} of {len(result.reports) + len(done.read.unreadable)} "
        f"students from their evidence archives, without the VMs; {result.needed_live} check(s) "
        "needed the live VM"
        + (
            f", {result.needed_secret} a secret given at grading (give the roster the class was "
            "graded with, --roster CSV, or --var-env / --password-env)"
            if result.needed_secret
            else ""
        )
        + ".\n"
    )
    if done.recorded is not None:
        print(f"Recorded in the gradebook as run {done.recorded[0]}, a regrade of run "
              f"{done.recorded[1]}.")  # fmt: skip
    return max(class_exit_status(result.reports), _complain(done.read))


def bundle(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.selfcheck.bundle import build
    from grader.selfcheck.student_copy import student_copy

    full = the_pack(args).rubric
    text = student_copy(full, full.path.parent)  # hidden items out; checks = "checks"
    copy = load_pack(load_rubric(full.path, text)).rubric
    given = given_variables(args)
    copy.resolve_vars(given)  # unknown names refused
    if args.roster and args.student:
        raise UsageError("--student makes one file; --roster one for each student: give one")
    students: list[str | None] = [args.student]
    output = Path(args.output)
    if args.roster:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.classrun.roster import load_roster
        from grader.machine.execution import Target

        roster = load_roster(
            Path(args.roster), copy, Target(host=""), keys=False, ignore=args.ignore_columns
        )
        students = [s.student for s in roster]
    for student in students:
        values = copy.resolve_vars(given, student=student)
        if student is not None:
            missing = [n for n, v in copy.variant(values).items() if not v]
            if missing:
                raise InputError(
                    f"{', '.join(missing)} cannot be derived for {student}: give what it is "
                    "derived from (--var-env NAME=ENVVAR)"
                )
        target = output / f"{safe_name(student or 'selfcheck')}.pyz" if args.roster else output
        size = build(copy, text, target, student, values)
        sys.stdout.write(f"{escaped(str(target))}: {size / 1e6:.1f} MB\n")
    sys.stdout.write(
        f"Students run it on their VM: python3 {output.name if not args.roster else 'FILE'} "
        "(as root to check everything; --help says more)\n"
    )
    return ExitStatus.OK


def labs(args: Given) -> int:
    packs = available()
    width = max(len(p.name) for p in packs)
    lines = [f"{p.name:<{width}}  {p.title}\n{'':<{width}}  {p.rubric}" for p in packs]
    sys.stdout.write(escaped("\n".join(lines)) + "\n")
    return ExitStatus.OK


def show(args: Given) -> int:
    lines = None if args.show_all else args.lines
    request = act.ShowRequest(args.directory, args.student, args.check, lines)
    sys.stdout.write(act.show(Actor.here(args.by), request))
    return ExitStatus.OK
