"""Grade one host: connect, run the rubric's checks in dependency order, score, report.

Data flows one way: target + pack -> connection -> checks -> outcomes -> scores -> Report.
One grading path serves a VM over SSH, this machine (``--local``) and a replay of an evidence
archive (``grade regrade``): the executor and the outside view are what differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import testinfra.host

from grader.base.budget import EVIDENCE_LIMIT, Deadline
from grader.base.clock import now as clock
from grader.base.errors import CheckError, HostError
from grader.base.results import Outcome, Redactor, Report, RubricRef
from grader.base.words import ErrorKind
from grader.engine.checkrun import run_checks
from grader.engine.fixtures import check_fixtures
from grader.engine.identity import answered_elsewhere, identify
from grader.engine.pack import Pack
from grader.engine.rubric import Rubric
from grader.engine.scoring import score
from grader.evidence import archive
from grader.evidence.archive import Archive, Replay, ReplayExecutor, ReplayOutside
from grader.machine.backend import make_host
from grader.machine.execution import Silent, Target
from grader.machine.local import LocalExecutor, own_address
from grader.machine.prefetch import MAX_COMMANDS
from grader.machine.system import System
from grader.machine.system import detect as detect_system
from grader.probes import Outside

#: Connection failures worth one more try: the VM may be rebooting or sshd restarting.
TRANSIENT = frozenset({ErrorKind.UNREACHABLE, ErrorKind.TIMEOUT, ErrorKind.CONNECTION_LOST})
#: Digests of one [[unique]] value a report keeps (a mailbox may hold thousands of Message-IDs)
FINGERPRINTS = 100
#: Seconds one pass of a dry run may take (a check that loops on its answers stops there)
DRY_RUN_SECONDS = 5.0
#: What the VM of a dry run says, in the grader's words: that it is Linux (testinfra picks its
#: Linux modules, and their commands, by this answer: the file tests, the socket list)
SAID_IN_A_DRY_RUN = {b"uname -s": b"Linux\n"}


@dataclass(frozen=True)
class Options:
    known_hosts: Any = None  # ssh.KnownHosts (None: no SSH, as with --local)
    connect_timeout: float = 5.0  # TCP connect, SSH greeting and authentication, each
    command_timeout: float = 30.0  # one remote command
    reply_timeout: float = 15.0  # a whole conversation with a service, probing from outside
    host_timeout: float = 300.0  # the whole grading of one host; later checks become errors
    evidence_limit: int | None = EVIDENCE_LIMIT  # bytes of a VM's answers held (--evidence-limit)
    room: Any = None  # a class run's shared Room (grader.base.budget) for those answers
    attempts: int = 2  # connections tried when the failure is transient
    retry_pause: float = 1.0  # seconds between them


@dataclass(frozen=True)
class Setup:
    """How the VMs are reached, from the command line: the runner's options, the connection
    defaults (a roster's rows override them), the prefetch plan, how many at once."""

    options: Options
    target: Any
    plan: Any
    workers: int = 32


def blank_report(target: Any, rubric: Rubric, student: str | None, **fields: object) -> Report:
    """A report with nothing graded yet; ``fields`` fill in what is known."""
    base: dict[str, object] = {
        "host": target.host,
        "student": student,
        "status": "graded",
        "error": None,
        "error_kind": None,
        "score": None,
        "max_score": rubric.max_score,
        "graded_at": now(),
        "duration_s": 0.0,
        "rubric": RubricRef(rubric.title, rubric.sha256),
        "host_key": None,
        "address": None,
        "checks": (),
    }
    return Report(**{**base, **fields})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Grading:
    """One host's report, and the evidence archive of what the host answered (None when it
    could not be graded). ``interrupted``: cancelled under way, so not a result to keep."""

    report: Report
    archive: Archive | None = None
    interrupted: bool = False
    saved: bool = False  # the report and its archive are written already (a class run's)


def grade_host(
    target: Any,
    pack: Pack,
    variables: Mapping[str, str],
    options: Options,
    student: str | None = None,
    plan: Any = None,
    class_scan: Any = None,
    cancel: threading.Event | None = None,
    held: list[Any] | None = None,
) -> Grading:
    """Grade one host over SSH. A transient connection failure (no answer, refused, connection
    lost) is retried after a short pause; the report says how many attempts were made. With a
    ``plan`` (grader.machine.prefetch.Plan), the commands the checks are known to ask run first
    in one round trip: those they ask of a VM that says nothing (``asked_of_silence``: no VM's
    words) and those this VM's own checks asked when it was last graded, which the plan then
    keeps for this VM alone. ``cancel`` ends the grading within a moment. ``held`` gathers the
    backends that may hold the class's room (``options.room``), for the caller to release once
    the archive is saved; without it they are released when the grading ends."""
    backends: list[Any] = [] if held is None else held
    try:
        return _grade_host(
            target, pack, variables, options, student, plan, class_scan, cancel, backends
        )
    finally:
        if held is None:  # its archive is made: what it held of the VM's answers goes
            for backend in backends:
                backend.release()


def _grade_host(
    target: Any,
    pack: Pack,
    variables: Mapping[str, str],
    options: Options,
    student: str | None = None,
    plan: Any = None,
    class_scan: Any = None,
    cancel: threading.Event | None = None,
    held: list[Any] | None = None,
) -> Grading:
    from grader.machine.ssh import connect  # lazy: self-check (its bundle has no paramiko)

    rubric = pack.rubric
    started = time.monotonic()
    graded_at = now()
    deadline = Deadline(options.host_timeout, cancel)
    mask = _mask(target.password, rubric, variables)
    attempt = 0
    while True:
        attempt += 1
        try:
            session = connect(target, options.known_hosts, options.connect_timeout)
            try:
                host = make_host(
                    session, options.command_timeout, deadline, options.evidence_limit, options.room
                )
                if held is not None:
                    held.append(host.backend)
                vm = None
                if plan is not None:
                    vm = machine_of(target, student, session.host_key)
                    known = asked_of_silence(pack, variables, session.address)
                    host.backend.prefetch(list(dict.fromkeys([*known, *plan.kept(vm)])))
                outside = Outside(
                    session.address,
                    rubric.ports,
                    options.connect_timeout,
                    options.reply_timeout,
                    class_scan,
                    deadline,
                    pack.probes,
                )
                try:
                    looked = run_on(host, outside, pack, variables, mask, deadline)
                finally:
                    outside.close()
            except HostError as e:
                e.host_key, e.address = session.host_key, session.address
                raise
            finally:
                session.close()
        except HostError as e:
            if deadline.cancel.is_set():
                return Grading(blank_report(target, rubric, student), interrupted=True)
            if e.kind in TRANSIENT and attempt < options.attempts:
                time.sleep(options.retry_pause)
                continue
            report = blank_report(
                target,
                rubric,
                student,
                status=e.report_status,
                error=str(e),
                error_kind=e.kind,
                host_key=e.host_key,
                address=e.address,
                graded_at=graded_at,
                duration_s=round(time.monotonic() - started, 3),
                attempts=attempt,
            )
            return Grading(report)
        if deadline.cancel.is_set():
            return Grading(blank_report(target, rubric, student), interrupted=True)
        if plan is not None and vm is not None:
            plan.learn(vm, host.backend.asked)
        kept = _archive(
            host,
            outside,
            target,
            rubric,
            student,
            variables,
            options,
            graded_at,
            session.host_key,
            looked.outcomes,
        )
        report = _graded(
            target,
            rubric,
            student,
            looked,
            variables,
            graded_at,
            started,
            host_key=session.host_key,
            address=session.address,
            attempts=attempt,
            round_trips=host.backend.round_trips,
            evidence_sha256=kept.sha256,
            host_key_replaced=session.replaced_key,
        )
        return Grading(report, kept)


def grade_local(
    pack: Pack, variables: Mapping[str, str], options: Options, student: str | None = None
) -> Grading:
    """Grade the machine the grader runs on: commands run here, the outside probes go to this
    machine's own network address."""

    rubric = pack.rubric
    started, graded_at = time.monotonic(), now()
    deadline = Deadline(options.host_timeout)
    host = make_host(LocalExecutor(), options.command_timeout, deadline, options.evidence_limit)
    address = own_address(host)
    target = Target(host=socket.gethostname())
    mask = _mask(None, rubric, variables)
    outside = Outside(
        address,
        rubric.ports,
        options.connect_timeout,
        options.reply_timeout,
        deadline=deadline,
        registry=pack.probes,
        own_machine=True,
    )
    try:
        looked = run_on(host, outside, pack, variables, mask, deadline)
    finally:
        outside.close()
    kept = _archive(
        host, outside, target, rubric, student, variables, options, graded_at, None, looked.outcomes
    )
    report = _graded(
        target,
        rubric,
        student,
        looked,
        variables,
        graded_at,
        started,
        address=address,
        evidence_sha256=kept.sha256,
    )
    return Grading(report, kept)


def regrade(
    report: Report,
    kept: Archive,
    pack: Pack,
    given: Mapping[str, str],
    ssh_password: str | None = None,
) -> Report:
    """Grade ``report``'s host again from its evidence archive instead of the VM: the checks
    get the answers the VM gave then; what was never asked is an error (needs the live VM)."""

    rubric = pack.rubric
    started = time.monotonic()
    replay = Replay(kept, rubric.vars, given, ssh_password)
    variables = rubric.resolve_vars(replay.variables, student=report.student)
    host = make_host(ReplayExecutor(replay), kept.body.limits.command_timeout)
    outside = ReplayOutside(replay, rubric.ports, pack.probes)
    target = Target(host=report.host)
    mask = _mask(ssh_password, rubric, variables)
    cut_off = frozenset(kept.body.cut_off)
    looked = run_on(host, outside, pack, variables, mask, cut_off=cut_off)
    graded = _graded(
        target,
        rubric,
        report.student,
        looked,
        variables,
        kept.body.graded_at,
        started,
        host_key=report.host_key,
        address=report.address,
        attempts=report.attempts,
        round_trips=report.round_trips,
        evidence_sha256=kept.sha256,
        regraded_at=now(),
        host_key_replaced=report.host_key_replaced,
    )
    return dataclasses.replace(graded, duration_s=report.duration_s)


def machine_of(target: Any, student: str | None, host_key: str | None) -> dict[str, Any]:
    """Which machine a plan is kept for: the student, where it is reached, its host key."""
    return {
        "student": student,
        "host": target.host,
        "port": target.port,
        "user": target.user,
        "host_key": host_key,
    }


class _NoProbes(Outside):
    """The outside view of a dry run: no probe is made; each is an error for the check."""

    def _once(self, name: str, key: list[Any], asking: Any) -> Any:
        raise CheckError(f"a dry run makes no probe ({name})")


def asked_of_silence(pack: Pack, variables: Mapping[str, str], address: str) -> list[bytes]:
    """The commands the pack's checks ask of a VM that says nothing: a dry run of the checks
    (and of what the runner asks besides: [[unique]] values, the system, the machine's
    identity) against an executor that answers every command with no output, once with exit
    status 0 and once with 1 (but that it is Linux: SAID_IN_A_DRY_RUN); no network, no outside
    probe. What it asks is built from the lab's definition, the student's variables, the
    VM's address and the grader's own words alone, never from what a VM said: the one set of
    commands that may run on a VM before its own checks ask."""
    rubric = pack.rubric
    found: dict[bytes, None] = {}
    for status in (0, 1):
        deadline = Deadline(DRY_RUN_SECONDS)
        host = make_host(Silent(address, status, SAID_IN_A_DRY_RUN), DRY_RUN_SECONDS, deadline)
        outside = _NoProbes(address, rubric.ports, deadline=deadline, registry=pack.probes)
        fixtures = check_fixtures(host, rubric, variables, outside)
        with contextlib.suppress(Exception):  # a check's own bug is found when it runs
            run_checks(rubric, pack.checks, fixtures, deadline)
        with contextlib.suppress(Exception):
            fingerprints(host, rubric)
        with contextlib.suppress(Exception):
            detect_system(host)
        with contextlib.suppress(Exception):
            identify(host)
        found.update(host.backend.asked)
    return list(found)[:MAX_COMMANDS]


def run_on(
    host: testinfra.host.Host,
    outside: Outside,
    pack: Pack,
    variables: Mapping[str, str],
    mask: Redactor,
    deadline: Deadline | None = None,
    cut_off: frozenset[str] = frozenset(),
) -> Looked:
    """Run the pack's checks on one machine, seen from inside by ``host`` and from outside by
    ``outside``; ``mask`` hides the secrets in what people will read of it. Then what the
    machine is besides the checks' verdicts: its [[unique]] values and its system."""
    rubric = pack.rubric
    fixtures = check_fixtures(host, rubric, variables, outside)
    outcomes = run_checks(rubric, pack.checks, fixtures, deadline, mask, cut_off)
    return Looked(outcomes, fingerprints(host, rubric), detect_system(host), identify(host))


@dataclass(frozen=True)
class Looked:
    """What one grading learned of a machine: each check's outcome, the digests of its
    [[unique]] values, the system it says it is, and which machine answered (see
    grader.engine.identity)."""

    outcomes: dict[str, Outcome]
    fingerprints: dict[str, list[str]]
    system: System
    machine: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def fingerprints(host: testinfra.host.Host, rubric: Rubric) -> dict[str, list[str]]:
    """The values no two students' VMs should share (the rubric's [[unique]]), as short
    digests: a report says whether two VMs share one, never what it is."""
    found = {}
    for unique in rubric.unique:
        try:
            result = host.run(unique.command)
        except (CheckError, HostError):
            continue  # not asked (a replay of an older archive, the deadline): no flag
        values = {line.strip() for line in result.stdout.splitlines() if line.strip()}
        digests = sorted(digest(unique.id, v) for v in values)
        # at most the FINGERPRINTS smallest: the same values give the same ones, on any VM
        found[unique.id] = digests[:FINGERPRINTS]
    return found


def digest(unique_id: str, value: str) -> str:
    """A [[unique]] value as a report keeps it: a short digest, never the value."""
    return hashlib.sha256(f"{unique_id}:{value}".encode()).hexdigest()[:16]


def _mask(password: str | None, rubric: Rubric, variables: Mapping[str, str]) -> Redactor:
    """What people must not read of one grading: the SSH password, the secret variables."""
    return Redactor([password or ""] + [variables.get(v, "") for v in rubric.secret_vars()])


def _archive(
    host: testinfra.host.Host,
    outside: Outside,
    target: Any,
    rubric: Rubric,
    student: str | None,
    variables: Mapping[str, str],
    options: Options,
    graded_at: str,
    host_key: str | None,
    outcomes: Mapping[str, Outcome],
) -> Archive:
    room = options.room if host.backend.took_room else None
    with room.archiving if room is not None else contextlib.nullcontext():
        return archive.record(
            commands=host.backend.drain(),
            probes=outside.answers(),
            student=student,
            host=target.host,
            address=outside.address,
            host_key=host_key,
            graded_at=graded_at,
            rubric=archive.RubricRecord(title=rubric.title, sha256=rubric.sha256),
            variables=variables,
            secret_names=rubric.secret_vars(),
            ssh_password=target.password,
            command_timeout=options.command_timeout,
            cut_off=[
                i
                for i, o in outcomes.items()
                if o.error_kind == ErrorKind.DEADLINE and not o.evidence
            ],
            source=outside.source,
        )


def _graded(
    target: Any,
    rubric: Rubric,
    student: str | None,
    looked: Looked,
    variables: Mapping[str, str],
    graded_at: str,
    started: float,
    **fields: object,
) -> Report:
    # outcomes are masked as the checks ran; the hints are those for the VM's system
    results, total = score(rubric, looked.outcomes, looked.system.ids)
    elsewhere = answered_elsewhere(fields.get("address"), looked.machine)  # type: ignore[arg-type]
    return blank_report(
        target,
        rubric,
        student,
        score=total,
        checks=results,
        graded_at=graded_at,
        duration_s=round(time.monotonic() - started, 3),
        system=looked.system.name,
        system_ids=looked.system.ids,
        variant=rubric.variant(variables),
        fingerprints=looked.fingerprints,
        machine=looked.machine,
        flags=(elsewhere,) if elsewhere else (),
        **fields,
    )


def now() -> str:
    """The time a grading is stamped with (GRADER_NOW when set: see grader.base.clock)."""

    return clock().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
