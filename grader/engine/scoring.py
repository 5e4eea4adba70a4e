"""Points: the one rule that settles each check of a grading, and a report's results from it.

``settle`` takes a grading's verdicts, the rubric's items with their ``depends`` and the check
overrides in force, and gives each check's outcome as it counts and its points. The runner
settles a grading with it as its checks give their verdicts (grader.engine.runner); the book's
marks settle a recorded grading again with the overrides in force (grader.course.marks, which
``book show``, ``book explain``, the course page and the exports read). A report and a mark
cannot disagree on what a dependency or an override does: this is the only place it is said.

Item by item, in the rubric's order (every item after the items it depends on):

* a check override (a TA's points for the check) sets it: pass when it gives points, fail when
  it gives none, its points as given;
* an item the recorded grading lacks is an error: not recorded;
* a check its grading did not run (its time limit had passed) is not checked, whatever it
  depends on;
* a check an item it depends on did not pass for is skipped, whatever its own verdict (the
  runner still asks it, ahead, for the evidence): lost when one of them was lost (its cause the
  first one lost), not checked when none was; a verdict that needs a variable says so now;
* else its own verdict stands. An item earns its points when its check passed, else nothing.

A recorded grading's outcomes were settled so when it was graded. Scored again, each keeps its
words: one skipped then for a lost dependency has no verdict of its own on record, so it stays
as it was while a dependency is still lost, is not checked while one is not checked, and once
an override passes what it depends on it is not checked either (``OVERRIDDEN_DEPENDENCY``: for
a person to override or grade again). A recorded outcome that a dependency not checked now
holds up is not checked, with its words; one that a dependency lost now holds up (an override
failed it) is lost like a live one.

``score`` turns settled outcomes into a report's results: each check's points, and the hint of
what a lost one comes from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Union

from grader.base.evidence import Evidence
from grader.base.results import LOST_DEPENDENCY, CheckResult, CheckStatus, Outcome, is_lost
from grader.base.words import ErrorKind, Status
from grader.engine.rubric import Item, Rubric

#: The kind of "skipped" of a check a dependency not checked holds up (no lost mark)
NOT_CHECKED_DEPENDENCY = ErrorKind.DEPENDENCY_NOT_CHECKED
#: The kind of "not checked" the book gives a check whose dependency an override passed, when
#: its own verdict was never recorded
OVERRIDDEN_DEPENDENCY = ErrorKind.DEPENDENCY_OVERRIDDEN
NOT_ON_RECORD = (
    "not checked: an override passed what it depends on, and its own verdict was not recorded "
    "(override it too, or grade again)"
)


class Scorable(Protocol):
    """What the rule needs of a rubric item (grader.engine.rubric.Item, or an ItemSpec)."""

    @property
    def id(self) -> str: ...

    @property
    def points(self) -> float: ...

    @property
    def depends(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class ItemSpec:
    """What scoring needs of a rubric item, as the book keeps each rubric's."""

    id: str
    points: float
    depends: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckOverride:
    """A TA's points for one check, with who and why."""

    check: str
    value: float
    by: str
    reason: str
    max_points: float | None = None  # the check's points when the override was made


@dataclass(frozen=True)
class NotRun:
    """A check its grading did not run (its time limit had passed); ``outcome`` says so."""

    outcome: Outcome


@dataclass(frozen=True)
class OnRecord:
    """A check's outcome as a recorded grading kept it (settled by this rule when graded)."""

    outcome: Outcome

    @property
    def not_on_record(self) -> bool:
        """Skipped then for a lost dependency: its own verdict was never recorded (a skip of no
        kind is from a report made before kinds, when every skip was one)."""
        return self.outcome.status == Status.SKIPPED and self.outcome.error_kind in (
            LOST_DEPENDENCY,
            None,
        )


#: A check's verdict as the rule takes it: its own (it ran, or ran ahead of a dependency that
#: did not pass), not run, or as a recorded grading kept it
Verdict = Union[Outcome, NotRun, OnRecord]


