"""``grade book``: the course's gradebook (marks, history, explain, overrides, imports,
exports, the course page, backups): the command line's side of grader.course: parse, call,
print."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from grader.base.clock import now
from grader.base.errors import ExitStatus, InputError
from grader.base.files import write_atomic
from grader.cli.course import _open, _say
from grader.cli.definition import UsageError
from grader.course.book import Row, utc
from grader.course.gradebook import Gradebook
from grader.report.render.safe import escaped, json_text
from grader.report.render.summary_csv import cell


def book(opts: dict[str, Any]) -> int:
    action = opts["book_command"]
    gradebook = _open(opts, create=action == "import")
    try:
        return BOOK_ACTIONS[action](opts, gradebook)
    finally:
        gradebook.close()


def by_student(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """student -> lab -> their row, in the rows' order."""
    table: dict[str, dict[str, Row]] = {}
    for r in rows:
        table.setdefault(r.student, {})[r.lab] = r
    return table


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _show(opts: dict[str, Any], gradebook: Gradebook) -> int:
    rows = gradebook.rows(opts.get("book_lab"))
    form = opts.get("book_format") or "text"
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

    _say(f"{gradebook.course.title}: marks as of {utc(now())}")
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


def _history(opts: dict[str, Any], gradebook: Gradebook) -> int:
    student = opts["student"]
    events = gradebook.book.history(student, opts.get("book_lab"))
    counting = {}
    for lab in gradebook.course.labs:
        if opts.get("book_lab") in (None, lab):
            row = gradebook.explain(student, lab).row
            counting[lab] = row.run
    for e in events:
        if e["kind"] not in ("override", "withdraw", "first_passed", "drop", "undrop", "accept",
                             "unaccept"):  # fmt: skip
            original = e["regrade_of"] if e["kind"] == "regrade" else e["run"]
            e["counts"] = counting.get(e["lab"]) == original
    if (opts.get("book_format") or "text") == "json":
        sys.stdout.write(json_text(events, indent=1) + "\n")
        return ExitStatus.OK
    if not events:
        _say(f"Nothing recorded for {student}.")
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
        _say(line)
    for (lab, at), names in firsts.items():
        _say(f"{at}  {lab}: passed for the first time: {', '.join(names)}")
    return ExitStatus.OK


def _explain(opts: dict[str, Any], gradebook: Gradebook) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.explain import explanation

    student, lab = opts["student"], gradebook.course.lab(opts["book_lab"]).id
    if student not in gradebook.roster and student not in gradebook.book.students(lab):
        gradebook.on_roster(student)  # names the closest
    explained = gradebook.explain(student, lab)
    if (opts.get("book_format") or "text") == "json":
        sys.stdout.write(json_text(asdict(explained.row), indent=1) + "\n")
        return ExitStatus.OK
    sys.stdout.write(escaped(explanation(gradebook, explained)))
    return ExitStatus.OK


def _override(opts: dict[str, Any], gradebook: Gradebook) -> int:
    check, value, mark = opts.get("check"), opts.get("points"), opts.get("mark")
    if value is not None and check is None:
        raise UsageError("--points sets a check's points: give the check (--check ID)")
    if mark is not None and check is not None:
        raise UsageError("--mark sets the lab's final mark: leave out --check")
    made = gradebook.override(opts["student"], opts["book_lab"], check, value, mark, opts["reason"])
    _say(f"Override {made} recorded; `grade book explain {opts['student']} {opts['book_lab']}` "
         "shows the mark with it.")  # fmt: skip
    return ExitStatus.OK


def _withdraw(opts: dict[str, Any], gradebook: Gradebook) -> int:
    made = gradebook.withdraw(opts["student"], opts["book_lab"], opts.get("check"), opts["reason"])
    _say(f"Override {made} withdrawn (kept in the history).")
    return ExitStatus.OK


