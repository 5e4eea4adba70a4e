"""Grade one host: connect, run the rubric's checks in dependency order, score, report.

Data flows one way: target + rubric -> connection -> checks -> outcomes -> scores -> Report.
"""

from __future__ import annotations

import dataclasses
import socket
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import testinfra.host

from grader import archive, evidence
from grader.archive import Archive, NeedsLiveVM, ReplayExecutor, ReplayOutside, replay_vars
from grader.backend import make_host
from grader.checkload import Check, load_checks
from grader.errors import CheckError, CommandTimeout, HostError
from grader.lab import Lab, Paths
from grader.local import LocalExecutor
from grader.prefetch import Plan
from grader.probes import ClassScan, Outside, own_address
from grader.results import Outcome, Redactor, Report, RubricRef, redact
from grader.rubric import Rubric, bind_checks
from grader.scoring import score
from grader.ssh import KnownHosts, Target, connect

#: What a check may ask for by parameter name.
FIXTURES = ("host", "lab", "outside")
#: Connection failures worth one more try: the VM may be rebooting or sshd restarting.
TRANSIENT = frozenset({"unreachable", "timeout", "connection_lost"})


@dataclass(frozen=True)
class Options:
    known_hosts: KnownHosts
    connect_timeout: float = 5.0  # TCP connect, SSH greeting and authentication, each
    command_timeout: float = 30.0  # one remote command
    reply_timeout: float = 15.0  # a service's greeting or reply to an outside probe
    host_timeout: float = 300.0  # the whole grading of one host; later checks become errors
    attempts: int = 2  # connections tried when the failure is transient
    retry_pause: float = 1.0  # seconds between them


def load_lab_checks(rubric: Rubric) -> dict[str, Check]:
    checks = load_checks(rubric.checks_dir, FIXTURES)
    bind_checks(rubric, checks)
    return checks


def run_check(
    check: Check, fixtures: Mapping[str, object], mask: Redactor | None = None
) -> Outcome:
    """Run one check; its exceptions become its status, never the run's end. What came back
    from the VM is passed through ``mask`` before anything is kept."""
    mask = mask or Redactor()
    with evidence.collect(mask) as seen:
        try:
            check.function(**{name: fixtures[name] for name in check.params})
        except AssertionError as e:
            outcome = Outcome("fail", str(e) or _assert_line(e))
        except pytest.fail.Exception as e:
            outcome = Outcome("fail", e.msg or "failed")
        except pytest.skip.Exception as e:
            outcome = Outcome("skipped", e.msg or "skipped")
        except HostError:
            raise  # the connection is gone: the host, not the check, failed
        except PermissionError as e:
            outcome = Outcome("error", f"needs root: {e}", error_kind="needs_root")
        except CommandTimeout as e:
            outcome = Outcome("error", str(e), error_kind="timeout")
        except NeedsLiveVM as e:
            outcome = Outcome("error", str(e), error_kind="needs_live_vm")
        except CheckError as e:
            outcome = Outcome("error", str(e), error_kind="unavailable")
        except Exception as e:
            message = f"the check itself failed ({check.source}): {type(e).__name__}: {e}"
            outcome = Outcome("error", message, error_kind="check_crashed")
        else:
            outcome = Outcome("pass")
    outcome = dataclasses.replace(outcome, evidence=tuple(seen.evidence), notes=tuple(seen.notes))
    return redact(outcome, mask)


def _assert_line(error: AssertionError) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    line = frames[-1].line if frames else ""
    return f"failed: {line}" if line else "failed"


def run_checks(
    rubric: Rubric,
    checks: Mapping[str, Check],
    fixtures: Mapping[str, object],
    deadline: float | None = None,
    mask: Redactor | None = None,
) -> dict[str, Outcome]:
    """Run the checks in dependency order; past ``deadline`` (time.monotonic()) the checks not
    yet started are errors, so one VM can never hold a class up for long."""
    outcomes: dict[str, Outcome] = {}
    for item in rubric.items:  # dependency order
        blocked = [d for d in item.depends if outcomes[d].status != "pass"]
        if deadline is not None and time.monotonic() > deadline:
            outcomes[item.id] = Outcome(
                "error",
                "not checked: grading this host took longer than its time limit (--host-timeout)",
                error_kind="deadline",
            )
        elif blocked:
            outcomes[item.id] = Outcome(
                "skipped", f"not checked: {', '.join(blocked)} must pass first"
            )
            # Still asked, with its verdict thrown away: its answers go into the evidence
            # archive, so a regrade with this dependency dropped needs no live VM.
            run_check(checks[item.id], fixtures, mask)
        else:
            outcomes[item.id] = run_check(checks[item.id], fixtures, mask)
    return outcomes


