"""``grade course`` (grade a course's lab, record it) and ``grade book`` (the gradebook)."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from grader.base.clock import now
from grader.base.errors import ExitStatus, InputError
from grader.cli.definition import UsageError
from grader.course.book import Book, Row, book_url, utc
from grader.course.config import Course, find_course, load_course
from grader.report.render.safe import escaped
from grader.report.render.summary_csv import cell

#: Options of a grading that the course decides
DECIDED = {
    "host": "--host", "roster": "--roster", "local": "--local", "lab": "--lab",
    "rubric_path": "--rubric", "student": "--student", "out": "--out", "shard": "--shard",
    "resume": "--resume", "only": "--only", "fmt": "--format", "student_view": "--student-view",
}  # fmt: skip


def _open(opts: dict[str, Any]) -> tuple[Course, Book]:
    course = load_course(find_course(opts.get("course")))
    return course, Book(book_url(course.folder, opts.get("db")))


def course(opts: dict[str, Any]) -> int:
    from grader.cli.definition import DEFAULTS

    given = [flag for name, flag in DECIDED.items() if opts.get(name) != DEFAULTS.get(name)]
    if given:
        raise UsageError(
            f"{given[0]} does not apply to `grade course`: the course names the roster, the "
            "lab and the run's folder"
        )
    loaded, book = _open(opts)
    try:
        if opts["course_command"] == "run":
            lab = loaded.lab(opts["lab_id"])
            return _grade(opts, loaded, book, lab.id, None, "run")
        return _due(opts, loaded, book)
    finally:
        book.close()


def _due(opts: dict[str, Any], loaded: Course, book: Book) -> int:
    from grader.classrun.roster import load_roster
    from grader.engine.rubric import load_rubric

    moment = now()
    worst = int(ExitStatus.OK)
    for lab in loaded.labs.values():
        rubric = load_rubric(_rubric_path(loaded, lab.id))
        ignore = [*opts["ignore_columns"], *_not_this_labs(loaded, lab.id)]
        students = [s.student for s in load_roster(loaded.roster, rubric, keys=False,
                                                   ignore=ignore)]  # fmt: skip
        done = book.graded_students(lab.id, ["due"], graded_only=True)
        todo = [s for s in students if s not in done and loaded.due_for(s, lab.id) <= moment]
        if not todo:
            print(f"{lab.id}: nobody to grade (due {utc(lab.due)}; now {utc(moment)})")
            continue
        print(f"{lab.id}: grading {len(todo)} student(s) whose due time has passed: "
              f"{', '.join(todo)}")  # fmt: skip
        worst = max(worst, _grade(opts, loaded, book, lab.id, todo, "due"))
    return worst


def _not_this_labs(loaded: Course, lab_id: str) -> list[str]:
    """The roster columns that are variables of the course's other labs, not of this one: one
    roster serves every lab, and a lab leaves the others' variables alone."""
    from grader.engine.rubric import load_rubric

    mine = set(load_rubric(_rubric_path(loaded, lab_id)).vars)
    others = {v for lab in loaded.labs if lab != lab_id
              for v in load_rubric(_rubric_path(loaded, lab)).vars}  # fmt: skip
    return sorted(others - mine)


def _rubric_path(loaded: Course, lab_id: str) -> Path:
    from grader.engine.packs import find

    lab = loaded.lab(lab_id)
    return lab.rubric if lab.rubric is not None else find(lab.lab or "")


def _grade(
    opts: dict[str, Any], loaded: Course, book: Book, lab_id: str, only: list[str] | None,
    kind: str,
) -> int:  # fmt: skip
    """Grade the roster (or the students ``only``) for a lab into runs/, and record it."""
    from grader.cli import grading
    from grader.report.store import ReportStore

    stamp = now().strftime("%Y%m%d-%H%M%S")
    out = loaded.folder / "runs" / f"{lab_id}-{kind}-{stamp}"
    roster = loaded.roster
    if only is not None:
        roster = out.with_name(out.name + "-roster.csv")
        _subset(loaded.roster, set(only), roster)
    lab = loaded.lab(lab_id)
    code = grading.grade(
        {
            **opts,
            "command": None,
            "roster": str(roster),
            "out": out,
            "lab": lab.lab,
            "rubric_path": lab.rubric,
            "ignore_columns": [*opts["ignore_columns"], *_not_this_labs(loaded, lab_id)],
        }
    )
    folder = ReportStore(out).read_all()
    if folder.found:
        run = book.record(lab_id, out, folder.found, kind)
        print(f"Recorded in the gradebook as run {run} ({kind} of {lab_id}): {out}")
    return code


