"""Questions on a check: a student asks staff about a check one of their gradings lost ("I
think this is wrong"), and staff answer, saying what they did (regraded that grading from its
evidence, graded the VM again, overrode the check, or nothing), which the question keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.course.book import Book, parse_utc, questions, utc

#: What staff did about a question
ACTIONS = ("none", "regrade", "grade", "override")


@dataclass(frozen=True)
class Question:
    id: int
    student: str
    lab: str
    run: int
    check: str
    text: str
    asked_at: datetime
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None
    action: str | None
    made: int | None  # the run, request or override the action made

    @property
    def open(self) -> bool:
        return self.answered_at is None


def _question(row: Any) -> Question:
    return Question(
        int(row.id), row.student, row.lab, int(row.run_id), row.check_id, row.text,
        parse_utc(row.asked_at), row.answer, row.answered_by,
        parse_utc(row.answered_at) if row.answered_at else None, row.action, row.made,
    )  # fmt: skip


def add(book: Book, student: str, lab: str, run: int, check: str, text: str) -> Question:
    with book.engine.begin() as connection:
        key = connection.execute(
            sa.insert(questions).values(
                student=student, lab=lab, run_id=run, check_id=check, text=text,
                asked_at=utc(now()),
            )
        ).inserted_primary_key  # fmt: skip
    found = get(book, int(key[0]) if key else 0)
    assert found is not None
    return found


def get(book: Book, question_id: int) -> Question | None:
    with book.engine.connect() as connection:
        row = connection.execute(sa.select(questions).where(questions.c.id == question_id)).first()
    return _question(row) if row is not None else None


def of_student(book: Book, student: str, lab: str | None = None) -> list[Question]:
    query = sa.select(questions).where(questions.c.student == student)
    if lab is not None:
        query = query.where(questions.c.lab == lab)
    with book.engine.connect() as connection:
        return [_question(r) for r in connection.execute(query.order_by(questions.c.id))]


def waiting(book: Book) -> list[Question]:
    """Every question not answered yet, oldest first."""
    query = sa.select(questions).where(questions.c.answered_at.is_(None))
    with book.engine.connect() as connection:
        return [_question(r) for r in connection.execute(query.order_by(questions.c.id))]


def answer(book: Book, question: Question, text: str, action: str, made: int | None) -> None:
    """Staff's answer (as ``book.by``), with what they did."""
    with book.engine.begin() as connection:
        connection.execute(
            sa.update(questions)
            .where(questions.c.id == question.id, questions.c.answered_at.is_(None))
            .values(answer=text, answered_by=book.by, answered_at=utc(now()), action=action,
                    made=made)
        )  # fmt: skip