def blank_report(target: Target, rubric: Rubric, student: str | None, **fields: object) -> Report:
    """A report with nothing graded yet; ``fields`` fill in what is known."""
    base: dict[str, object] = {
        "host": target.host,
        "student": student,
        "status": "graded",
        "error": None,
        "error_kind": None,
        "score": None,
        "max_score": rubric.max_score,
        "graded_at": _now(),
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
    could not be graded)."""

    report: Report
    archive: Archive | None = None


def grade_host(
    target: Target,
    rubric: Rubric,
    checks: Mapping[str, Check],
    variables: Mapping[str, str],
    options: Options,
    student: str | None = None,
    plan: Plan | None = None,
    class_scan: ClassScan | None = None,
) -> Grading:
    """Grade one host over SSH. A transient connection failure (no answer, refused, connection
    lost) is retried after a short pause; the report says how many attempts were made. With a
    ``plan``, the commands the checks are known to ask run first in one round trip, and the
    plan learns what this host's checks asked."""
    started = time.monotonic()
    graded_at = _now()
    deadline = started + options.host_timeout
    mask = _mask(target, rubric, variables)
    attempt = 0
    while True:
        attempt += 1
        try:
            session = connect(target, options.known_hosts, options.connect_timeout)
            try:
                host = make_host(session, options.command_timeout)
                if plan is not None:
                    host.backend.prefetch(plan.commands())
                outside = Outside(
                    session.address,
                    rubric.ports,
                    options.connect_timeout,
                    options.reply_timeout,
                    class_scan,
                )
                outcomes = run_on(host, outside, rubric, checks, variables, mask, deadline)
            except HostError as e:
                e.host_key, e.address = session.host_key, session.address
                raise
            finally:
                session.close()
        except HostError as e:
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
        if plan is not None:
            plan.learn(host.backend.asked)
        kept = _archive(
            host,
            outside,
            target,
            rubric,
            student,
            variables,
            options,
            graded_at,
            mask,
            session.host_key,
        )
        report = _graded(
            target,
            rubric,
            student,
            outcomes,
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
    rubric: Rubric, checks: Mapping[str, Check], variables: Mapping[str, str], options: Options
) -> Grading:
    """Grade the machine the grader runs on: commands run here, the outside probes go to this
    machine's own network address."""
    started, graded_at = time.monotonic(), _now()
    host = make_host(LocalExecutor(), options.command_timeout)
    address = own_address(host)
    deadline = started + options.host_timeout
    target = Target(host=socket.gethostname())
    mask = _mask(target, rubric, variables)
    outside = Outside(address, rubric.ports, options.connect_timeout, options.reply_timeout)
    outcomes = run_on(host, outside, rubric, checks, variables, mask, deadline)
    kept = _archive(host, outside, target, rubric, None, variables, options, graded_at, mask, None)
    report = _graded(
        target,
        rubric,
        None,
        outcomes,
        graded_at,
        started,
        address=address,
        evidence_sha256=kept.sha256,
    )
    return Grading(report, kept)


def regrade(
    report: Report,
    archive: Archive,
    rubric: Rubric,
    checks: Mapping[str, Check],
    given: Mapping[str, str],
) -> Report:
    """Grade ``report``'s host again from its evidence archive instead of the VM: the checks
    get the answers the VM gave then; what was never asked is an error (needs the live VM)."""
    started = time.monotonic()
    variables = rubric.resolve_vars(replay_vars(archive, rubric.vars, given))
    host = make_host(ReplayExecutor(archive), archive.body.limits.command_timeout)
    outside = ReplayOutside(archive, rubric.ports)
    target = Target(host=report.host)
    outcomes = run_on(host, outside, rubric, checks, variables, _mask(target, rubric, variables))
    graded = _graded(
        target,
        rubric,
        report.student,
        outcomes,
        archive.body.graded_at,
        started,
        host_key=report.host_key,
        address=report.address,
        attempts=report.attempts,
        round_trips=report.round_trips,
        evidence_sha256=archive.sha256,
        regraded_at=_now(),
        host_key_replaced=report.host_key_replaced,
    )
    return dataclasses.replace(graded, duration_s=report.duration_s)


def run_on(
    host: testinfra.host.Host,
    outside: Outside,
    rubric: Rubric,
    checks: Mapping[str, Check],
    variables: Mapping[str, str],
    mask: Redactor,
    deadline: float | None = None,
) -> dict[str, Outcome]:
    """Run the rubric's checks on one machine, seen from inside by ``host`` and from outside
    by ``outside``; ``mask`` hides the secrets in what they find."""
    fixtures = {"host": host, "lab": Lab(Paths(rubric.paths), variables), "outside": outside}
    return run_checks(rubric, checks, fixtures, deadline, mask)


def _mask(target: Target, rubric: Rubric, variables: Mapping[str, str]) -> Redactor:
    """The secrets of one grading: the SSH password and the rubric's secret variables."""
    return Redactor([target.password or ""] + [variables[v] for v in rubric.secret_vars()])


def _archive(
    host: testinfra.host.Host,
    outside: Outside,
    target: Target,
    rubric: Rubric,
    student: str | None,
    variables: Mapping[str, str],
    options: Options,
    graded_at: str,
    mask: Redactor,
    host_key: str | None,
) -> Archive:
    return archive.record(
        commands=host.backend.answers(),
        probes=outside.answers(),
        student=student,
        host=target.host,
        address=outside.address,
        host_key=host_key,
        graded_at=graded_at,
        rubric=archive.RubricRecord(title=rubric.title, sha256=rubric.sha256),
        variables=variables,
        secret_names=rubric.secret_vars(),
        mask=mask,
        command_timeout=options.command_timeout,
    )


def _graded(
    target: Target,
    rubric: Rubric,
    student: str | None,
    outcomes: Mapping[str, Outcome],
    graded_at: str,
    started: float,
    **fields: object,
) -> Report:
    results, total = score(rubric, outcomes)  # outcomes are masked as the checks ran
    return blank_report(
        target,
        rubric,
        student,
        score=total,
        checks=results,
        graded_at=graded_at,
        duration_s=round(time.monotonic() - started, 3),
        **fields,
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
