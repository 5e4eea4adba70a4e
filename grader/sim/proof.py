"""A pack's checks proved with mutants (``grade prove --mutants``): the reference graded, its
mutants derived from what its checks read (grader.sim.mutants), each applied where the
reference is (a simulated VM of it, or the live VM over SSH), graded and undone, the VMs
graded again at the end; and the kill matrix of what each mutant did.

What is said as it goes is told to a ``ProofWatch``; what it found is returned
(grader.base.proving). A live VM's session is opened by whoever asks for the proof
(grader.actions.prove, with the grading's own connection) and given here as a ``Place``.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from grader.base.proving import MutantsProved, MutantTried, ProofStopped
from grader.base.words import ErrorKind
from grader.sim.mutants import BACKUPS, Mutant, derive, judge, withheld
from grader.sim.pack import PackScenarios
from grader.sim.place import GRADE as GRADE
from grader.sim.place import Place as Place
from grader.sim.place import given as given
from grader.sim.place import leftovers, originals_kept, resolver, vm_place
from grader.sim.place import session_place as session_place
from grader.sim.watch import ProofWatch, boot

#: VMs of the reference that take the mutants with an undo, one after another
MUTANT_POOL = 3
#: How a live proof gives the SSH password to the gradings it runs (never on a command line)
PASSWORD_VAR = "GRADER_PROVE_PASSWORD"


def verdicts(report: Mapping[str, Any]) -> dict[str, str]:
    """A check's status, a skip saying whether it is a lost mark ("skipped") or not."""
    return {
        c["id"]: c["status"] if c["status"] != "skipped" or c["error_kind"] == ErrorKind.DEPENDENCY
        else f"skipped ({c['error_kind']})"
        for c in report["checks"]
    }  # fmt: skip


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
