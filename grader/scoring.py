"""Points: an item earns its points when its check passed, nothing otherwise."""

from __future__ import annotations

from collections.abc import Mapping

from grader.results import CheckResult, Outcome
from grader.rubric import Rubric


def score(rubric: Rubric, outcomes: Mapping[str, Outcome]) -> tuple[tuple[CheckResult, ...], float]:
    results = tuple(
        CheckResult(
            id=item.id,
            section=item.section,
            title=item.title,
            status=outcomes[item.id].status,
            points=item.points if outcomes[item.id].status == "pass" else 0.0,
            max_points=item.points,
            message=outcomes[item.id].message,
            hint=item.hint,
            evidence=outcomes[item.id].evidence,
            error_kind=outcomes[item.id].error_kind,
            visibility=item.visibility,
            notes=outcomes[item.id].notes,
        )
        for item in rubric.items
    )
    return results, sum(r.points for r in results)
