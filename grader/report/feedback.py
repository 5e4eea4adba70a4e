"""What a student should fix first: the causes that cost several marks at once.

A check that fails for a reason other checks share names it (``fail(..., cause=...)``, or a
rubric ``depends`` on an item that was lost), and scoring gives it the cause's title and hint
(see grader.engine.scoring). Here lost checks are grouped by cause, so a report says each cause
once, with its hint, before the marks it costs; a cause that costs one mark is just that mark.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.base.results import CheckResult, Report
from grader.base.words import Status


@dataclass(frozen=True)
class FixFirst:
    id: str  # a rubric cause, or the item that must pass first
    title: str
    hint: str
    checks: tuple[CheckResult, ...]  # the lost marks it costs, in the report's order

    @property
    def points(self) -> float:
        return sum(c.max_points for c in self.checks)


def fix_first(report: Report) -> list[FixFirst]:
    """The causes that cost more than one lost mark, in the order of the first mark each costs."""
    lost = [c for c in report.checks if c.lost]
    by_id = {c.id: c for c in lost}
    found: dict[str, list[CheckResult]] = {}
    for check in lost:
        key = check.cause or (check.id if any(c.cause == check.id for c in lost) else None)
        if key is not None:
            found.setdefault(key, []).append(check)
    causes = []
    for key, checks in found.items():
        if len(checks) < 2:
            continue
        item = by_id.get(key)  # the cause is an item that was lost: what is wrong, its hint
        follower = next(c for c in checks if c.id != key)
        causes.append(
            FixFirst(
                key,
                _wrong(item) if item is not None else follower.cause_title,
                item.hint if item is not None else follower.hint,
                tuple(checks),
            )
        )
    return causes


def _wrong(item: CheckResult) -> str:
    """An item as a cause, said as what is wrong: its title says what the lab asks for (a
    service "is enabled"), which under "Fix this first" reads as a fact."""
    if item.status == Status.FAIL and item.message:
        return item.message  # the check's own account of what it found
    return f"not done yet: {item.title}"


def numbered(causes: list[FixFirst]) -> dict[str, int]:
    """Each lost mark a cause costs -> the cause's number under "Fix this first" (from 1): the
    marks a report points there instead of repeating the cause's hint."""
    return {c.id: n for n, cause in enumerate(causes, 1) for c in cause.checks}
