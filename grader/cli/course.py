"""``grade course`` (grade a course's lab, record it) and ``grade book`` (the gradebook): the
command line's side of grader.course: parse, call, print."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from grader.base.clock import now
from grader.base.errors import ExitStatus, InputError
from grader.base.files import write_atomic
from grader.cli.definition import DEFAULTS, UsageError
from grader.cli.terminal import use_color
from grader.course.book import Row, utc
from grader.course.gradebook import Gradebook, open_gradebook
from grader.report.render.safe import escaped, json_text
from grader.report.render.summary_csv import cell

#: Options of a grading that the course decides
DECIDED = {
    "host": "--host", "roster": "--roster", "local": "--local", "lab": "--lab",
    "rubric_path": "--rubric", "out": "--out", "resume": "--resume", "only": "--only",
    "fmt": "--format", "student_view": "--student-view",
}  # fmt: skip


def _open(opts: dict[str, Any], create: bool = False) -> Gradebook:
    return open_gradebook(opts.get("course"), opts.get("db"), opts.get("by"), create=create)


def _say(text: str) -> None:
    """A line for people: anything from a VM or a file in it reaches the terminal escaped."""
    sys.stdout.write(escaped(text) + "\n")


def course(opts: dict[str, Any]) -> int:
    given = [flag for name, flag in DECIDED.items() if opts.get(name) != DEFAULTS.get(name)]
    if given:
        raise UsageError(
            f"{given[0]} does not apply to `grade course`: the course names the roster, the "
            "lab and the run's folder"
        )
    if opts["course_command"] != "run" and opts.get("course_students"):
        raise UsageError("--student is for `grade course run`")
    if opts["course_command"] == "shard-script":
        return _shard_script(opts)
    part, batch = _shard(opts) if opts["course_command"] in ("run", "due") else (None, None)
    gradebook = _open(opts, create=True)
    try:
        action = opts["course_command"]
        if action == "regrade":
            return _regrade(opts, gradebook)
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.course.lock import WAIT, course_lock

        wait = 0 if opts.get("no_wait") else WAIT
        doing = f"grade course {action}" + (f" --shard {part[0]}/{part[1]}" if part else "")
        with course_lock(gradebook.book, doing, wait=wait, batch=batch):
            if action == "run":
                lab = gradebook.course.lab(opts["lab_id"]).id
                students = opts.get("course_students") or None
                return _grade(opts, gradebook, lab, students, "run", part, batch)
            return _due(opts, gradebook, part, batch)
    finally:
        gradebook.close()


def _shard(opts: dict[str, Any]) -> tuple[tuple[int, int] | None, str | None]:
    """--shard K/N, and the batch its shards share (--batch, else the job runner's job id
    from the environment; None: the shard is a grading of its own)."""
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.roster import parse_shard

    if opts.get("shard") is None:
        if opts.get("batch"):
            raise UsageError("--batch names the shards of one class grading: give --shard K/N")
        return None, None
    env = os.environ
    batch = opts.get("batch") or (
        f"slurm-{env['SLURM_ARRAY_JOB_ID']}" if env.get("SLURM_ARRAY_JOB_ID")
        else f"github-{env['GITHUB_RUN_ID']}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"
        if env.get("GITHUB_RUN_ID") else None
    )  # fmt: skip
    if batch is not None and not 0 < len(batch) <= 100:  # what the book keeps of it
        raise UsageError(f"--batch: a name of 1 to 100 characters, not {len(batch)}")
    return parse_shard(opts["shard"]), batch


#: What every task of a shard script is given of the environment it is submitted in (sbatch
#: passes on all of it unless the script names what): how the grader is found and runs, its
#: own settings, the book's address and how libpq finds its password (a password file or a
#: service, never PGPASSWORD); besides, the variables course.toml and the roster name. A name
#: not set when sbatch runs passes nothing.
TASK_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SUDO_USER", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH",
    "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "SSH_AUTH_SOCK",
    "GRADER_DB", "GRADER_LABS", "GRADER_KNOWN_HOSTS", "GRADER_CACHE_DIR",
    "PGPASSFILE", "PGSERVICEFILE", "PGSERVICE", "PGSYSCONFDIR", "PGHOST", "PGHOSTADDR", "PGPORT",
    "PGUSER", "PGDATABASE", "PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL",
)  # fmt: skip
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _shard_script(opts: dict[str, Any]) -> int:
    """The sbatch script of a lab graded in shards (see `grade course shard-script --help`).
    What course.toml says reaches it quoted, and its title only as a comment made safe."""
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.roster import CONTROL, password_envs
    from grader.course.config import FromEnv, find_course, load_course

    if not opts["slurm"]:
        raise UsageError("name the job runner the script is for: --slurm (the only one so far)")
    if opts["due"] == bool(opts.get("lab_id")):
        raise UsageError(
            "--due grades every lab's students now due: give no LAB"
            if opts["due"]
            else "name the LAB to grade (or --due for the students now due)"
        )
    if opts.get("db"):
        raise UsageError(
            "--db does not reach the job's tasks (the script carries no address of the book): "
            "export GRADER_DB=postgresql://USER@HOST/NAME before `sbatch`, or name the book in "
            "course.toml's db"
        )
    course = load_course(find_course(opts.get("course")))
    labs = list(course.labs.values()) if opts["due"] else [course.lab(opts["lab_id"])]
    folder = str(course.folder.resolve())
    if CONTROL.search(folder):
        raise InputError(
            f"{folder!r}: the course folder's path holds a control character, which a job "
            "script cannot name safely; move the course to a folder of another name"
        )
    secrets = [v.env for lab in labs for v in lab.vars.values() if isinstance(v, FromEnv)]
    ssh = password_envs(course.roster)
    for name, line in ssh.items():
        if not _ENV_NAME.fullmatch(name):
            raise InputError(
                f"{course.roster}:{line}: password_env {name!r} is not the name of an "
                "environment variable (letters, digits and _, not first a digit)"
            )
    export = ",".join(dict.fromkeys((*TASK_ENV, *secrets, *ssh)))
    what = "the students now due" if opts["due"] else labs[0].id
    name = "grade-due" if opts["due"] else f"grade-{labs[0].id}"
    command = "due" if opts["due"] else f"run {shlex.quote(labs[0].id)}"
    by = f" --by {shlex.quote(opts['by'])}" if opts.get("by") else ""
    count = opts["shards"]
    grade = f"{shlex.quote(sys.executable)} -m grader"  # this grader, whatever PATH holds
    q = shlex.quote  # sbatch reads #SBATCH lines with the shell's quotes too
    sys.stdout.write(
        f"""#!/bin/sh
