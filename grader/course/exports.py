"""A course's final marks as an LMS import file: a column per lab, out of the lab's maximum,
each student's feedback (how the mark was decided, what was lost), and who they are as the
roster says (name, email, section). Written by the one LMS writer (grader.report.render.lms)."""

from __future__ import annotations

from typing import Any

from grader.report.render.lms import Column, Entry, write
from grader.report.render.text import points


def book_export(
    gradebook: Any, lms: str, feedback: bool = True
) -> tuple[str, list[tuple[str, str, list[str]]]]:
    """The import file, and the marks in it that are incomplete (student, lab, checks)."""

    rows = gradebook.rows()
    labs = list(gradebook.course.labs)
    people = gradebook.people()
    columns = [Column(lab, gradebook.rubric(lab).max_score) for lab in labs]
    grades: dict[str, dict[str, float | None]] = {}
    said: dict[str, dict[str, str]] = {}
    incomplete = []
    for row in rows:
        grades.setdefault(row.student, {})[row.lab] = row.mark
        words = []
        if row.mark is not None and row.max:
            words.append(f"{points(row.mark)} / {points(row.max)}")
        if row.days_late:
            words.append(f"{row.days_late} day(s) late, {row.penalty:.0%} off")
        words += [
            f"{f['check']} decided {f['days_late']} day(s) late, "
            + (f"{f['penalty']:.0%} off" if f["taken"] else "not taken")
            for f in row.filled
            if f["days_late"] and not f["accepted_by"]
        ]
        words += _lost(gradebook, row)
        if row.incomplete:
            words.append("not checked yet: " + ", ".join(row.incomplete))
            incomplete.append((row.student, row.lab, list(row.incomplete)))
        if row.mark is None:
            words.append(row.reason)
        said.setdefault(row.student, {})[row.lab] = "; ".join(words)
    entries = [Entry(s, people.get(s, {}), grades[s], said[s]) for s in grades]
    return write(lms, entries, columns, feedback=feedback), incomplete


def _lost(gradebook: Any, row: Any) -> list[str]:
    """The marks the counting grading lost: visible checks by name, hidden ones as one sum."""
    if row.run is None or row.mark is None:
        return []
    explained = gradebook.explain(row.student, row.lab)
    hidden = {i.id for i in gradebook.rubric(row.lab).items if i.visibility == "hidden"}
    lost = [o for o in explained.decided.outcomes if o.lost]
    shown = [f"{o.id} (-{o.max_points:g})" for o in lost if o.id not in hidden]
    taken = sum(o.max_points for o in lost if o.id in hidden)
    words = ["lost: " + ", ".join(shown)] if shown else []
    if taken:
        words.append(f"checks marked by your instructor only (-{taken:g})")
    return words
