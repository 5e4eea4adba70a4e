"""``grade book``: the course's gradebook (marks, history, explain, overrides, imports,
exports, the course page, backups). Each command turns its options into one request of
grader.actions.book, calls that action and prints what it returns."""

from __future__ import annotations

import csv
import io
import sys
from argparse import Namespace
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from grader.actions import book as act
from grader.actions.common import Actor, CourseAt
from grader.base.clock import utc_text
from grader.base.errors import ExitStatus
from grader.base.files import write_atomic
from grader.cli.definition import UsageError
from grader.report.render.safe import escaped, json_text
from grader.report.render.summary_csv import cell


def book(args: Namespace) -> int:
    if args.book_command == "sync":
        # lazy: optional (the LMS needs the web's libraries: PyJWT)
        from grader.actions.lms import SyncRequest
        from grader.cli.lti import sync

        COMMANDS["sync"] = (sync, lambda a: SyncRequest(bool(a.resend), bool(a.read_back)))
    command, make = COMMANDS[args.book_command]
    request = make(args)  # the command line's own checks, before the course is opened
    actor = Actor.here(args.by)
    with act.open_course(
        CourseAt(args.course, args.db), actor, create=command is _import
    ) as course:
        return command(course, actor, request, args)


def say(text: str) -> None:
    """A line for people: anything from a VM or a file in it reaches the terminal escaped."""
    sys.stdout.write(escaped(text) + "\n")


def by_student(rows: list[Any]) -> dict[str, dict[str, Any]]:
    """student -> lab -> their row, in the rows' order."""
    table: dict[str, dict[str, Any]] = {}
    for r in rows:
        table.setdefault(r.student, {})[r.lab] = r
    return table


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _show(course: Any, actor: Actor, request: act.MarksRequest, args: Namespace) -> int:
    found = act.marks(course, actor, request)
    rows = found.rows
    form = args.book_format or "text"
    if form == "json":
        sys.stdout.write(json_text([asdict(r) for r in rows], indent=1) + "\n")
        return ExitStatus.OK
    labs = list(dict.fromkeys(r.lab for r in rows))
    table = by_student(rows)
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["student", *labs])
        for student, by_lab in table.items():
            writer.writerow([cell(student), *(_number(by_lab[lab].mark) for lab in labs)])
        sys.stdout.write(escaped(buffer.getvalue()))
        return ExitStatus.OK

    say(f"{found.title}: marks as of {utc_text(found.at)}")
    shown = Table(header_style="bold")
    shown.add_column("Student")
    for lab in labs:
        shown.add_column(lab, justify="right")
    for student, by_lab in table.items():
        cells = []
        for lab in labs:
            r = by_lab[lab]
            text = "-" if r.mark is None else _number(r.mark)
            if r.days_late:
                text += f" ({r.days_late}d late)"
            late_work = any(f["days_late"] and not f["accepted_by"] for f in r.filled)
            text += " *" * r.overridden + " ?" * bool(r.incomplete) + " L" * late_work
            text += " †" * (not r.rubric_current) + " !" * bool(r.flags) + " ~" * bool(r.trusted)
            cells.append(text)
        shown.add_row(escaped(student), *cells)
    Console(markup=False, highlight=False).print(shown)
    print(
        "- no mark; * an override is in force; ? incomplete (a check could not be checked, "
        "not a lost mark); L late work: a check decided only by a grading after the due time "
        "(with its penalty, or lost where the lab takes none); † an older rubric than the lab's "
        "(grade course regrade); ! a question for staff; ~ imported on trust, not replayed "
        "(--trust-unreplayed). `grade book explain STUDENT LAB` says why."
    )
    return ExitStatus.OK


def _history(course: Any, actor: Actor, request: act.HistoryRequest, args: Namespace) -> int:
    events = act.history(course, actor, request).events
    if (args.book_format or "text") == "json":
        sys.stdout.write(json_text(events, indent=1) + "\n")
        return ExitStatus.OK
    if not events:
        say(f"Nothing recorded for {request.student}.")
    firsts: dict[tuple[str, str], list[str]] = {}
    for e in events:
        if e["kind"] == "first_passed":
            firsts.setdefault((e["lab"], e["at"]), []).append(e["check"])
            continue
        if e["kind"] in ("override", "withdraw"):
            what = f"check {e['check']}" if e["check"] else "the mark"
            line = (f"{e['at']}  {e['lab']}: {e['kind']} of {what} ({e['value']:g}) by "
                    f"{e['by']}: {e['reason']}")  # fmt: skip
        elif e["kind"] in ("accept", "unaccept"):
            what = "accepted as on time" if e["kind"] == "accept" else "late work again"
            line = f"{e['at']}  {e['lab']}: check {e['check']} {what} by {e['by']}: {e['reason']}"
        elif e["kind"] in ("drop", "undrop"):
            verb = "dropped" if e["kind"] == "drop" else "put back"
            line = f"{e['at']}  {e['lab']}: run {e['run']} {verb} by {e['by']}: {e['reason']}"
        else:
            score = "not graded" if e["score"] is None else f"{e['score']:g}/{e['max']:g}"
            counts = "  <- counts" if e.get("counts") else ""
            batch = f" (a shard of class grading {e['batch']})" if e.get("batch") else ""
            line = (f"{e['at']}  {e['lab']}: run {e['run']}, {e['kind']} by {e['by']}{batch}, "
                    f"VM seen {e['graded_at']}: {score}{counts}")  # fmt: skip
        say(line)
    for (lab, at), names in firsts.items():
        say(f"{at}  {lab}: passed for the first time: {', '.join(names)}")
    return ExitStatus.OK