def _accept(opts: dict[str, Any], gradebook: Gradebook) -> int:
    student, lab, check = opts["student"], opts["book_lab"], opts["check"]
    undo = bool(opts.get("undo"))
    gradebook.accept(student, lab, check, opts["reason"], undo=undo)
    if undo:
        _say(f"{check} of {student}, {lab} is late work again (the acceptance stays in the "
             "history).")  # fmt: skip
    else:
        _say(f"{check} of {student}, {lab} counts on time; `grade book explain {student} {lab}` "
             "shows the mark with it.")  # fmt: skip
    return ExitStatus.OK


def _drop(opts: dict[str, Any], gradebook: Gradebook) -> int:
    run = opts["run"]
    if opts.get("undo"):
        gradebook.book.undrop(run, opts["reason"])
        _say(f"Run {run} is back in the marks (the drop stays in the history).")
    else:
        gradebook.book.drop(run, opts["reason"])
        _say(f"Run {run} is out of the marks, kept in the book; `grade book drop {run} --undo` "
             "puts it back.")  # fmt: skip
    return ExitStatus.OK


def _import(opts: dict[str, Any], gradebook: Gradebook) -> int:
    if opts.get("reason") is not None and not opts.get("trust_unreplayed"):
        raise UsageError("--reason goes with --trust-unreplayed")
    if opts.get("trust_unreplayed") and opts.get("reason") is None:
        raise UsageError("--trust-unreplayed needs --reason: why these reports can be trusted")
    trust = opts.get("reason") if opts.get("trust_unreplayed") else None
    lab = opts["book_lab"]
    run, count, checked = gradebook.import_folder(lab, Path(opts["directory"]), trust)
    _say(f"Recorded {count} report(s) of {lab} as run {run} ({checked.replayed} replayed from "
         f"its evidence, {checked.signed} signed by this course's grader).")  # fmt: skip
    for student, why in checked.trusted.items():
        _say(f"  {student}: taken on trust, not replayed ({why})")
    if trust is not None and not checked.trusted:
        _say("  Every report was replayed or signed: nothing was taken on trust.")
    return ExitStatus.OK


def _export(opts: dict[str, Any], gradebook: Gradebook) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.exports import book_export

    text, incomplete = book_export(gradebook, opts["lms"], feedback=opts["feedback"])
    if incomplete and not opts.get("include_incomplete"):
        raise InputError(
            "not exported: these marks are incomplete (a check could not be checked at the "
            "grading that counts, so the mark is short of what the student may have earned): "
            + "; ".join(f"{s} {lab} ({', '.join(ids)})" for s, lab, ids in incomplete[:20])
            + ("; ..." if len(incomplete) > 20 else "")
            + ". Grade them again (grade course due), override the checks, or give "
            "--include-incomplete to export them as they are"
        )
    if opts.get("output"):
        write_atomic(Path(opts["output"]), text)
    else:
        sys.stdout.write(escaped(text))
    return ExitStatus.OK


def _page(opts: dict[str, Any], gradebook: Gradebook) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.page import pages

    target = Path(opts.get("output") or gradebook.course.folder / "course.html")
    found = pages(gradebook.course, gradebook.rows(), gradebook.class_notes())
    for relative, html in found.items():
        where = target if relative == "course.html" else target.parent / relative
        write_atomic(where, html)
    _say(f"The course page: {target}; each student's: {target.parent / 'students'}/")
    return ExitStatus.OK


def _backup(opts: dict[str, Any], gradebook: Gradebook) -> int:
    target = Path(opts["file"])
    gradebook.book.backup(target)
    _say(f"The gradebook is copied to {target} (restore: copy it back over "
         f"{gradebook.book.url.removeprefix('sqlite:///')} while no grading runs).")  # fmt: skip
    return ExitStatus.OK


BOOK_ACTIONS = {
    "show": _show, "history": _history, "explain": _explain, "override": _override,
    "withdraw": _withdraw, "accept": _accept, "drop": _drop, "import": _import,
    "export": _export, "page": _page, "backup": _backup,
}  # fmt: skip
