"""The subcommands: a rubric (``rubric``), and graded folders (``export``, ``merge``,
``regrade``, ``show``)."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.cli.definition import UsageError
from grader.cli.grading import given_variables, ssh_password, the_pack, the_rubric
from grader.cli.terminal import class_exit_status, to_terminal, use_color
from grader.errors import ExitStatus, InputError
from grader.files import write_atomic
from grader.results import Report
from grader.store import ReportStore


def _folder(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such folder")
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    return path


def rubric(opts: dict[str, Any]) -> int:
    from grader.student_copy import student_copy

    loaded = the_pack({**opts, "rubric_path": opts.get("path") or opts["rubric_path"]}).rubric
    if opts["student_copy"]:
        text = student_copy(loaded)
        if opts["output"] is None:
            sys.stdout.write(text)
        else:
            write_atomic(opts["output"], text)
        return ExitStatus.OK
    if opts["output"] is not None:
        raise UsageError("--output is for --student-copy")
    to_terminal("rubric", loaded, use_color(opts["color"], sys.stdout))
    return ExitStatus.OK


def export(opts: dict[str, Any]) -> int:
    from grader.render.lms import render as render_lms

    directory = _folder(opts["directory"])
    reports = [r for r in ReportStore(directory).all_reports() if r.student is not None]
    if not reports:
        raise InputError(f"{directory}: no student reports (<student>.json) found")
    sys.stdout.write(
        render_lms(
            reports,
            opts["lms"],
            id_column=opts["id_column"],
            grade_column=opts["grade_column"],
            feedback=opts["feedback"],
        )
    )
    return ExitStatus.OK


def merge(opts: dict[str, Any]) -> int:
    from grader.archive import archive_path
    from grader.batch import close_class

    loaded = the_rubric(opts)
    found: dict[str, tuple[Report, Path]] = {}
    for directory in map(_folder, opts["directories"]):
        for path, report in ReportStore(directory).report_files():
            if report.student is None:
                continue
            if report.rubric.sha256 != loaded.sha256:
                raise InputError(
                    f"{directory}: {report.student}'s report was graded with another rubric "
                    f"(sha256 {report.rubric.sha256[:12]}, not {loaded.sha256[:12]} of "
                    f"{loaded.path}); give the rubric the shards used with --rubric"
                )
            if report.student in found:
                raise InputError(
                    f"{report.student} is in both {found[report.student][1].parent} and "
                    f"{directory}: shards must not overlap"
                )
            found[report.student] = (report, path)
    if not found:
        raise InputError(
            "no student reports (<student>.json) in " + ", ".join(map(str, opts["directories"]))
        )
    out = Path(opts["out"])
    store = ReportStore(out)
    merged = [found[s][0] for s in sorted(found)]
    for report, path in found.values():
        if archive_path(path).exists():  # the archive goes along, so the class can be regraded
            store.take_archive(report, path)
        store.save(report)
    reports = close_class(store, merged, loaded)
    color = use_color(opts["color"], sys.stdout)
    to_terminal("class", reports, color, rubric=loaded, directory=out)
    return class_exit_status(reports)


def regrade(opts: dict[str, Any]) -> int:
    from grader.progress import progress_for
    from grader.regrade import describe_changes, regrade_folder

    directory = _folder(opts["directory"])
    pack = the_pack(opts)
    loaded = pack.rubric
    given = given_variables(opts)
    loaded.resolve_vars(given)  # unknown names are refused before anything is written
    password = ssh_password(opts)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    target = opts["out"] or directory.with_name(f"{directory.name}-regraded-{stamp}")
    if Path(target).resolve() == directory.resolve():
        raise UsageError("--out must be another folder: the graded folder is kept as it is")
    found = ReportStore(directory).report_files()
    if not found:
        raise InputError(f"{directory}: no reports (<student>.json) to regrade")
    per_student = None
    if opts["roster"] is not None:
        from grader.execution import Target
        from grader.roster import load_roster

        students = load_roster(Path(opts["roster"]), loaded, Target(host=""), keys=False)
        per_student = {s.student: (dict(s.vars), s.target.password) for s in students}
    color = use_color(opts["color"], sys.stdout)
    started = time.monotonic()
    with progress_for(len(found), verb="Regrading", color=color) as progress:
        result = regrade_folder(
            found,
            Path(target),
            pack,
            given,
            password,
            finished=lambda report: progress.finished(report, reused=False),
            per_student=per_student,
        )
    to_terminal(
        "class",
        result.reports,
        color,
        rubric=loaded,
        directory=target,
        elapsed=time.monotonic() - started,
    )
    sys.stdout.write(describe_changes(result.changes))
    sys.stdout.write(
        f"Regraded {result.replayed} of {len(result.reports)} students from their evidence "
        f"archives, without the VMs; {result.needed_live} check(s) needed the live VM"
        + (
            f", {result.needed_secret} a secret given at grading (see their messages)"
            if result.needed_secret
            else ""
        )
        + ".\n"
    )
    return class_exit_status(result.reports)


def show(opts: dict[str, Any]) -> int:
    from grader.regrade import show as show_decision

    directory = _folder(opts["directory"])
    lines = None if opts["show_all"] else opts["lines"]
    sys.stdout.write(show_decision(directory, opts["student"], opts["check"], lines))
    return ExitStatus.OK
