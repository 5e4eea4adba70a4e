"""``grade course``: grade a course's lab and record it, grade whoever is due, regrade a lab,
the Slurm shard script. Each command turns its options into one request of
grader.actions.course, calls that action and prints what it hears and what it returns.
(``grade book`` is grader.cli.book.)"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from grader.actions import course as act
from grader.actions.book import open_course
from grader.actions.common import Actor, CourseAt
from grader.base.clock import utc_text
from grader.base.errors import ExitStatus
from grader.cli.definition import DEFAULTS, Given, UsageError
from grader.cli.grading import class_ending, connection_of, warn_shared_passwords
from grader.cli.progress import progress_for
from grader.cli.terminal import sigterm_interrupts, use_color
from grader.report.render.safe import escaped

#: Options of a grading that the course decides
DECIDED = {
    "host": "--host", "roster": "--roster", "local": "--local", "lab": "--lab",
    "rubric_path": "--rubric", "out": "--out", "resume": "--resume", "only": "--only",
    "fmt": "--format", "student_view": "--student-view",
}  # fmt: skip


def _say(text: str) -> None:
    """A line for people: anything from a VM or a file in it reaches the terminal escaped."""
    sys.stdout.write(escaped(text) + "\n")


def course(args: Given) -> int:
    given = [flag for name, flag in DECIDED.items() if getattr(args, name) != DEFAULTS.get(name)]
    if given:
        raise UsageError(
            f"{given[0]} does not apply to `grade course`: the course names the roster, the "
            "lab and the run's folder"
        )
    if args.course_command != "run" and args.course_students:
        raise UsageError("--student is for `grade course run`")
    if args.course_command == "members":
        from grader.cli.lti import members  # lazy: optional (the web's libraries: PyJWT)

        return members(args)
    actor = Actor.here(args.by)
    if args.course_command == "shard-script":
        return _shard_script(args, actor)
    part, batch = _shard(args) if args.course_command in ("run", "due") else (None, None)
    with open_course(CourseAt(args.course, args.db), actor, create=True) as opened:
        if args.course_command == "regrade":
            return _regrade(args, opened, actor)
        watch = Watch(use_color(args.color, sys.stdout), part)
        connection, wait, ignore = connection_of(args), not args.no_wait, tuple(args.ignore_columns)
        with sigterm_interrupts():
            if args.course_command == "run":
                students = tuple(args.course_students) if args.course_students else None
                request = act.RunRequest(
                    args.lab_id, connection, students, part, batch, wait, ignore
                )
                act.run_lab(opened, actor, request, watch)
            else:
                due = act.DueRequest(connection, part, batch, wait, ignore)
                act.grade_due(opened, actor, due, watch)
        return watch.worst


class Watch(act.CourseWatch):
    """A course's grading on the terminal: whom, the progress, each lab's class table and
    what was recorded; the worst exit status of its labs."""

    def __init__(self, color: bool, part: tuple[int, int] | None) -> None:
        self.color = color
        self.where = f" in shard {part[0]}/{part[1]}" if part else ""
        self.worst = int(ExitStatus.OK)

    def students(self, students: Sequence[Any]) -> None:
        warn_shared_passwords(students)

    def progress(self, count: int) -> contextlib.AbstractContextManager[Any]:
        return progress_for(count, color=self.color)

    def due(self, lab: str, todo: Sequence[Any], due: datetime, moment: datetime) -> None:
        if not todo:
            _say(f"{lab}: nobody to grade{self.where} (due {utc_text(due)}; now "
                 f"{utc_text(moment)})")  # fmt: skip
            return
        names = ", ".join(d.student for d in todo)
        _say(f"{lab}: grading {len(todo)} student(s){self.where} whose due time has passed: "
             f"{names}")  # fmt: skip
        for d in todo:
            if d.why != "due":
                _say(f"  {d.student}: again, {d.why}")

    def graded(self, done: act.LabGraded) -> None:
        recorded, part = done.recorded, done.shard
        if recorded is None:
            _say(
                f"{done.lab}: nobody to grade" + (f" in shard {part[0]}/{part[1]}" if part else "")
            )
            return
        code = class_ending(recorded.done, done.rubric, self.color)
        self.worst = max(self.worst, code)
        if recorded.run is None:
            return
        shard = (f", shard {part[0]}/{part[1]}" if part else "") + (
            f" of batch {done.batch}" if done.batch else ""
        )
        _say(f"Recorded in the gradebook as run {recorded.run} ({done.kind} of {done.lab}"
             f"{shard}): {recorded.folder}")  # fmt: skip
        for student, message in done.to_look_at:
            _say(f"  To look at, {student}: {message}")


def _shard(args: Given) -> tuple[tuple[int, int] | None, str | None]:
    """--shard K/N, and the batch its shards share (--batch, else the job runner's job id
    from the environment; None: the shard is a grading of its own)."""
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.roster import parse_shard

    if args.shard is None:
        if args.batch:
            raise UsageError("--batch names the shards of one class grading: give --shard K/N")
        return None, None
    env = os.environ
    batch = args.batch or (
        f"slurm-{env['SLURM_ARRAY_JOB_ID']}" if env.get("SLURM_ARRAY_JOB_ID")
        else f"github-{env['GITHUB_RUN_ID']}-{env.get('GITHUB_RUN_ATTEMPT', '1')}"
        if env.get("GITHUB_RUN_ID") else None
    )  # fmt: skip
    if batch is not None and not 0 < len(batch) <= 100:  # what the book keeps of it
        raise UsageError(f"--batch: a name of 1 to 100 characters, not {len(batch)}")
    return parse_shard(args.shard), batch


def _shard_script(args: Given, actor: Actor) -> int:
    """The sbatch script of a lab graded in shards (see `grade course shard-script --help`)."""
    if not args.slurm:
        raise UsageError("name the job runner the script is for: --slurm (the only one so far)")
    if args.due == bool(args.lab_id):
        raise UsageError(
            "--due grades every lab's students now due: give no LAB"
            if args.due
            else "name the LAB to grade (or --due for the students now due)"
        )
    if args.db:
        raise UsageError(
            "--db does not reach the job's tasks (the script carries no address of the book): "
            "export GRADER_DB=postgresql://USER@HOST/NAME before `sbatch`, or name the book in "
            "course.toml's db"
        )
    request = act.ShardScriptRequest(
        CourseAt(args.course), args.shards, None if args.due else args.lab_id, args.by
    )
    sys.stdout.write(act.shard_script(actor, request))
    return ExitStatus.OK


def _regrade(args: Given, opened: Any, actor: Actor) -> int:
    done = act.regrade(opened, actor, act.RegradeRequest(args.lab_id, wait=not args.no_wait))
    lab = opened.course.lab(args.lab_id).id
    if not done:
        _say(f"{lab}: every recorded grading is on the lab's current rubric already")
    for each in done:
        _say(f"run {each.run} regraded with {lab}'s current rubric: recorded as run {each.new} "
             f"({each.folder})")  # fmt: skip
        for report in each.refused:
            _say(f"  {report.student or report.host}: {report.error}")
    return ExitStatus.NOT_GRADED if any(each.refused for each in done) else ExitStatus.OK
