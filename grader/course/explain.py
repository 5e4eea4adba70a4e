"""``grade book explain STUDENT LAB``: one screen that says what a student's mark is and why.

The grading that counts and why (the policy, the due time with any extension, lateness and its
penalty), each check's points in it and where they came from (the grading itself, a later
grading that checked what it could not, with that grading's lateness, an override), the
overrides in force (who, when, why), what is still not checked, questions for staff, gradings
imported on staff's word without a replay, and the report's path.
"""

from __future__ import annotations

from typing import Any

from grader.base.words import Status
from grader.course.book import Explained, utc
from grader.report.render.text import points


def explanation(gradebook: Any, explained: Explained) -> str:
    row, decided = explained.row, explained.decided
    lab = gradebook.course.lab(row.lab)
    lines = [f"{row.student}, {row.lab}: " + _mark(row)]
    extended = explained.due != lab.due
    lines.append(
        f"  due {utc(explained.due)}"
        + (f" (an extension; the lab's is {utc(lab.due)})" if extended else "")
        + (f", grace {lab.late.grace_minutes:g} min" if lab.late.grace_minutes else "")
        + f"; policy {row.policy}"
        + (
            f"; late: {lab.late.per_day:.0%} a day, at most {lab.late.max:.0%}"
            if lab.late.per_day
            else ""
        )
    )
    grading = decided.grading
    if grading is None:
        lines.append(f"  No grading counts: {row.reason}.")
        lines += _trusted(row) + _gradings(explained)
        return "\n".join(lines) + "\n"
    late = f", {row.days_late} day(s) late: {row.penalty:.0%} off" if row.days_late else ", on time"
    lines.append(
        f"  Counts: run {grading.run}"
        + (f" (a shard of class grading {grading.batch})" if grading.batch else "")
        + f", the VM as seen {utc(grading.at)}{late}"
        + (f" (marked again in run {grading.version})" if grading.version != grading.run else "")
    )
    path = gradebook.book.absolute(grading.report_path)
    lines.append(f"  Report: {path}")
    if not row.rubric_current:
        lines.append(
            f"  Marked with an older rubric ({(row.rubric_sha256 or '')[:12]}) than {row.lab}'s "
            "current one: `grade course regrade LAB` marks it again"
        )
    filled = {f.check: f for f in decided.filled}
    overridden = {o["check"]: o for o in explained.overrides}
    lines.append("  Checks:")
    width = max((len(o.id) for o in decided.outcomes), default=10)
    for o in decided.outcomes:
        where = ""
        if o.id in overridden:
            made = overridden[o.id]
            where = f"  override by {made['by']} {made['at']}: {made['reason']}"
        elif o.id in filled:
            where = f"  from the grading of {utc(filled[o.id].at)} (run {filled[o.id].run})"
            where += _late(filled[o.id])
        word = "lost" if o.lost else ("pass" if o.status == Status.PASS else "NOT CHECKED")
        lines.append(
            f"    {o.id:<{width}}  {points(o.points):>4} / {points(o.max_points):<4} {word}{where}"
        )
    if row.incomplete:
        lines.append(
            f"  Incomplete: {', '.join(row.incomplete)} could not be checked; not lost marks. "
            "`grade course due` grades the student again; or override the checks."
        )
    if None in overridden:
        made = overridden[None]
        lines.append(
            f"  The mark is set by hand: {points(made['value'])} by {made['by']} {made['at']}: "
            f"{made['reason']} (before: {made['before']})"
        )
    lines += [f"  Note: {n}" for n in row.notes]
    for flag in row.flags:
        lines.append(f"  Question for staff ({flag['kind']}): {flag['message']}")
    lines += _trusted(row)
    lines += _gradings(explained)
    return "\n".join(lines) + "\n"


def _late(fill: Any) -> str:
    """What a check decided by a later grading costs for its lateness."""
    if not fill.days_late:
        return ", on time"
    late = f", {fill.days_late} day(s) after the due time"
    if fill.accepted is not None:
        return f"{late}, accepted as on time by {fill.accepted.by}: {fill.accepted.reason}"
    if not fill.taken:
        return f"{late}: late work this lab does not take, so lost"
    return f"{late}: late work, {fill.penalty:.0%} off its points"


def _mark(row: Any) -> str:
    if row.mark is None:
        return "no mark"
    text = f"{points(row.mark)}" + (f" / {points(row.max)}" if row.max else "")
    if row.days_late or any(f["penalty"] for f in row.filled if f["days_late"]):
        text += f" ({points(row.score)} before the late penalty)"
    if row.incomplete:
        text += " (incomplete)"
    return text


def _trusted(row: Any) -> list[str]:
    """The gradings imported on staff's word (grade book import --trust-unreplayed)."""
    return [
        f"  Taken on trust: run {t['run']} was imported by {t['by']} {t['at']} without a "
        f"replay of its evidence ({t['why']}): {t['reason']}"
        for t in row.trusted
    ]


def _gradings(explained: Explained) -> list[str]:
    if not explained.gradings:
        return ["  Gradings: none recorded"]
    lines = ["  Gradings:"]
    for g in sorted(explained.gradings, key=lambda g: (g.at, g.run)):
        what = (
            f"{points(sum(o.points for o in g.outcomes))} / {points(g.max_score)}"
            if g.status == "graded"
            else f"not graded ({g.status})"
        )
        counts = "  <- counts" if explained.decided.run == g.run else ""
        lines.append(f"    run {g.run}: the VM as seen {utc(g.at)}: {what}{counts}")
    return lines
