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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from grader.base.proving import MutantsProved, MutantTried, ProofStopped
from grader.base.words import ErrorKind
from grader.sim.facts import Facts
from grader.sim.fleet import Fleet
from grader.sim.kinds import derive_asked
from grader.sim.mutants import BACKUPS, Mutant, derive, judge, unique, withheld
from grader.sim.pack import PackScenarios
from grader.sim.place import GRADE as GRADE
from grader.sim.place import Place as Place
from grader.sim.place import given as given
from grader.sim.place import leftovers, originals_kept, resolver, vm_place
from grader.sim.place import session_place as session_place
from grader.sim.scenario import Scenario
from grader.sim.vm import VM
from grader.sim.watch import ProofWatch, boot
from grader.sim.wayin import WayIn, way_in

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
    allowed: Sequence[str] = (),
) -> MutantsProved | ProofStopped:
    """Grade the reference (the pack's reference scenario booted, or the ``live`` VM done
    right), derive its mutants from what its checks read (of ``only`` those, at most ``limit``
    of them), grade each, and say which checks no mutant made fail. ``only`` names checks of
    the pack's rubric, and the pack has its reference scenario, unless ``live``. ``allowed``:
    files or folders the VM's owner lets mutants change though a login reads them (--allow).

    The mutants come in rounds, the cheaper first, each for the checks the rounds before left
    alive: those of the files the checks read safely and the ports they talked to (and the
    pack's own); those of what their commands asked by name (a file, a user, a package, a
    service); then those of what their listings hold (every daemon stopped, or made to listen
    on loopback only) and of the files their other commands read (learned with strace)."""
    proof = _Proof(pack, list(only), watch, live, tuple(allowed))
    try:
        with ExitStack() as stack:
            stopped = proof.start(stack)
            if stopped is not None:
                return stopped
            first = proof.first
            facts = Facts(proof.pool[0].sh)
            login = proof.pool[0].login
            proof.way = way_in(login, facts.text, facts.entry, facts.groups_of, allowed)
            made = derive(first["checks"], facts.text, only, kinds=pack.line_kinds)
            made += [m for m in pack.mutants if not only or set(only) & set(m.read_by)]
            made = list(unique(made).values())
            chosen = made[:limit] if limit else made
            mutants = proof.withhold(chosen)
            watch.planned(
                live.name if live else pack.reference, bool(live), first["score"], len(made),
                len(chosen), len(chosen) - len(mutants),
            )  # fmt: skip
            proof.run(mutants)
            rounds = (
                (False, "what their commands asked of users, groups, files, packages, services"),
                (True, "what their lists of processes and sockets hold, the files their "
                       "commands read"),
            )  # fmt: skip
            for listed, what in rounds:
                left = judge(proof.reference, proof.graded, proof.errors).survivors(proof.checks)
                room = None if limit is None else limit - len(chosen)
                if not left or (room is not None and room <= 0):
                    break
                taken = {m.id for m in chosen}
                more = [m for m in derive_asked(first["checks"], facts, left, listed=listed,
                                                own=pack.kinds, line_kinds=pack.line_kinds)
                        if m.id not in taken]  # fmt: skip
                more = more[:room] if room is not None else more
                if more:
                    applied = proof.withhold(more)
                    held = len(more) - len(applied)
                    watch.note(
                        f"{len(more)} more mutant(s) for the {len(left)} check(s) none made "
                        f"fail: {what}" + (f" ({held} not applied)." if held else ".")
                    )
                    proof.run(applied)
                    chosen += more
            proof.finish()
    finally:  # Ctrl-C and a lost connection included: say where the originals are
        proof.tell_originals()
    return proof.found(chosen)


