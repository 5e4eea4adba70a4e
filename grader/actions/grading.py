"""Grading itself: a host over SSH, this machine (a student's self-check), a roster.

What is imported here at the top is what the self-check has on a lab VM's own Python (no
paramiko, no pydantic, no SQL); the SSH side is imported when a host is graded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.base.budget import MIB
from grader.base.results import Report
from grader.engine.pack import Pack
from grader.engine.runner import Options, Setup
from grader.machine.execution import Target

#: What a class run tells of each student's grading: ``watch(count)`` gives a context manager
#: whose value hears ``started(student)`` and ``finished(report, reused)`` (grader.classrun)
Watch = Callable[[int], contextlib.AbstractContextManager[Any]]


@dataclass(frozen=True)
class Connection:
    """How the VMs are reached, and how long each wait may take."""

    port: int = 22
    user: str = "root"
    sudo: bool = False  # every command through sudo -n (a user who is not root)
    identity: Path | None = None  # a private key file (default: the user's keys, ssh-agent)
    password: str | None = field(default=None, repr=False)  # read by the front end, never argv
    known_hosts: Path | None = None  # the grader's known-hosts file (None: no SSH, --local)
    accept_changed: frozenset[str] = frozenset()  # hosts whose changed key is accepted
    connect_timeout: float = 5.0
    command_timeout: float = 30.0
    reply_timeout: float = 15.0
    host_timeout: float = 300.0
    plans: Path | None = None  # where what the checks ask is kept for prefetching (None: off)
    workers: int = 32  # hosts graded at once
    evidence_limit: float = 32.0  # MiB of a VM's answers a grading keeps at most


def setup_of(connection: Connection, rubric: Any, host: str = "") -> Setup:
    """The runner's set-up for ``connection``: an unusable key file is refused here, before
    anything is graded."""
    known_hosts = None
    if connection.known_hosts is not None:
        # lazy: self-check (its bundle has no paramiko; --local needs no SSH)
        from grader.machine.ssh import KnownHosts, load_identity

        if connection.identity is not None:
            load_identity(connection.identity)  # an unusable key file is bad input, at once
        known_hosts = KnownHosts(connection.known_hosts, connection.accept_changed)
    options = Options(
        known_hosts=known_hosts,
        connect_timeout=connection.connect_timeout,
        command_timeout=connection.command_timeout,
        reply_timeout=connection.reply_timeout,
        host_timeout=connection.host_timeout,
        evidence_limit=int(connection.evidence_limit * MIB),
    )
    target = Target(
        host=host,
        port=connection.port,
        user=connection.user,
        identity=connection.identity,
        password=connection.password,
        sudo=connection.sudo,
    )
    plan = None
    if connection.plans is not None and connection.known_hosts is not None:
        # lazy: start-up (a plan is for SSH only: a local command is no round trip to save)
        from grader.machine.prefetch import Plan

        # a plan shared by every VM of a rubric, as graders before this one kept: it held
        # commands built from one VM's answers (and students' variables), so it goes
        with contextlib.suppress(OSError):
            (connection.plans / f"plan-{rubric.sha256}.json").unlink(missing_ok=True)
        plan = Plan(connection.plans / f"plan-{rubric.sha256}")  # a file per VM, its own
    return Setup(options, target, plan, connection.workers)


# -- one machine -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HostRequest:
    """Grade one machine: ``host`` over SSH, or this machine (``local``)."""

    pack: Pack  # the lab, its checks bound to its rubric (``--only``: already cut down)
    connection: Connection
    host: str = ""
    local: bool = False
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)  # as given
    student: str | None = None  # whose VM: the report names them; their variant's values
    student_view: bool = False  # hidden items only counted; compared with the last self-check
    out: Path | None = None  # also keep the report, its evidence and the run's manifest here


@dataclass(frozen=True)
class HostGraded:
    report: Report  # as its reader sees it (the student's view, when asked)
    since: list[str]  # what changed since the student's last self-check (their view only)
    written: Path | None  # the report's file in ``out``


def grade_host(request: HostRequest) -> HostGraded:
    """Grade one machine and, with ``out``, keep what it found there (signed inside a
    course)."""
    # lazy: start-up (what each way of grading needs, and the self-check has no more)
    from grader.engine.runner import grade_host as graded_over_ssh
    from grader.engine.runner import grade_local

    pack, rubric = request.pack, request.pack.rubric
    resolved = rubric.resolve_vars(request.variables, student=request.student)
    setup = setup_of(request.connection, rubric, request.host)
    if request.local:
        grading = grade_local(pack, resolved, setup.options, student=request.student)
    else:
        grading = graded_over_ssh(
            setup.target, pack, resolved, setup.options, student=request.student, plan=setup.plan
        )
    report = grading.report
    since: list[str] = []
    if request.student_view:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.report.views import student_view
        from grader.selfcheck.last_run import History

        report = student_view(report, rubric)
        if report.status == "graded":  # a student's self-check: compared with their last
            history = History(report)
            changed = history.compare(report)
            since = changed.lines() if changed is not None else []
            history.keep(report)
    written = None
    if request.out is not None:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.evidence.manifest import run_manifest
        from grader.evidence.signing import signer_for
        from grader.report.store import ReportStore

        store = ReportStore(request.out, signer=signer_for(request.out))
        store.save(report, grading.archive)
        run_manifest(rubric, "local" if request.local else "host").write(store.directory)
        written = store.report_path(report)
    return HostGraded(report, since, written)


# -- a class ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterRequest:
    """Grade every student of a roster (or a shard of it) into a folder."""

    pack: Pack
    roster: Path
    out: Path
    connection: Connection
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)  # for every student
    shard: tuple[int, int] | None = None  # (K, N): the Kth of N slices
    resume: bool = False  # keep what ``out`` holds of this roster, grade the rest
    ignore_columns: tuple[str, ...] = ()


def grade_roster(
    request: RosterRequest,
    watch: Watch | None = None,
    on_students: Callable[[Sequence[Any]], None] = lambda students: None,
) -> Any:
    """Grade the roster into ``out`` (grader.classrun.run.ClassRun); ``on_students`` hears
    whom before anything is graded, ``watch`` each grading as it goes."""
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.roster import load_roster, shard
    from grader.classrun.run import run_class
    from grader.evidence.manifest import sha256_of
    from grader.evidence.signing import signer_for

    rubric = request.pack.rubric
    rubric.resolve_vars(request.variables)  # what is wrong with them is said before anything
    setup = setup_of(request.connection, rubric)
    students = load_roster(request.roster, rubric, setup.target, ignore=request.ignore_columns)
    if request.shard is not None:
        students = shard(students, *request.shard)
    on_students(students)
    return run_class(
        students,
        request.pack,
        request.variables,
        setup.options,
        request.out,
        roster_sha256=sha256_of(request.roster),
        shard=request.shard,
        workers=setup.workers,
        plan=setup.plan,
        watch=watch,
        resume=request.resume,
        signer=signer_for(request.out),  # a folder inside a course: signed with its key
    )
