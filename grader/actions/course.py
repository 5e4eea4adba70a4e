"""A course's gradings: a lab graded now, whoever is due, a lab marked again with its current
rubric, and the Slurm script of a lab graded in shards.

Every grading holds the course's lock (one grading of a course at a time; the shards of one
batch together) and records what it graded in the book. What a front end shows while it runs
it hears through a ``CourseWatch``.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grader.actions.common import Actor, CourseAt
from grader.actions.grading import Connection, setup_of
from grader.base.clock import now
from grader.base.errors import InputError
from grader.classrun.roster import CONTROL, password_envs
from grader.classrun.run import quiet
from grader.course import config
from grader.course.grading import Due, Recorded, due_now, grade_lab, regrade_lab
from grader.course.lock import WAIT, course_lock


class CourseWatch:
    """What a front end hears of a course's grading as it goes (each does nothing here)."""

    def students(self, students: Sequence[Any]) -> None:
        """Whom a lab's grading is about to grade (grader.classrun.roster.Student)."""

    def progress(self, count: int) -> contextlib.AbstractContextManager[Any]:
        """What hears each of ``count`` gradings start and finish (grader.classrun.batch)."""
        return quiet(count)

    def due(self, lab: str, todo: Sequence[Due], due: datetime, moment: datetime) -> None:
        """Before a lab's due students are graded: whom (none: nobody is due), and why."""

    def graded(self, done: LabGraded) -> None:
        """A lab's grading is over and recorded."""


@dataclass(frozen=True)
class LabGraded:
    lab: str
    kind: str  # run | due
    recorded: Recorded | None  # None: nobody to grade
    rubric: Any = None  # the lab's (grader.engine.rubric.Rubric)
    shard: tuple[int, int] | None = None
    batch: str | None = None
    to_look_at: tuple[tuple[str, str], ...] = ()  # (student, question for staff) of those graded


def _graded(
    course: Any,
    lab: str,
    students: list[str] | None,
    kind: str,
    connection: Connection,
    watch: CourseWatch,
    ignore_columns: Sequence[str],
    shard: tuple[int, int] | None = None,
    batch: str | None = None,
) -> LabGraded:
    """Grade a lab (its roster, or ``students``) now and record it; what staff should look
    at of those graded."""
    setup = setup_of(connection, course.rubric(lab))
    recorded = grade_lab(
        course, lab, students, kind, setup, ignore=ignore_columns, watch=watch.progress,
        on_students=watch.students, shard=shard, batch=batch,
    )  # fmt: skip
    looked: list[tuple[str, str]] = []
    if recorded is not None and recorded.run is not None:
        course.forget()
        graded = {r.student for r in recorded.done.result.reports if r.student}
        flags, _ = course.identity(lab)
        looked = [(s, flag.message) for s in sorted(graded & set(flags)) for flag in flags[s]]
    done = LabGraded(lab, kind, recorded, course.rubric(lab), shard, batch, tuple(looked))
    watch.graded(done)
    return done


@dataclass(frozen=True)
class RunRequest:
    lab: str
    connection: Connection
    students: tuple[str, ...] | None = None  # these students of the roster only
    shard: tuple[int, int] | None = None  # (K, N): the Kth of N slices of the roster
    batch: str | None = None  # the class grading the shard is one of
    wait: bool = True  # for another grading of the course to end (else CourseBusy)
    ignore_columns: tuple[str, ...] = ()


def run_lab(
    course: Any, actor: Actor, request: RunRequest, watch: CourseWatch | None = None
) -> LabGraded:
    """Grade a lab's roster (or some of its students) now, and record it in the book."""
    actor.must_be_staff("grade a lab")
    lab = course.course.lab(request.lab).id
    part = request.shard
    doing = "grade course run" + (f" --shard {part[0]}/{part[1]}" if part else "")
    with course_lock(course.book, doing, wait=WAIT if request.wait else 0, batch=request.batch):
        students = list(request.students) if request.students else None
        return _graded(
            course.acting(actor.name), lab, students, "run", request.connection,
            watch or CourseWatch(), request.ignore_columns, part, request.batch,
        )  # fmt: skip