@dataclass
class _Proof:
    """A proof with mutants as it goes: where they are applied, and what each did."""

    pack: PackScenarios
    only: list[str]
    watch: ProofWatch
    live: Place | None
    allowed: tuple[str, ...]
    pool: list[Place] = field(default_factory=list)
    first: dict[str, Any] = field(default_factory=dict)  # the reference's report
    reference: dict[str, str] = field(default_factory=dict)  # check -> its verdict
    way: WayIn = field(default_factory=WayIn)
    graded: dict[str, dict[str, str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    kept_back: dict[str, str] = field(default_factory=dict)  # mutant -> why it was not applied
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant -> that it changed nothing
    problems: list[str] = field(default_factory=list)
    why_kept: dict[str, str] = field(default_factory=dict)  # place -> why originals are kept
    finished: bool = False  # the VMs were graded again at the end
    fleet: Fleet | None = None
    scenario: Scenario | None = None
    resolve: Callable[[str], str] = str
    booted: int = 0  # VMs of their own booted for mutants without an undo
    started: float = field(default_factory=time.monotonic)

    @property
    def checks(self) -> list[str]:
        return self.only or list(self.reference)

    def start(self, stack: ExitStack) -> ProofStopped | None:
        """The places booted or reached, and the reference graded (or why the proof stops)."""
        pack, live = self.pack, self.live
        if live:
            what = f"{live.name} (live: the lab done right)"
            self.pool.append(live)
        else:
            what = f"The reference scenario {pack.reference!r}"
            self.fleet = stack.enter_context(pack.fleet())
            self.scenario = pack.scenarios[pack.reference]
            names = [(f"reference{n + 1}", self.scenario) for n in range(MUTANT_POOL)]
            booted = boot(self.fleet, names, self.watch)
            self.pool += [vm_place(self.fleet, pack, vm) for vm in booted.values()]
        for place in self.pool:
            left = leftovers(place)
            if left:
                return ProofStopped(
                    f"{place.name}: {BACKUPS} holds what an earlier proof kept there (the "
                    f"originals of the files its mutants changed: {left}). Put back what you "
                    "need, remove the folder, and prove again.",
                    unreachable=True,
                )
        first = self.pool[0].grade(())
        if first is None and live:  # the session reached it: what did the grading say?
            why = self.pool[0].failed[-1] if self.pool[0].failed else "no report"
            return ProofStopped(f"{what} could not be graded: {why}", unreachable=True)
        if first is None or first["score"] != first["max_score"]:
            score = "not graded" if first is None else f"{first['score']:g}/{first['max_score']:g}"
            return ProofStopped(f"{what} must get full marks: it got {score}", False)
        self.first, self.reference = first, verdicts(first)
        self.resolve = resolver(self.pool[0])
        return None

    def withhold(self, mutants: Sequence[Mutant]) -> list[Mutant]:
        """The mutants that are applied; why each other is not, kept."""
        for mutant in mutants:
            reason = withheld(mutant, bool(self.live), self.resolve, self.way)
            if reason:
                self.kept_back[mutant.id] = reason
        return [m for m in mutants if m.id not in self.kept_back]

    def run(self, mutants: Sequence[Mutant]) -> None:
        """Each mutant applied, graded and undone: those with an undo shared among the
        places, each without one on a VM of its own (never live: withheld there)."""
        done, counting = 0, threading.Lock()
        stopping = threading.Event()  # Ctrl-C: each VM finishes the mutant it has, no more
        alone = [m for m in mutants if m.undo is None]
        own: dict[str, VM] = {}
        if alone and self.fleet is not None and self.scenario is not None:
            names = [(f"mutant{self.booted + n + 1}", self.scenario) for n in range(len(alone))]
            self.booted += len(alone)
            own = boot(self.fleet, names, self.watch)

        def take(place: Place, share: Sequence[Mutant]) -> None:
            nonlocal done
            for mutant in share:
                if stopping.is_set():
                    return
                if place.stuck:
                    self.errors[mutant.id] = (
                        f"not applied: undoing {place.stuck[0].description} on {place.name} failed"
                    )
                else:
                    self.try_one(mutant, place)
                with counting:
                    done += 1
                    number = done
                changed = sorted(
                    c for c, s in self.graded.get(mutant.id, {}).items() if self.reference[c] != s
                )
                said = self.errors.get(mutant.id) or self.kept_back.get(mutant.id)
                said = said or self.equivalent.get(mutant.id)
                self.watch.tried(mutant, number, len(mutants), said, changed)

        undoable = [m for m in mutants if m.undo is not None]
        shares = [(place, undoable[n :: len(self.pool)]) for n, place in enumerate(self.pool)]
        if self.fleet is not None:
            shares += [(vm_place(self.fleet, self.pack, vm), [m])
                       for vm, m in zip(own.values(), alone, strict=True)]  # fmt: skip
        if self.live:  # one VM: in this thread, so that Ctrl-C undoes the mutant it has
            take(*shares[0])
            return
        with ThreadPoolExecutor(len(shares)) as workers:
            try:
                list(workers.map(lambda pair: take(*pair), shares))
            except KeyboardInterrupt:
                stopping.set()
                raise

    def try_one(self, mutant: Mutant, place: Place) -> None:
        """``mutant`` applied at ``place``, graded (unless a second login no longer opens with
        it, or no command a check ran answers otherwise), and undone, Ctrl-C included."""
        try:
            if mutant.backup:  # kept from here on (the apply may fail after saving)
                place.backups.add(mutant.backup)
                for path, kept in originals_of(mutant).items():
                    place.originals.pop(path, None)
                    place.originals[path] = kept
            for command in mutant.watch:  # as the reference answers (the place is it now)
                if command not in place.answers:
                    place.answers[command] = place.sh(command)
            status, _, err = place.sh(mutant.apply)
            if status != 0:
                self.errors[mutant.id] = f"could not be applied: {err.strip()[:200]}"
                return
            if self.way.checked(mutant, self.resolve):
                why = place.second_login()
                if why is not None:
                    self.kept_back[mutant.id] = (
                        f"with it a second login did not open ({why[:200]}): it would cut "
                        "the grader's own way in (undone at once through the open connection)"
                    )
                    return
            if mutant.watch and all(place.sh(c) == place.answers[c] for c in mutant.watch):
                self.equivalent[mutant.id] = (
                    "equivalent: no command the checks ran answers otherwise with it (not graded)"
                )
                return
            # a file changed: the checks that name it or its folder, no more (each grading
            # talks to the VM's daemons, and a daemon may turn away an address that connects
            # too often); a daemon stopped for good: every check
            report = place.grade(mutant.read_by if mutant.undo else self.only)
            if report is None:
                self.errors[mutant.id] = "the VM could not be graded with it"
            else:
                self.graded[mutant.id] = verdicts(report)
        finally:  # Ctrl-C included: a live VM is never left with a mutant applied
            if mutant.undo is not None:
                status, _, err = place.sh(mutant.undo)
                if status != 0:  # the VM is not the reference: no more mutants there
                    place.stuck.append(mutant)
                    kept = "; ".join(
                        f"the original of {path} is kept there at {backup}"
                        for path, backup in originals_of(mutant).items()
                    )
                    self.problems.append(
                        f"{place.name}: undoing {mutant.description} failed: "
                        f"{err.strip()[:200] or f'exit status {status}'}"
                        + (f"; {kept}" if kept else "")
                        + "; no more mutants were applied there"
                    )

    def finish(self) -> None:
        """Each place graded again: the reference, once every undo put it back."""
        for place in self.pool:
            again = place.grade(self.only)
            now = verdicts(again) if again is not None else {}
            reference = self.reference
            moved = [f"{c} {reference[c]} -> {s}" for c, s in now.items() if reference[c] != s]
            if again is None or moved:
                self.problems.append(
                    f"{place.name} did not come back to the reference after its mutants "
                    "were undone: " + ("; ".join(moved) if moved else "it could not be graded")
                )
                self.why_kept[place.name] = "it did not come back to the reference"
            elif place.stuck:
                self.why_kept[place.name] = "undoing a mutant failed"
            elif place.backups:  # as it was at the start: the originals go
                status, _, err = place.sh(f"rm -rf -- {shlex.quote(BACKUPS)}")
                if status == 0:
                    place.originals.clear()
                    place.backups.clear()
                else:
                    self.why_kept[place.name] = (
                        f"they could not be removed: {err.strip()[:200] or status}"
                    )
        self.finished = True

    def tell_originals(self) -> None:
        for place in self.pool if self.live else ():
            if place.originals:
                why = self.why_kept.get(
                    place.name, "the proof stopped before the VM was graded again"
                )
                kept = originals_kept(place, why)
                if self.finished:
                    self.problems.append(kept)
                else:
                    self.watch.note(kept)

    def found(self, chosen: Sequence[Mutant]) -> MutantsProved:
        matrix = judge(self.reference, self.graded, self.errors)
        checks = self.checks
        survivors = matrix.survivors(checks)
        # a survivor some mutant of what it reads could not be applied to was not proved
        # here, rather than passing with every mutant
        unproved = {
            check: reasons
            for check in survivors
            if (reasons := [self.kept_back[m.id] for m in chosen
                            if check in m.read_by and m.id in self.kept_back])
        }  # fmt: skip
        tried = tuple(
            MutantTried(
                m.id,
                m.description,
                m.read_by,
                changed=matrix.changed.get(m.id),
                error=self.errors.get(m.id),
                not_applied=self.kept_back.get(m.id),
                equivalent=self.equivalent.get(m.id),
            )
            for m in chosen
        )
        live = self.live
        return MutantsProved(
            rubric=self.pack.rubric,
            reference=live.name if live else self.pack.reference,
            live=bool(live),
            mutants=tried,
            killed={c: matrix.killed_by(c) for c in checks},
            survivors=survivors,
            not_proved=unproved,
            gaps=matrix.gaps(),
            problems=self.problems,
            originals_kept={p.name: dict(p.originals) for p in self.pool if live and p.originals},
            seconds=time.monotonic() - self.started,
            equivalent=[m.id for m in chosen if m.id in self.equivalent],
            allowed=self.allowed,
        )


def originals_of(mutant: Mutant) -> dict[str, str]:
    """Each file ``mutant`` changes -> where its original is kept on the VM."""
    if mutant.kept:
        return {path: mutant.backup + path for path in mutant.kept}
    return {mutant.path: mutant.backup} if mutant.backup and mutant.path else {}
