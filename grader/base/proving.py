"""What a proof of a pack's checks found (``grade prove``): plain records that the prover
(grader.sim) makes and the renderers (grader.report.render.proof) draw."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ScenariosProved:
    """Every scenario of a pack graded: what is wrong with its checks ([]: they prove it)."""

    rubric: Path
    problems: list[str]
    graded: dict[str, dict[str, str]]  # scenario -> check -> status


@dataclass(frozen=True)
class MutantTried:
    """One mutant of the reference, and what became of it."""

    id: str
    description: str
    read_by: tuple[str, ...]  # the checks whose evidence it was derived from
    changed: Mapping[str, str] | None  # check -> its new verdict (None: not graded with it)
    error: str | None  # why it was not graded (it could not be applied, the VM not graded)
    not_applied: str | None  # why it was withheld (None: it was applied)
    #: why it was not graded though applied: no command the checks ran answered otherwise
    equivalent: str | None = None

    @property
    def applied(self) -> bool:
        return self.not_applied is None


@dataclass(frozen=True)
class MutantsProved:
    """The kill matrix: which mutants made each check fail, and what that proves."""

    rubric: Path
    reference: str  # the reference scenario's name, or the live VM's address
    live: bool  # the reference is a live VM (over SSH), not a simulated one
    mutants: tuple[MutantTried, ...]  # every mutant taken (--max), in order
    killed: dict[str, list[str]]  # check -> the mutants that made it fail, for every check
    survivors: list[str]  # the checks no mutant made fail
    not_proved: dict[str, list[str]]  # survivor -> why each mutant of what it reads was withheld
    gaps: list[str]  # mutants graded that changed no verdict
    problems: list[str]  # what went wrong on a VM (an undo that failed ...)
    originals_kept: dict[str, dict[str, str]]  # live VM -> file -> where its original is
    seconds: float  # how long the proof took
    equivalent: list[str] = field(default_factory=list)  # mutants no command answered otherwise to
    allowed: tuple[str, ...] = ()  # what --allow let mutants change though a login reads it

    @property
    def proved(self) -> bool:
        """Every check was killed, and nothing went wrong."""
        return not self.survivors and not self.problems


@dataclass(frozen=True)
class ProofStopped:
    """A proof with mutants that stopped before any mutant, and why (``why``, for people)."""

    why: str
    #: the VM could not be reached or graded (a live VM; one that holds what an earlier proof
    #: kept there); else the reference did not get full marks (a simulated reference that
    #: could not be graded included: that is the pack's to mend)
    unreachable: bool