# {_comment(f"{course.title}: {what} in {count} shards.")}
# One Slurm array task per shard; each records its slice into the course's book when done.
# Its tasks get only the environment variables --export names (and SLURM_*), from where
# sbatch runs: the book's address (GRADER_DB, else course.toml's db) and its password file
# or service (~/.pgpass, PGPASSFILE, PGSERVICE; never PGPASSWORD), the labs' secrets as
# course.toml names them, the roster's SSH passwords. Export them before `sbatch`: no
# address or secret is written here.
# Watch the tasks with `squeue`. A task that fails leaves its students ungraded (never 0):
# `grade course run LAB --student ID` or the next `grade course due` picks them up.
#SBATCH --job-name={q(name)}
#SBATCH --array=1-{count}
#SBATCH --chdir={q(folder)}
#SBATCH --output={q(folder.replace("%", "%%") + "/slurm-%A_%a.out")}
#SBATCH --export={export}
exec {grade} course {command} --course {q(folder)}{by} \\
    --shard "$SLURM_ARRAY_TASK_ID/{count}" --batch "slurm-$SLURM_ARRAY_JOB_ID"
"""
    )
    return ExitStatus.OK


def _comment(text: str) -> str:
    """``text`` as one line of a script's comment: what is not printable written as an escape
    (course.toml refuses control characters; this holds whatever reaches here)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _setup(opts: dict[str, Any], gradebook: Gradebook, lab: str) -> Any:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.cli.grading import connection_setup

    return connection_setup(opts, gradebook.rubric(lab))


