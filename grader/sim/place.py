"""Where a proof applies its mutants (a ``Place``): a simulated VM of the reference, reached
inside its namespaces, or the live VM, through the SSH session of whoever asked for the proof;
each graded with `grade`, as a grading of it would be."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import paramiko

from grader.base.errors import CommandTimeout, HostError
from grader.sim.fleet import Fleet
from grader.sim.mutants import BACKUPS, Mutant, Unresolved
from grader.sim.pack import PackScenarios
from grader.sim.vm import VM
from grader.sim.wayin import Login

GRADE = [sys.executable, "-m", "grader"]  # this grader, whatever PATH holds


def given(fleet: Fleet) -> list[str]:
    """`grade` arguments that give the fleet's grading variables."""
    return [a for k, v in fleet.grading_vars.items() for a in ("--var", f"{k}={v}")]


def report_of(run: subprocess.CompletedProcess[str]) -> tuple[dict[str, Any] | None, str]:
    """A `grade --format json` run's report if it graded the host, else None and why not."""
    try:
        report: dict[str, Any] = json.loads(run.stdout)
    except ValueError:
        return None, run.stderr.strip()[-500:] or f"grade exited {run.returncode}"
    if report.get("status") != "graded":
        return None, str(report.get("error") or report.get("status"))
    return report, ""


