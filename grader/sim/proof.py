"""A pack's checks proved with mutants (``grade prove --mutants``): the reference graded, its
mutants derived from what its checks read (grader.sim.mutants), each applied where the
reference is (a simulated VM of it, or the live VM over SSH), graded and undone, the VMs
graded again at the end; and the kill matrix of what each mutant did.

What is said as it goes is told to a ``ProofWatch``; what it found is returned
(grader.base.proving). A live VM's session is opened by whoever asks for the proof
(grader.actions.prove, with the grading's own connection) and given here as a ``Place``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import paramiko

from grader.base.errors import CommandTimeout, HostError
from grader.base.proving import MutantsProved, MutantTried, ProofStopped
from grader.base.words import ErrorKind
from grader.sim.fleet import Fleet
from grader.sim.mutants import BACKUPS, Mutant, Unresolved, derive, judge, withheld
from grader.sim.pack import PackScenarios
from grader.sim.vm import VM
from grader.sim.watch import ProofWatch, boot

GRADE = [sys.executable, "-m", "grader"]  # this grader, whatever PATH holds
#: VMs of the reference that take the mutants with an undo, one after another
MUTANT_POOL = 3
#: How a live proof gives the SSH password to the gradings it runs (never on a command line)
PASSWORD_VAR = "GRADER_PROVE_PASSWORD"


def given(fleet: Fleet) -> list[str]:
    """`grade` arguments that give the fleet's grading variables."""
    return [a for k, v in fleet.grading_vars.items() for a in ("--var", f"{k}={v}")]


def verdicts(report: Mapping[str, Any]) -> dict[str, str]:
    """A check's status, a skip saying whether it is a lost mark ("skipped") or not."""
    return {
        c["id"]: c["status"] if c["status"] != "skipped" or c["error_kind"] == ErrorKind.DEPENDENCY
        else f"skipped ({c['error_kind']})"
        for c in report["checks"]
    }  # fmt: skip


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


def vm_place(fleet: Fleet, pack: PackScenarios, vm: VM) -> Place:
    def sh(script: str) -> tuple[int, str, str]:
        done = vm.sh(script, check=False, timeout=120)
        return done.returncode, done.stdout, done.stderr

    return Place(vm.name, sh, lambda only: grade_vm(fleet, pack, vm, only))


def session_place(host: str, session: Any, argv: Sequence[str], env: Mapping[str, str]) -> Place:
    """The live VM ``host``: the mutants' scripts run in the SSH ``session``
    (grader.machine.ssh.Session), each grading is ``grade`` with ``argv`` (its connecting
    options, --format json) and ``env``."""

    def sh(script: str) -> tuple[int, str, str]:
        try:
            done = session.exec(script.encode(), timeout=120)
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

    place = Place(host, sh, grade)
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