def _grade(
    opts: dict[str, Any],
    gradebook: Gradebook,
    lab: str,
    only: list[str] | None,
    kind: str,
    part: tuple[int, int] | None = None,
    batch: str | None = None,
) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.cli.grading import class_ending, warn_shared_passwords
    from grader.course.grading import grade_lab

    color = use_color(opts["color"], sys.stdout)
    setup = _setup(opts, gradebook, lab)
    recorded = grade_lab(
        gradebook, lab, only, kind, setup, ignore=opts["ignore_columns"], color=color,
        on_students=warn_shared_passwords, shard=part, batch=batch,
    )  # fmt: skip
    if recorded is None:
        _say(f"{lab}: nobody to grade" + (f" in shard {part[0]}/{part[1]}" if part else ""))
        return ExitStatus.OK
    code = class_ending(recorded.done, gradebook.rubric(lab), color)
    if recorded.run is not None:
        shard = (f", shard {part[0]}/{part[1]}" if part else "") + (
            f" of batch {batch}" if batch else ""
        )
        _say(f"Recorded in the gradebook as run {recorded.run} ({kind} of {lab}{shard}): "
             f"{recorded.folder}")  # fmt: skip
        gradebook.forget()
        graded = {r.student for r in recorded.done.result.reports if r.student}
        flags, _ = gradebook.identity(lab)
        for student in sorted(graded & set(flags)):
            for flag in flags[student]:
                _say(f"  To look at, {student}: {flag.message}")
    return code


def _due(
    opts: dict[str, Any], gradebook: Gradebook, part: tuple[int, int] | None, batch: str | None
) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.grading import due_now

    moment = now()
    worst = int(ExitStatus.OK)
    # a shard: its slice of the roster, every Nth student from the Kth, as --roster --shard
    mine = set(list(gradebook.roster)[part[0] - 1 :: part[1]]) if part else None
    where = f" in shard {part[0]}/{part[1]}" if part else ""
    for lab in gradebook.course.labs.values():
        todo = [d for d in due_now(gradebook, lab.id, moment) if mine is None or d.student in mine]
        if not todo:
            _say(f"{lab.id}: nobody to grade{where} (due {utc(lab.due)}; now {utc(moment)})")
            continue
        names = ", ".join(d.student for d in todo)
        _say(f"{lab.id}: grading {len(todo)} student(s){where} whose due time has passed: {names}")
        for d in todo:
            if d.why != "due":
                _say(f"  {d.student}: again, {d.why}")
        due = [d.student for d in todo]  # the shard's already: sliced once, here
        worst = max(worst, _grade(opts, gradebook, lab.id, due, "due", None, batch))
    return worst


def _regrade(opts: dict[str, Any], gradebook: Gradebook) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.course.grading import regrade_lab
    from grader.course.lock import WAIT, course_lock

    lab = gradebook.course.lab(opts["lab_id"]).id
    wait = 0 if opts.get("no_wait") else WAIT
    with course_lock(gradebook.book, f"grade course regrade {lab}", wait=wait):
        done = regrade_lab(gradebook, lab)
    if not done:
        _say(f"{lab}: every recorded grading is on the lab's current rubric already")
    for each in done:
        _say(f"run {each.run} regraded with {lab}'s current rubric: recorded as run {each.new} "
             f"({each.folder})")  # fmt: skip
        for report in each.refused:
            _say(f"  {report.student or report.host}: {report.error}")
    return ExitStatus.NOT_GRADED if any(each.refused for each in done) else ExitStatus.OK


# -- grade book ----------------------------------------------------------------------------


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