def grade_vm(
    fleet: Fleet, pack: PackScenarios, vm: VM, only: Sequence[str] = ()
) -> dict[str, Any] | None:
    """One grading of a simulated VM (of ``only`` those checks and what they depend on), its
    JSON report (None when it could not be graded). The VM's name is its student's (a pack
    with variants builds each VM for the student it is named after)."""
    run = subprocess.run(
        [*GRADE, "--host", vm.address, "--student", vm.name, "--rubric", str(pack.rubric),
         "--identity", str(fleet.identity), "--known-hosts", str(fleet.workdir / "kh"),
         "--cache-dir", str(fleet.workdir / "cache"), *given(fleet), "--format", "json",
         *[a for check in only for a in ("--only", check)]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return report_of(run)[0]


@dataclass(frozen=True)
class Place:
    """Where mutants are applied: a simulated VM of the reference, or the live VM."""

    name: str
    sh: Callable[[str], tuple[int, str, str]]  # a script as root there: status, out, err
    grade: Callable[[Sequence[str]], dict[str, Any] | None]  # (of those checks) its report
    failed: list[str] = field(default_factory=list)  # why a grading gave no report, last last
    #: the mutants whose undo failed there: no more are applied there
    stuck: list[Mutant] = field(default_factory=list)
    #: each file a mutant changed there -> where the original is kept (the latest mutant's)
    originals: dict[str, str] = field(default_factory=dict)
    #: what mutants kept in BACKUPS there (removed once the VM is the reference again)
    backups: set[str] = field(default_factory=set)
    login: Login = field(default_factory=Login)  # how the grader logs in there
    #: opens a second login there and says why it did not (None: it did)
    second_login: Callable[[], str | None] = lambda: None
    #: the answers of the commands the checks ran, there, as the reference gives them
    answers: dict[str, tuple[int, str, str]] = field(default_factory=dict)


def second_login(opened: Callable[[], Any]) -> Callable[[], str | None]:
    """A second login with ``opened`` (a Session, or raising HostError), a command run in it:
    None when it worked, else why not."""

    def log_in() -> str | None:
        try:
            session = opened()
        except HostError as e:
            return str(e)
        try:
            done = session.exec(b"true", timeout=30)
            return None if done.exit_status == 0 else f"`true` exited {done.exit_status}"
        except (HostError, CommandTimeout, paramiko.SSHException, EOFError, OSError) as e:
            return str(e) or type(e).__name__
        finally:
            session.close()

    return log_in


def vm_place(fleet: Fleet, pack: PackScenarios, vm: VM) -> Place:
    def sh(script: str) -> tuple[int, str, str]:
        done = vm.sh(script, check=False, timeout=120)
        return done.returncode, done.stdout, done.stderr

    def opened() -> Any:
        from grader.machine.execution import Target  # lazy: start-up
        from grader.machine.ssh import KnownHosts, connect  # lazy: start-up

        target = Target(vm.address, identity=fleet.identity)
        return connect(target, KnownHosts(fleet.workdir / "kh"), 10)

    return Place(vm.name, sh, lambda only: grade_vm(fleet, pack, vm, only),
                 second_login=second_login(opened))  # fmt: skip


def session_place(
    host: str,
    session: Any,
    argv: Sequence[str],
    env: Mapping[str, str],
    login: Login | None = None,
    opened: Callable[[], Any] | None = None,
) -> Place:
    """The live VM ``host``: the mutants' scripts run in the SSH ``session``
    (grader.machine.ssh.Session), each grading is ``grade`` with ``argv`` (its connecting
    options, --format json) and ``env``; ``login``: how it logs in; ``opened``: a second
    session, as the first was opened (raising HostError when it cannot be)."""

    def sh(script: str) -> tuple[int, str, str]:
        try:
            done = session.exec(script.encode("utf-8", "surrogateescape"), timeout=120)
        except (HostError, CommandTimeout) as e:
            return 255, "", str(e)
        except (paramiko.SSHException, EOFError, OSError) as e:  # the connection lost meanwhile
            return 255, "", f"the SSH connection to {host} was lost: {e}"
        return (
            done.exit_status,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def grade(only: Sequence[str]) -> dict[str, Any] | None:
        run = subprocess.run(
            [*GRADE, *argv, *[a for check in only for a in ("--only", check)]],
            capture_output=True, text=True, check=False, env=dict(env),
        )  # fmt: skip
        report, why = report_of(run)
        if report is None:
            place.failed.append(why)
        return report

    checked = second_login(opened) if opened else (lambda: "no second login could be tried")
    place = Place(host, sh, grade, login=login or Login(), second_login=checked)
    return place


def leftovers(place: Place) -> str:
    """What an earlier proof left in the VM's BACKUPS ("": nothing), a few names of it."""
    q = shlex.quote(BACKUPS)
    status, out, err = place.sh(f"[ ! -e {q} ] && [ ! -L {q} ] || ls -A -- {q} | head -n 4")
    if status != 0:
        return f"it cannot be listed: {err.strip()[:200] or status}"
    return ", ".join(out.split())


def resolver(place: Place) -> Callable[[str], str]:
    """A path as ``place`` resolves it (``readlink -f``, else ``realpath``: its symbolic links
    followed), asked once a path; Unresolved, saying why, when it cannot be."""
    said: dict[str, str | Unresolved] = {}

    def resolve(path: str) -> str:
        if path not in said:
            q = shlex.quote(path)
            status, out, err = place.sh(f"readlink -f -- {q} || realpath -- {q}")
            real = out.removesuffix("\n")
            if status == 0 and real.startswith("/") and "\n" not in real:
                said[path] = real
            else:
                why = " ".join((err or out).split())[:200] or f"exit status {status}"
                said[path] = Unresolved(f"readlink -f and realpath said: {why}")
        found = said[path]
        if isinstance(found, Unresolved):
            raise Unresolved(str(found))
        return found

    return resolve


#: At most this many of a VM's kept originals are named in a message (the folder holds them all)
_NAMED = 8


def originals_kept(place: Place, why: str) -> str:
    """Where the originals of the files the mutants changed are on ``place``, and why kept."""
    named = list(place.originals.items())
    listed = "; ".join(f"{path} at {backup}" for path, backup in named[:_NAMED])
    more = f"; {len(named) - _NAMED} more in {BACKUPS}" if len(named) > _NAMED else ""
    return (
        f"{place.name}: the originals of the files the mutants changed are kept there ({why}), "
        f"each as it was before the proof: {listed}{more}. `cp -a -- ORIGINAL FILE` puts one "
        f"back; remove {BACKUPS} once the VM is as it was."
    )