@dataclass(frozen=True)
class DueRequest:
    connection: Connection
    shard: tuple[int, int] | None = None
    batch: str | None = None
    wait: bool = True
    ignore_columns: tuple[str, ...] = ()


def grade_due(
    course: Any, actor: Actor, request: DueRequest, watch: CourseWatch | None = None
) -> list[LabGraded]:
    """Grade, lab by lab, the students whose due time has passed since their last grading,
    and those whose mark is incomplete (for cron)."""
    actor.must_be_staff("grade the students now due")
    watch = watch or CourseWatch()
    part = request.shard
    doing = "grade course due" + (f" --shard {part[0]}/{part[1]}" if part else "")
    done = []
    with course_lock(course.book, doing, wait=WAIT if request.wait else 0, batch=request.batch):
        moment = now()
        # a shard: its slice of the roster, every Nth student from the Kth, as --roster --shard
        mine = set(list(course.roster)[part[0] - 1 :: part[1]]) if part else None
        for lab in course.course.labs.values():
            todo = [d for d in due_now(course, lab.id, moment) if mine is None or d.student in mine]
            watch.due(lab.id, todo, lab.due, moment)
            if not todo:
                continue
            due = [d.student for d in todo]  # the shard's already: sliced once, here
            acting = course.acting(actor.name)
            graded = _graded(acting, lab.id, due, "due", request.connection, watch,
                             request.ignore_columns, None, request.batch)  # fmt: skip
            done.append(graded)
    return done


@dataclass(frozen=True)
class RegradeRequest:
    lab: str
    wait: bool = True


def regrade(course: Any, actor: Actor, request: RegradeRequest) -> list[Any]:
    """Every recorded grading of a lab not on its current rubric, marked again from its
    evidence archives and recorded (grader.course.grading.Regraded, each)."""
    actor.must_be_staff("regrade a lab")
    lab = course.course.lab(request.lab).id
    wait = WAIT if request.wait else 0
    with course_lock(course.book, f"grade course regrade {lab}", wait=wait):
        return list(regrade_lab(course.acting(actor.name), lab))


# -- a lab graded in shards on Slurm ---------------------------------------------------------

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


@dataclass(frozen=True)
class ShardScriptRequest:
    where: CourseAt
    shards: int
    lab: str | None = None  # the lab each task grades (None: ``due``)
    by: str | None = None  # who the tasks record as


def shard_script(actor: Actor, request: ShardScriptRequest) -> str:
    """The sbatch script of a lab graded in shards. What course.toml says reaches it quoted,
    and its title only as a comment made safe."""
    actor.must_be_staff("grade a course in shards")
    course = config.load_course(config.find_course(request.where.course))
    due = request.lab is None
    labs = list(course.labs.values()) if due else [course.lab(request.lab or "")]
    folder = str(course.folder.resolve())
    if CONTROL.search(folder):
        raise InputError(
            f"{folder!r}: the course folder's path holds a control character, which a job "
            "script cannot name safely; move the course to a folder of another name"
        )
    secrets = [v.env for lab in labs for v in lab.vars.values() if isinstance(v, config.FromEnv)]
    ssh = password_envs(course.roster)
    for name, line in ssh.items():
        if not _ENV_NAME.fullmatch(name):
            raise InputError(
                f"{course.roster}:{line}: password_env {name!r} is not the name of an "
                "environment variable (letters, digits and _, not first a digit)"
            )
    export = ",".join(dict.fromkeys((*TASK_ENV, *secrets, *ssh)))
    what = "the students now due" if due else labs[0].id
    name = "grade-due" if due else f"grade-{labs[0].id}"
    command = "due" if due else f"run {shlex.quote(labs[0].id)}"
    by = f" --by {shlex.quote(request.by)}" if request.by else ""
    count = request.shards
    grade = f"{shlex.quote(sys.executable)} -m grader"  # this grader, whatever PATH holds
    q = shlex.quote  # sbatch reads #SBATCH lines with the shell's quotes too
    return f"""#!/bin/sh
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


def _comment(text: str) -> str:
    """``text`` as one line of a script's comment: what is not printable written as an escape
    (course.toml refuses control characters; this holds whatever reaches here)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
