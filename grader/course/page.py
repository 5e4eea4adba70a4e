"""The course's pages: the course page (every lab's marks and distribution, who has none and
why, late work, incomplete marks, overrides, flags) and each student's own page, as
{relative path: HTML}; the CLI writes them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from grader.base.clock import now
from grader.base.errors import InputError
from grader.base.files import safe_name
from grader.course.book import Row, utc
from grader.course.config import Course
from grader.report.render.html import environment
from grader.report.render.text import points


def summary_of(rows: Sequence[Row]) -> dict[str, Any]:
    """One lab's figures: how many have a mark, mean, median, the marks' distribution, and
    who is missing, late, incomplete, overridden or flagged."""
    given = [r.mark for r in rows if r.mark is not None]
    most = max((r.max or 0 for r in rows), default=0) or max(given, default=0) or 1
    bands = [0] * 10
    for mark in given:
        bands[min(9, int(10 * mark / most))] += 1
    return {
        "marked": len(given),
        "mean": statistics.mean(given) if given else 0,
        "median": statistics.median(given) if given else 0,
        "bands": [(most * n / 10, most * (n + 1) / 10, c) for n, c in enumerate(bands)]
        if given
        else [],
        "missing": [r for r in rows if r.mark is None],
        "late": [r for r in rows if r.days_late and r.mark is not None],
        "late_work": [r for r in rows if any(f["days_late"] for f in r.filled)],
        "incomplete": [r for r in rows if r.incomplete],
        "older": [r for r in rows if not r.rubric_current],
        "overridden": [r for r in rows if r.overridden],
        "flagged": [r for r in rows if r.flags],
    }


def pages(course: Course, rows: Sequence[Row], notes: Sequence[str] = ()) -> dict[str, str]:
    """course.html and students/<id>.html, from the marks ``rows``; ``notes``: class-level
    notes (what the whole class shares, say)."""

    table = {(r.student, r.lab): r for r in rows}
    students = list(dict.fromkeys(r.student for r in rows))
    summary = {
        lab.id: summary_of([r for r in rows if r.lab == lab.id]) for lab in course.labs.values()
    }
    labs = [
        {"id": lab.id, "due": utc(lab.due), "policy": lab.policy} for lab in course.labs.values()
    ]
    generated = utc(now())
    found = {
        "course.html": environment()
        .get_template("course.html.j2")
        .render(
            title=course.title,
            labs=labs,
            students=students,
            rows=table,
            summary=summary,
            generated=generated,
            points=points,
            notes=list(notes),
        )
    }
    files: dict[str, str] = {}
    for student in students:  # ids whose pages would be one file are never mixed up
        name = safe_name(student).lower()
        if name in files:
            raise InputError(
                f"{files[name]!r} and {student!r} would share the page students/{name}.html: "
                "give one of them another id in the roster"
            )
        files[name] = student
    own = environment().get_template("course_student.html.j2")
    for student in students:
        found[f"students/{safe_name(student)}.html"] = own.render(
            title=course.title, student=student, generated=generated, points=points,
            rows=[r for r in rows if r.student == student],
        )  # fmt: skip
    return found
