"""``grade course``: grade a course's lab and record it, grade whoever is due, regrade a lab,
the Slurm shard script: the command line's side of grader.course: parse, call, print. (``grade
book`` is grader.cli.book.)"""

from __future__ import annotations

import os
import re
import shlex
import sys
from typing import Any

from grader.base.clock import now
from grader.base.errors import ExitStatus, InputError
from grader.cli.definition import DEFAULTS, UsageError
from grader.cli.progress import progress_for
from grader.cli.terminal import sigterm_interrupts, use_color
from grader.course.book import utc
from grader.course.gradebook import Gradebook, open_gradebook
from grader.report.render.safe import escaped

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
    with sigterm_interrupts():
        recorded = grade_lab(
            gradebook, lab, only, kind, setup, ignore=opts["ignore_columns"],
            watch=lambda count: progress_for(count, color=color),
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
