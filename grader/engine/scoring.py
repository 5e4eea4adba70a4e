"""Points: an item earns its points when its check passed, nothing otherwise."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grader.base.results import CheckResult, Outcome
from grader.engine.rubric import Item, Rubric


def score(
    rubric: Rubric, outcomes: Mapping[str, Outcome], system: Sequence[str] = ()
) -> tuple[tuple[CheckResult, ...], float]:
    """Each item's result; ``system`` (what the VM says it is, see grader.machine.system) picks the
    hints written for it."""
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
        points=item.points if outcome.status == "pass" else 0.0,
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