def prove_mutants(
    pack: PackScenarios,
    only: Sequence[str],
    limit: int | None,
    watch: ProofWatch,
    live: Place | None = None,
) -> MutantsProved | ProofStopped:
    """Grade the reference (the pack's reference scenario booted, or the ``live`` VM done
    right), derive its mutants from what its checks read (of ``only`` those, at most ``limit``
    of them), grade each, and say which checks no mutant made fail. ``only`` names checks of
    the pack's rubric, and the pack has its reference scenario, unless ``live``."""
    started = time.monotonic()
    problems: list[str] = []
    graded: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    kept_back: dict[str, str] = {}  # mutant -> why it was not applied
    pool: list[Place] = []
    finished = False  # the VMs were graded again at the end
    why_kept: dict[str, str] = {}  # place -> why the originals of its files are kept there
    try:
        with ExitStack() as stack:
            if live:
                what = f"{live.name} (live: the lab done right)"
                pool.append(live)
            else:
                what = f"The reference scenario {pack.reference!r}"
                fleet = stack.enter_context(pack.fleet())
                scenario = pack.scenarios[pack.reference]
                booted = boot(
                    fleet, [(f"reference{n + 1}", scenario) for n in range(MUTANT_POOL)], watch
                )
                pool += [vm_place(fleet, pack, vm) for vm in booted.values()]
            for place in pool:
                left = leftovers(place)
                if left:
                    return ProofStopped(
                        f"{place.name}: {BACKUPS} holds what an earlier proof kept there (the "
                        f"originals of the files its mutants changed: {left}). Put back what you "
                        "need, remove the folder, and prove again.",
                        unreachable=True,
                    )
            first = pool[0].grade(())
            if first is None and live:  # the session reached it: what did the grading say?
                why = pool[0].failed[-1] if pool[0].failed else "no report"
                return ProofStopped(f"{what} could not be graded: {why}", unreachable=True)
            if first is None or first["score"] != first["max_score"]:
                score = (
                    "not graded" if first is None else f"{first['score']:g}/{first['max_score']:g}"
                )
                return ProofStopped(f"{what} must get full marks: it got {score}", False)
            reference = verdicts(first)

            def contents(path: str) -> str | None:
                q = shlex.quote(path)
                status, text, _ = pool[0].sh(f"[ -f {q} ] && [ ! -L {q} ] && head -c 262144 -- {q}")
                return text if status == 0 else None

            made = derive(first["checks"], contents, only, kinds=pack.line_kinds)
            made += [m for m in pack.mutants if not only or set(only) & set(m.read_by)]
            chosen = made[:limit] if limit else made
            resolve = resolver(pool[0])
            for mutant in chosen:
                reason = withheld(mutant, live=bool(live), resolve=resolve)
                if reason:
                    kept_back[mutant.id] = reason
            mutants = [m for m in chosen if m.id not in kept_back]
            watch.planned(
                live.name if live else pack.reference, bool(live), first["score"], len(made),
                len(chosen), len(kept_back),
            )  # fmt: skip
            alone = [m for m in mutants if m.undo is None]  # never live: withheld there
            own = (
                boot(fleet, [(f"mutant{n + 1}", scenario) for n in range(len(alone))], watch)
                if alone
                else {}
            )
            done, counting = 0, threading.Lock()

            def try_one(mutant: Mutant, place: Place) -> None:
                nonlocal done
                try:
                    if mutant.backup:  # kept from here on (the apply may fail after saving)
                        place.originals.pop(mutant.path, None)
                        place.originals[mutant.path] = mutant.backup
                    status, _, err = place.sh(mutant.apply)
                    if status != 0:
                        errors[mutant.id] = f"could not be applied: {err.strip()[:200]}"
                    else:
                        # a file changed: the checks that name it or its folder, no more (each
                        # grading talks to the VM's daemons, and a daemon may turn away an address
                        # that connects too often); a daemon stopped: every check
                        report = place.grade(mutant.read_by if mutant.undo else only)
                        if report is None:
                            errors[mutant.id] = "the VM could not be graded with it"
                        else:
                            graded[mutant.id] = verdicts(report)
                finally:  # Ctrl-C included: a live VM is never left with a mutant applied
                    if mutant.undo is not None:
                        status, _, err = place.sh(mutant.undo)
                        if status != 0:  # the VM is not the reference: no more mutants there
                            place.stuck.append(mutant)
                            kept = (
                                f"; the original of {mutant.path} is kept there at {mutant.backup}"
                                if mutant.backup
                                else ""
                            )
                            problems.append(
                                f"{place.name}: undoing {mutant.description} failed: "
                                f"{err.strip()[:200] or f'exit status {status}'}{kept}; no more "
                                "mutants were applied there"
                            )
                with counting:
                    done += 1
                    number = done
                changed = sorted(
                    c for c, s in graded.get(mutant.id, {}).items() if reference[c] != s
                )
                watch.tried(mutant, number, len(mutants), errors.get(mutant.id), changed)

            stopping = threading.Event()  # Ctrl-C: each VM finishes the mutant it has, no more

            def take(place: Place, share: Sequence[Mutant]) -> None:
                for mutant in share:
                    if stopping.is_set():
                        return
                    if place.stuck:
                        errors[mutant.id] = (
                            f"not applied: undoing {place.stuck[0].description} on {place.name} "
                            "failed"
                        )
                        continue
                    try_one(mutant, place)

            undoable = [m for m in mutants if m.undo is not None]
            shares = [(place, undoable[n :: len(pool)]) for n, place in enumerate(pool)]
            shares += [
                (vm_place(fleet, pack, vm), [m]) for vm, m in zip(own.values(), alone, strict=True)
            ]
            if live:  # one VM: in this thread, so that Ctrl-C undoes the mutant it has
                take(*shares[0])
            else:
                with ThreadPoolExecutor(len(shares)) as workers:
                    try:
                        list(workers.map(lambda pair: take(*pair), shares))
                    except KeyboardInterrupt:
                        stopping.set()
                        raise
            for place in pool:  # each undo put the VM back as it was: graded again, the reference
                again = place.grade(only)
                now = verdicts(again) if again is not None else {}
                moved = [f"{c} {reference[c]} -> {s}" for c, s in now.items() if reference[c] != s]
                if again is None or moved:
                    problems.append(
                        f"{place.name} did not come back to the reference after its mutants "
                        "were undone: " + ("; ".join(moved) if moved else "it could not be graded")
                    )
                    why_kept[place.name] = "it did not come back to the reference"
                elif place.stuck:
                    why_kept[place.name] = "undoing a mutant failed"
                elif place.originals:  # as it was at the start: the originals go
                    status, _, err = place.sh(f"rm -rf -- {shlex.quote(BACKUPS)}")
                    if status == 0:
                        place.originals.clear()
                    else:
                        why_kept[place.name] = (
                            f"they could not be removed: {err.strip()[:200] or status}"
                        )
            finished = True
    finally:  # Ctrl-C and a lost connection included: say where the originals are
        for place in pool if live else ():
            if place.originals:
                why = why_kept.get(place.name, "the proof stopped before the VM was graded again")
                kept = originals_kept(place, why)
                if finished:
                    problems.append(kept)
                else:
                    watch.note(kept)

    matrix = judge(reference, graded, errors)
    checks = list(only) or list(reference)
    survivors = matrix.survivors(checks)
    # a survivor whose mutants were all kept back was not proved here, rather than passing
    unproved = {
        check: reasons
        for check in survivors
        if not any(check in m.read_by for m in mutants)
        and (
            reasons := [kept_back[m.id] for m in chosen if check in m.read_by and m.id in kept_back]
        )
    }
    tried = tuple(
        MutantTried(
            m.id,
            m.description,
            m.read_by,
            changed=matrix.changed.get(m.id),
            error=errors.get(m.id),
            not_applied=kept_back.get(m.id),
        )
        for m in chosen
    )
    return MutantsProved(
        rubric=pack.rubric,
        reference=live.name if live else pack.reference,
        live=bool(live),
        mutants=tried,
        killed={c: matrix.killed_by(c) for c in checks},
        survivors=survivors,
        not_proved=unproved,
        gaps=matrix.gaps(),
        problems=problems,
        originals_kept={p.name: dict(p.originals) for p in pool if live and p.originals},
        seconds=time.monotonic() - started,
    )