def _explain(course: Any, actor: Actor, request: act.ExplainRequest, args: Namespace) -> int:
    explained = act.explain(course, actor, request)
    if (args.book_format or "text") == "json":
        sys.stdout.write(json_text(asdict(explained.row), indent=1) + "\n")
        return ExitStatus.OK
    sys.stdout.write(escaped(explained.text))
    return ExitStatus.OK


def _override_request(args: Namespace) -> act.OverrideRequest:
    check, points, mark = args.check, args.points, args.mark
    if points is not None and check is None:
        raise UsageError("--points sets a check's points: give the check (--check ID)")
    if mark is not None and check is not None:
        raise UsageError("--mark sets the lab's final mark: leave out --check")
    value = points if check is not None else mark
    return act.OverrideRequest(args.student, args.book_lab, check, value, args.reason)


def _override(course: Any, actor: Actor, request: act.OverrideRequest, args: Namespace) -> int:
    made = act.override(course, actor, request).id
    say(f"Override {made} recorded; `grade book explain {request.student} {request.lab}` "
        "shows the mark with it.")  # fmt: skip
    return ExitStatus.OK


def _withdraw(course: Any, actor: Actor, request: act.WithdrawRequest, args: Namespace) -> int:
    made = act.withdraw(course, actor, request).id
    say(f"Override {made} withdrawn (kept in the history).")
    return ExitStatus.OK


def _accept(course: Any, actor: Actor, request: act.AcceptRequest, args: Namespace) -> int:
    act.accept(course, actor, request)
    student, lab, check = request.student, request.lab, request.check
    if request.undo:
        say(f"{check} of {student}, {lab} is late work again (the acceptance stays in the "
            "history).")  # fmt: skip
    else:
        say(f"{check} of {student}, {lab} counts on time; `grade book explain {student} {lab}` "
            "shows the mark with it.")  # fmt: skip
    return ExitStatus.OK


def _drop(course: Any, actor: Actor, request: act.DropRequest, args: Namespace) -> int:
    act.drop(course, actor, request)
    run = request.run
    if request.undo:
        say(f"Run {run} is back in the marks (the drop stays in the history).")
    else:
        say(f"Run {run} is out of the marks, kept in the book; `grade book drop {run} --undo` "
            "puts it back.")  # fmt: skip
    return ExitStatus.OK


def _import_request(args: Namespace) -> act.ImportRequest:
    if args.reason is not None and not args.trust_unreplayed:
        raise UsageError("--reason goes with --trust-unreplayed")
    if args.trust_unreplayed and args.reason is None:
        raise UsageError("--trust-unreplayed needs --reason: why these reports can be trusted")
    trust = args.reason if args.trust_unreplayed else None
    return act.ImportRequest(args.book_lab, Path(args.directory), trust)


def _import(course: Any, actor: Actor, request: act.ImportRequest, args: Namespace) -> int:
    done = act.import_folder(course, actor, request)
    checked = done.checked
    say(f"Recorded {done.count} report(s) of {request.lab} as run {done.run} "
        f"({checked.replayed} replayed from its evidence, {checked.signed} signed by this "
        "course's grader).")  # fmt: skip
    for student, why in checked.trusted.items():
        say(f"  {student}: taken on trust, not replayed ({why})")
    if request.trust is not None and not checked.trusted:
        say("  Every report was replayed or signed: nothing was taken on trust.")
    return ExitStatus.OK


def _export(course: Any, actor: Actor, request: act.ExportRequest, args: Namespace) -> int:
    text = act.export(course, actor, request).text
    if args.output:
        write_atomic(Path(args.output), text)
    else:
        sys.stdout.write(escaped(text))
    return ExitStatus.OK


def _page(course: Any, actor: Actor, request: act.PageRequest, args: Namespace) -> int:
    made = act.page(course, actor, request)
    for where, html in made.files.items():
        write_atomic(where, html)
    say(f"The course page: {made.target}; each student's: {made.target.parent / 'students'}/")
    return ExitStatus.OK


def _release(course: Any, actor: Actor, request: act.ReleaseRequest, args: Namespace) -> int:
    act.release(course, actor, request)
    say(f"{request.lab}'s feedback is released: its students see everything of their gradings "
        "on the web.")  # fmt: skip
    return ExitStatus.OK


def _backup(course: Any, actor: Actor, request: act.BackupRequest, args: Namespace) -> int:
    done = act.backup(course, actor, request)
    say(f"The gradebook is copied to {done.target} (restore: copy it back over {done.source} "
        "while no grading runs).")  # fmt: skip
    return ExitStatus.OK


#: Each book command: what prints its result, and what makes its request of the options.
COMMANDS: dict[str, tuple[Callable[..., int], Callable[[Namespace], Any]]] = {
    "show": (_show, lambda a: act.MarksRequest(a.book_lab)),
    "history": (_history, lambda a: act.HistoryRequest(a.student, a.book_lab)),
    "explain": (_explain, lambda a: act.ExplainRequest(a.student, a.book_lab)),
    "override": (_override, _override_request),
    "withdraw": (
        _withdraw,
        lambda a: act.WithdrawRequest(a.student, a.book_lab, a.check, a.reason),
    ),
    "accept": (
        _accept,
        lambda a: act.AcceptRequest(a.student, a.book_lab, a.check, a.reason, bool(a.undo)),
    ),
    "drop": (_drop, lambda a: act.DropRequest(a.run, a.reason, bool(a.undo))),
    "import": (_import, _import_request),
    "export": (
        _export,
        lambda a: act.ExportRequest(a.lms, a.feedback, bool(a.include_incomplete)),
    ),
    "page": (_page, lambda a: act.PageRequest(Path(a.output) if a.output else None)),
    "release": (_release, lambda a: act.ReleaseRequest(a.book_lab)),
    "backup": (_backup, lambda a: act.BackupRequest(Path(a.file))),
}