@dataclass(frozen=True)
class Settled:
    """One check's outcome as it counts, and its points out of ``max_points``: what ``settle``
    gives, and what the book keeps of each check of each grading (without the evidence)."""

    id: str
    status: CheckStatus
    points: float
    max_points: float
    error_kind: str | None = None
    cause: str | None = None
    message: str = ""
    evidence: tuple[Evidence, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def lost(self) -> bool:
        return is_lost(self.status, self.error_kind)

    @property
    def checked(self) -> bool:
        return self.status == Status.PASS or self.lost

    @property
    def outcome(self) -> Outcome:
        """The outcome without its check's id and points."""
        return Outcome(
            self.status, self.message, self.evidence, self.error_kind, self.notes, self.cause
        )


def earned(points: float, status: str) -> float:
    """What a check worth ``points`` earns: all of them when it passed, else nothing."""
    return points if status == Status.PASS else 0.0


def settle(
    items: Sequence[Scorable],
    verdicts: Mapping[str, Verdict],
    overrides: Mapping[str, CheckOverride] = {},
) -> tuple[Settled, ...]:
    """Each item's check as it counts, in the rubric's order (see the module's docstring)."""
    settled: dict[str, Settled] = {}
    for item in items:
        override = overrides.get(item.id)
        if override is not None:
            status: CheckStatus = "pass" if override.value > 0 else "fail"
            outcome = Outcome(status, f"set by {override.by}: {override.reason}")
            points = override.value
        else:
            outcome = _decided(item, verdicts.get(item.id), settled)
            points = earned(item.points, outcome.status)
        settled[item.id] = Settled(
            item.id, outcome.status, points, item.points, outcome.error_kind, outcome.cause,
            outcome.message, outcome.evidence, outcome.notes,
        )  # fmt: skip
    return tuple(settled[item.id] for item in items)


def _decided(item: Scorable, verdict: Verdict | None, settled: Mapping[str, Settled]) -> Outcome:
    if verdict is None:  # an item this grading's rubric has and its record lacks
        return Outcome("error", "not in the recorded grading", error_kind=ErrorKind.NOT_RECORDED)
    if isinstance(verdict, NotRun):
        return verdict.outcome
    blocked = [d for d in item.depends if d in settled and settled[d].status != Status.PASS]
    if blocked:
        return _held_up(verdict, blocked, [d for d in blocked if settled[d].lost])
    if isinstance(verdict, OnRecord):
        if verdict.not_on_record and item.depends:  # an override passed what held it up
            return _not_checked(verdict.outcome, OVERRIDDEN_DEPENDENCY, NOT_ON_RECORD)
        return verdict.outcome
    return verdict


def _held_up(verdict: Outcome | OnRecord, blocked: list[str], lost: list[str]) -> Outcome:
    """A check that ``blocked`` (what it depends on that did not pass, ``lost`` of them lost)
    holds up."""
    also = ""
    if isinstance(verdict, OnRecord):
        recorded = verdict.outcome
        if verdict.not_on_record:
            return recorded if lost else _not_checked(recorded, NOT_CHECKED_DEPENDENCY)
        if not lost:
            return _not_checked(recorded, NOT_CHECKED_DEPENDENCY)
    elif (
        verdict.error_kind == ErrorKind.NEEDS_VARIABLE
    ):  # what it will need once they pass, said now
        also = "; it will also " + verdict.message.replace("needs ", "need ", 1)
    return Outcome(
        "skipped",
        f"not checked: {', '.join(blocked)} must pass first{also}",
        error_kind=LOST_DEPENDENCY if lost else NOT_CHECKED_DEPENDENCY,
        # the dependency lost: score follows it to what it comes from in turn
        cause=lost[0] if lost else None,
    )


def _not_checked(outcome: Outcome, kind: str, message: str | None = None) -> Outcome:
    return dataclasses.replace(
        outcome, status="skipped", error_kind=kind, message=outcome.message if message is None
        else message,
    )  # fmt: skip


def score(
    rubric: Rubric, outcomes: Mapping[str, Outcome], system: Sequence[str] = ()
) -> tuple[tuple[CheckResult, ...], float]:
    """Each item's result from its settled outcome (see ``settle``); ``system`` (what the VM
    says it is, see grader.machine.system) picks the hints written for it."""
    results = tuple(_result(rubric, item, outcomes, system) for item in rubric.items)
    return results, sum(r.points for r in results)


def _result(
    rubric: Rubric, item: Item, outcomes: Mapping[str, Outcome], system: Sequence[str]
) -> CheckResult:
    outcome = outcomes[item.id]
    # a failure with a cause gets the cause's hint: it fits the reason, not only the check
    named = outcome.cause if outcome.lost else None
    seen = {item.id}
    while named is not None and named in outcomes and named not in seen:  # another item
        if not outcomes[named].lost:
            named = None  # an item that passed is not what to fix
            break
        seen.add(named)
        if outcomes[named].cause is None:
            break  # that item is the cause
        named = outcomes[named].cause  # what it comes from in turn
    cause = rubric.cause_of(named) if named != item.id else None
    return CheckResult(
        id=item.id,
        section=item.section,
        title=item.title,
        status=outcome.status,
        points=earned(item.points, outcome.status),
        max_points=item.points,
        message=outcome.message,
        hint=(cause.hint_for(system) if cause is not None else "") or item.hint_for(system),
        evidence=outcome.evidence,
        error_kind=outcome.error_kind,
        visibility=item.visibility,
        notes=outcome.notes,
        cause=cause.id if cause is not None else None,
        cause_title=cause.title if cause is not None else "",
    )
