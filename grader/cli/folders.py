"""The subcommands: a rubric (``rubric``), and graded folders (``export``, ``merge``,
``regrade``, ``show``)."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.base.errors import ExitStatus, InputError
from grader.base.files import safe_name, write_atomic
from grader.base.results import Report
from grader.cli.definition import Given, UsageError
from grader.cli.grading import given_variables, rubric_path, ssh_password, the_pack
from grader.cli.terminal import class_exit_status, to_terminal, use_color
from grader.engine.catalog import available, built_in_rubric
from grader.engine.pack import Pack, copy_pack, load_pack
from grader.engine.rubric import load_rubric
from grader.engine.runner import now
from grader.evidence import manifest
from grader.evidence.signing import key_for, signer_for
from grader.report.render.safe import escaped
from grader.report.store import Folder, ReportStore


def _folder(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such folder")
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    return path


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


def _recorded_pack(args: Given, directory: Path, reports: list[Report]) -> Pack:
    """The pack to mark a graded folder with: --rubric when given, else the rubric the folder
    says it was graded with (its manifest), else the built-in lab's; a folder graded with
    another rubric than the one found is refused rather than marked with the wrong one."""
    if rubric_path(args) is not None:
        return the_pack(args)
    recorded = manifest.read(directory)
    path = Path(recorded.rubric_path) if recorded else built_in_rubric()
    if recorded is not None and not path.is_file():
        raise InputError(
            f"{directory} was graded with the rubric {path}, which is not there any more; "
            "give the rubric to mark with (--rubric PATH)"
        )
    pack = the_pack(args, path)
    graded_with = {r.rubric.sha256 for r in reports} - {pack.rubric.sha256}
    if graded_with:
        raise InputError(
            f"{directory} was graded with another rubric (sha256 {sorted(graded_with)[0][:12]}) "
            f"than {path} (sha256 {pack.rubric.sha256[:12]}); give the rubric to mark with "
            "(--rubric PATH)"
        )
    return pack


def export(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.report.render.lms import render as render_lms

    directory = _folder(args.directory)
    folder = ReportStore(directory).read_all()
    reports = [r for r in folder.reports if r.student is not None]
    if not reports:
        _complain(folder)
        raise InputError(f"{directory}: no student reports (<student>.json) found")
    incomplete = [r for r in reports if r.status == "graded" and r.unchecked]
    if incomplete and not args.include_incomplete:
        named = "; ".join(
            f"{r.student} ({', '.join(r.unchecked)}: {r.unchecked_points:g} point(s))"
            for r in incomplete[:20]
        )
        raise InputError(
            f"not exported: {len(incomplete)} student(s) could not be checked in full, so their "
            f"score is short of what they may have earned: {named}"
            + ("; ..." if len(incomplete) > 20 else "")
            + ". Grade them again, or give --include-incomplete to export the scores over what "
            "was checked"
        )
    sys.stdout.write(
        render_lms(
            reports,
            args.lms,
            id_column=args.id_column,
            grade_column=args.grade_column,
            feedback=args.feedback,
        )
    )
    return _complain(folder)


def _shards(runs: list[tuple[Path, manifest.Manifest | None]]) -> None:
    """Refuse shards that do not make one whole roster: a folder that is not a run's, another
    roster's or another rubric's, a shard missing or given twice."""
    first_dir, first = runs[0]
    for directory, run in runs:
        if run is None or run.kind not in ("roster", "merge"):
            raise InputError(
                f"{directory}: not the folder of a roster run (no {manifest.NAME} of one); "
                "merge takes the folders of grade --roster --shard K/N"
            )
        assert first is not None
        if run.roster_sha256 != first.roster_sha256:
            raise InputError(f"{directory}: graded from another roster than {first_dir}")
        if run.rubric_sha256 != first.rubric_sha256:
            raise InputError(
                f"{directory}: graded with another rubric (sha256 {run.rubric_sha256[:12]}) "
                f"than {first_dir} (sha256 {first.rubric_sha256[:12]})"
            )
    slices: dict[int, Path] = {}
    sizes = set()
    for directory, run in runs:
        k, n = run.shard if run and run.shard else (1, 1)
        sizes.add(n)
        if k in slices:
            raise InputError(f"shard {k}/{n} is given twice: {slices[k]} and {directory}")
        slices[k] = directory
    if len(sizes) > 1:
        raise InputError(
            "the folders are slices of different shardings: "
            + ", ".join(f"{d} ({r.shard[0]}/{r.shard[1]})" for d, r in runs if r and r.shard)
        )
    (n,) = sizes
    missing = [f"{k}/{n}" for k in range(1, n + 1) if k not in slices]
    if missing:
        raise InputError(
            f"shard {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: merge "
            f"needs every slice of the roster ({n} in all), or students would be lost"
        )


def merge(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.batch import close_class
    from grader.evidence.archive import archive_path

    directories = [_folder(d) for d in args.directories]
    runs = [(d, manifest.read(d)) for d in directories]
    _shards(runs)
    folders = [ReportStore(d).read_all() for d in directories]
    reports_seen = [r for f in folders for r in f.reports]
    loaded = _recorded_pack(args, directories[0], reports_seen).rubric
    found: dict[str, tuple[Report, Path]] = {}
    for directory, folder in zip(directories, folders):
        for path, report in folder.found:
            if report.student is None:
                continue
            if report.rubric.sha256 != loaded.sha256:
                raise InputError(
                    f"{path}: {report.student}'s report was graded with another rubric "
                    f"(sha256 {report.rubric.sha256[:12]}, not {loaded.sha256[:12]} of "
                    f"{loaded.path}); give the rubric the shards used with --rubric"
                )
            if report.student in found:
                raise InputError(
                    f"{report.student} is in both {found[report.student][1].parent} and "
                    f"{directory}: shards must not overlap"
                )
            found[report.student] = (report, path)
    expected = {s for _, run in runs if run for s in run.students}
    absent = sorted(expected - set(found))
    if not found:
        raise InputError(
            "no student reports (<student>.json) in " + ", ".join(map(str, directories))
        )
    out = Path(args.out)
    store = ReportStore(out)
    merged = [found[s][0] for s in sorted(found)]
    for report, path in found.values():
        if archive_path(path).exists():  # the archive goes along, so the class can be regraded
            store.take_archive(report, path)
        store.save(report)
    reports = close_class(store, merged, loaded)
    first = runs[0][1]
    assert first is not None
    manifest.Manifest(
        loaded.title,
        loaded.sha256,
        str(loaded.path.resolve()),
        roster_sha256=first.roster_sha256,
        students=tuple(sorted(expected | set(found))),
        kind="merge",
        made_at=now(),
    ).write(out)
    color = use_color(args.color, sys.stdout)
    to_terminal("class", reports, color, rubric=loaded, directory=out, expected=len(expected))
    status = max(class_exit_status(reports), *(_complain(f) for f in folders))
    if absent:
        sys.stderr.write(
            f"grade: error: {len(absent)} student(s) of the roster have no report in any shard: "
            f"{escaped(', '.join(absent[:20]))}{' ...' if len(absent) > 20 else ''}\n"
        )
        status = ExitStatus.NOT_GRADED
    return status


def regrade(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.regrade import describe_changes, regrade_folder
    from grader.cli.progress import progress_for

    directory = _folder(args.directory)
    given = given_variables(args)
    pack = the_pack(args) if rubric_path(args) else None
    if pack is not None:
        pack.rubric.resolve_vars(given)  # unknown names are refused before anything is read
    folder = ReportStore(directory).read_all()
    if not folder.found:
        _complain(folder)
        raise InputError(f"{directory}: no reports (<student>.json) to regrade")
    pack = pack or _recorded_pack(args, directory, folder.reports)
    loaded = pack.rubric
    loaded.resolve_vars(given)  # unknown names are refused before anything is written
    password = ssh_password(args)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    target = Path(args.out or directory.with_name(f"{directory.name}-regraded-{stamp}"))
    if target.resolve() == directory.resolve():
        raise UsageError("--out must be another folder: the graded folder is kept as it is")
    per_student = None
    if args.roster is not None:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.classrun.roster import load_roster
        from grader.machine.execution import Target

        students = load_roster(
            Path(args.roster), loaded, Target(host=""), keys=False, ignore=args.ignore_columns
        )
        per_student = {s.student: (dict(s.vars), s.target.password) for s in students}
    color = use_color(args.color, sys.stdout)
    started = time.monotonic()
    source = manifest.read(directory)
    with progress_for(len(folder.found), verb="Regrading", color=color) as progress:
        result = regrade_folder(
            folder.found,
            target,
            pack,
            given,
            password,
            finished=lambda report: progress.finished(report, reused=False),
            per_student=per_student,
            verify=key_for(directory),  # a folder inside a course: signed reports must verify
            signer=signer_for(target),
        )
    manifest.Manifest(
        loaded.title,
        loaded.sha256,
        str(loaded.path.resolve()),
        roster_sha256=source.roster_sha256 if source else None,
        shard=source.shard if source else None,
        students=source.students if source else (),
        kind="regrade",
        made_at=now(),
        regraded_from=str(directory.resolve()),
    ).write(target)
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
        f"Regraded {result.replayed} of {len(result.reports) + len(folder.unreadable)} students "
        f"from their evidence archives, without the VMs; {result.needed_live} check(s) needed "
        "the live VM"
        + (
            f", {result.needed_secret} a secret given at grading (give the roster the class was "
            "graded with, --roster CSV, or --var-env / --password-env)"
            if result.needed_secret
            else ""
        )
        + ".\n"
    )
    _record_regrade(args, directory, target, loaded)
    return max(class_exit_status(result.reports), _complain(folder))


def _record_regrade(args: Given, directory: Path, target: Path, rubric: Any) -> None:
    """A regrade of a run a course's gradebook recorded is recorded as its regrade (the
    original is kept). The course: --course, or the one the graded folder lies in."""
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.config import FILE, find_course

    given = args.course
    if given is None and not any((d / FILE).is_file() for d in directory.resolve().parents):
        return  # a folder of no course
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.book import Book, book_url
    from grader.course.config import load_course

    course = load_course(find_course(given, start=directory.resolve()))
    url = book_url(course.folder, args.db, course.db)
    try:
        book = Book(url, root=course.folder, by=args.by, create=False)
    except InputError:
        return  # no book yet: nothing of this course was recorded
    try:
        recorded = book.run_of(directory)
        if recorded is None:
            return
        found = ReportStore(target).read_all().found
        run = book.record(
            recorded[1], target, found, "regrade", regrade_of=recorded[0], rubric=rubric
        )
        print(f"Recorded in the gradebook as run {run}, a regrade of run {recorded[0]}.")
    finally:
        book.close()


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
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.regrade import show as show_decision

    directory = _folder(args.directory)
    lines = None if args.show_all else args.lines
    sys.stdout.write(show_decision(directory, args.student, args.check, lines))
    return ExitStatus.OK