def _subset(roster: Path, students: set[str], target: Path) -> None:
    """The roster's header and the rows of ``students``, as written (a cron run grades them)."""
    from grader.classrun.roster import _delimiter

    lines = roster.read_text(encoding="utf-8-sig").splitlines()
    delimiter = _delimiter(lines)
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = next(r for r in rows if any(c.strip() for c in r))
    index = [c.strip().lower() for c in header].index("student")
    kept = [header] + [r for r in rows[rows.index(header) + 1 :]
                       if len(r) > index and r[index].strip() in students]  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(kept)
    target.write_text(buffer.getvalue())


def book(opts: dict[str, Any]) -> int:
    loaded, opened = _open(opts)
    try:
        return BOOK_ACTIONS[opts["book_command"]](opts, loaded, opened)
    finally:
        opened.close()


def marks(loaded: Course, opened: Book, lab: str | None = None) -> list[Row]:
    """Every student's mark for every lab (or one): the roster's students, and any other the
    book has gradings of."""
    from grader.classrun.roster import load_roster
    from grader.engine.rubric import load_rubric

    labs = [loaded.lab(lab)] if lab else list(loaded.labs.values())
    rubric = load_rubric(_rubric_path(loaded, labs[0].id))
    ignore = _not_this_labs(loaded, labs[0].id)
    students = [s.student for s in load_roster(loaded.roster, rubric, keys=False, ignore=ignore)]
    for each in labs:
        students += sorted(
            opened.graded_students(each.id, ["run", "due", "import"]) - set(students)
        )
    return [
        opened.mark(s, each.id, loaded.due_for(s, each.id), each.late, each.policy)
        for s in dict.fromkeys(students)
        for each in labs
    ]


def by_student(rows: list[Row]) -> dict[str, dict[str, Row]]:
    """student -> lab -> their row, in the rows' order."""
    table: dict[str, dict[str, Row]] = {}
    for r in rows:
        table.setdefault(r.student, {})[r.lab] = r
    return table


def _show(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    rows = marks(loaded, opened, opts.get("book_lab"))
    form = opts.get("book_format") or "text"
    if form == "json":
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return ExitStatus.OK
    labs = list(dict.fromkeys(r.lab for r in rows))
    table = by_student(rows)
    if form == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["student", *labs])
        for student, by_lab in table.items():
            writer.writerow([cell(student), *(_number(by_lab[lab].mark) for lab in labs)])
        return ExitStatus.OK
    from rich.console import Console
    from rich.table import Table

    print(escaped(f"{loaded.title}: marks as of {utc(now())}"))
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
            cells.append(text + (" *" if r.overridden else ""))
        shown.add_row(escaped(student), *cells)
    Console(markup=False, highlight=False).print(shown)
    print("- no mark (see `grade book history STUDENT`); * set or changed by an override")
    return ExitStatus.OK


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _history(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    events = opened.history(opts["student"], opts.get("book_lab"))
    if (opts.get("book_format") or "text") == "json":
        print(json.dumps(events, indent=1))
        return ExitStatus.OK
    if not events:
        print(f"Nothing recorded for {escaped(opts['student'])}.")
    for e in events:
        if e["kind"] == "first_passed":
            line = f"{e['at']}  {e['lab']}: {e['check']} passed for the first time"
        elif e["kind"] in ("override", "withdraw"):
            what = f"check {e['check']}" if e["check"] else "the mark"
            line = (f"{e['at']}  {e['lab']}: {e['kind']} of {what} ({e['value']:g}) by "
                    f"{e['by']}: {e['reason']}")  # fmt: skip
        else:
            score = "not graded" if e["score"] is None else f"{e['score']:g}/{e['max']:g}"
            line = (f"{e['at']}  {e['lab']}: {e['kind']} by {e['by']}, VM seen "
                    f"{e['graded_at']}: {score}")  # fmt: skip
        print(escaped(line))
    return ExitStatus.OK


def _override(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    lab = loaded.lab(opts["book_lab"]).id
    check, points, mark = opts.get("check"), opts.get("points"), opts.get("mark")
    if points is not None and check is None:
        raise UsageError("--points sets a check's points: give the check (--check ID)")
    if mark is not None and check is not None:
        raise UsageError("--mark sets the lab's final mark: leave out --check")
    if check is not None:
        before = opened.check_points(opts["student"], lab, check)
        if before is None:
            raise InputError(f"{opts['student']} has no recorded grading of {check} in {lab}")
        made = opened.override(
            opts["student"], lab, check, float(points or 0), opts["reason"], before
        )
    else:
        lab_of = loaded.lab(lab)
        current = opened.mark(
            opts["student"], lab, loaded.due_for(opts["student"], lab), lab_of.late, lab_of.policy
        )
        made = opened.override(opts["student"], lab, None, float(mark or 0), opts["reason"],
                               current.mark)  # fmt: skip
    print(f"Override {made} recorded; `grade book history {opts['student']}` shows it.")
    return ExitStatus.OK


def _withdraw(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    lab = loaded.lab(opts["book_lab"]).id
    made = opened.withdraw(opts["student"], lab, opts.get("check"), opts["reason"])
    print(f"Override {made} withdrawn (kept in the history).")
    return ExitStatus.OK


def _import(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    from grader.report.store import ReportStore

    lab = loaded.lab(opts["book_lab"]).id
    folder = ReportStore(Path(opts["directory"])).read_all()
    if not folder.found:
        raise InputError(f"{opts['directory']}: no reports to record")
    run = opened.record(lab, Path(opts["directory"]), folder.found, "import")
    print(f"Recorded {len(folder.found)} report(s) of {lab} as run {run}.")
    for complaint in folder.complaints():
        sys.stderr.write(escaped(complaint) + "\n")
    return ExitStatus.BAD_INPUT if folder.unreadable else ExitStatus.OK


def _export(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    from grader.base.files import write_atomic
    from grader.report.render.lms import CANVAS_COLUMNS

    rows = marks(loaded, opened)
    labs = list(loaded.labs)
    table = by_student(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if opts["lms"] == "moodle":
        writer.writerow(["ID number", *labs])
    else:
        writer.writerow([*CANVAS_COLUMNS, *labs])
    for student, by_lab in table.items():
        ids = [student] if opts["lms"] == "moodle" else ["", "", student, "", ""]
        writer.writerow([cell(v) for v in (*ids, *(_number(by_lab[lab].mark) for lab in labs))])
    if opts.get("output"):
        write_atomic(Path(opts["output"]), buffer.getvalue())
    else:
        sys.stdout.write(buffer.getvalue())
    return ExitStatus.OK


BOOK_ACTIONS = {
    "show": _show, "history": _history, "override": _override, "withdraw": _withdraw,
    "import": _import, "export": _export,
}  # fmt: skip


def _page(opts: dict[str, Any], loaded: Course, opened: Book) -> int:
    """The course page: every lab's marks and distribution, who has none and why, late work
    and overrides, as one self-contained HTML file."""
    import statistics

    from grader.base.files import write_atomic
    from grader.report.render.html import environment
    from grader.report.render.text import points

    rows = marks(loaded, opened)
    table = {(r.student, r.lab): r for r in rows}
    students = list(dict.fromkeys(r.student for r in rows))
    summary = {}
    for lab in loaded.labs.values():
        mine = [r for r in rows if r.lab == lab.id]
        given = [r.mark for r in mine if r.mark is not None]
        most = max((r.max or 0 for r in mine), default=0) or max(given, default=0) or 1
        bands = [0] * 10
        for mark in given:
            bands[min(9, int(10 * mark / most))] += 1
        summary[lab.id] = {
            "marked": len(given),
            "mean": statistics.mean(given) if given else 0,
            "median": statistics.median(given) if given else 0,
            "bands": [(most * n / 10, most * (n + 1) / 10, c) for n, c in enumerate(bands)]
            if given else [],
            "missing": [r for r in mine if r.mark is None],
            "late": [r for r in mine if r.days_late and r.mark is not None],
            "overridden": [r for r in mine if r.overridden],
        }  # fmt: skip
    labs = [
        {"id": lab.id, "due": utc(lab.due), "policy": lab.policy} for lab in loaded.labs.values()
    ]
    html = environment().get_template("course.html.j2").render(
        title=loaded.title, labs=labs, students=students, rows=table, summary=summary,
        generated=utc(now()), points=points,
    )  # fmt: skip
    target = Path(opts.get("output") or loaded.folder / "course.html")
    write_atomic(target, html)
    # each student's own page: their marks, how each was decided, the overrides in force
    from grader.base.files import safe_name

    own = environment().get_template("course_student.html.j2")
    for student in students:
        page = own.render(
            title=loaded.title, student=student, generated=utc(now()), points=points,
            rows=[r for r in rows if r.student == student],
        )  # fmt: skip
        write_atomic(target.parent / "students" / f"{safe_name(student)}.html", page)
    print(f"The course page: {target}; each student's: {target.parent / 'students'}/")
    return ExitStatus.OK


BOOK_ACTIONS["page"] = _page
