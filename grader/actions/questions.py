"""Questions on a check: a student asks staff about a check one of their gradings lost, the
question carrying that grading's evidence for the check; staff answer, and from there regrade
that grading from its archive, grade the VM again, or override the check, each recorded with
the question it answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from grader.actions import book
from grader.actions import requests as asking
from grader.actions.common import Actor, NotFound
from grader.base.errors import InputError
from grader.classrun.regrade import show
from grader.course import questions
from grader.course.gradebook import Gradebook
from grader.course.grading import regrade_run

#: A question's length at most, and how many a student may have waiting at once
LONGEST, WAITING = 1000, 10
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class QuestionRequest:
    lab: str
    run: int  # the grading (the book's run, as the lab's page names it)
    check: str
    text: str


def ask(course: Gradebook, actor: Actor, request: QuestionRequest) -> questions.Question:
    """A student's question on a check their grading lost."""
    student = actor.student
    if actor.staff or student is None:
        raise InputError("a question on a check is a student's, about their own grading")
    if request.lab not in course.course.labs:
        raise NotFound(f"no lab {request.lab!r} here")
    grading = next((g for g in course.book.gradings(student, request.lab) if g.run == request.run),
                   None)  # fmt: skip
    hidden = {i.id for i in course.rubric(request.lab).items if i.visibility == "hidden"}
    outcome = (
        next((o for o in grading.outcomes if o.id == request.check), None) if grading else None
    )
    if outcome is None or request.check in hidden:
        raise NotFound(f"no check {request.check!r} in grading {request.run}")
    if not outcome.lost:
        raise InputError(f"{request.check} did not lose marks in that grading: nothing to ask")
    text = _CONTROL.sub(" ", request.text).strip()
    if not text:
        raise InputError("say what you think is wrong (a line of text)")
    if len(text) > LONGEST:
        raise InputError(f"a question is {LONGEST} characters at most, not {len(text)}")
    if sum(q.open for q in questions.of_student(course.book, student)) >= WAITING:
        raise InputError(f"at most {WAITING} questions wait for an answer at once")
    return questions.add(course.book, student, request.lab, request.run, request.check, text)


def theirs(course: Gradebook, actor: Actor, lab: str | None = None) -> list[questions.Question]:
    """A student's own questions; staff's: those not answered yet."""
    if actor.staff:
        return questions.waiting(course.book)
    return questions.of_student(course.book, actor.student or "", lab)


def evidence(course: Gradebook, actor: Actor, question: questions.Question) -> str:
    """The decision the question is about and every piece of evidence behind it, as ``grade
    show`` prints it (staff's)."""
    actor.must_be_staff("read a grading's evidence")
    grading = next(
        (g for g in course.book.gradings(question.student, question.lab) if g.run == question.run),
        None,
    )
    path = course.book.absolute(grading.report_path) if grading else None
    if path is None:
        return "The grading's report is not in the book any more (dropped?)."
    try:
        return show(path.parent, question.student, question.check, 60)
    except InputError as e:
        return str(e)


@dataclass(frozen=True)
class AnswerRequest:
    question: int
    answer: str
    action: Literal["none", "regrade", "grade", "override"] = "none"
    points: float | None = None  # an override's points for the check


def answer(course: Gradebook, actor: Actor, request: AnswerRequest) -> questions.Question:
    """Staff's answer, and what they did about it (recorded with the question)."""
    actor.must_be_staff("answer questions")
    found = questions.get(course.book, request.question)
    if found is None:
        raise NotFound(f"no question {request.question}")
    if not found.open:
        raise InputError(f"question {found.id} is answered already")
    text = request.answer.strip()
    if not text:
        raise InputError("an answer needs a text (the student reads it)")
    made: int | None = None
    if request.action == "regrade":
        made = regrade_run(course.acting(actor.name), found.lab, found.run, found.student).new
    elif request.action == "grade":
        asked = asking.ask(course, actor, asking.GradeRequest(found.lab, found.student))
        made = asked.request.id
    elif request.action == "override":
        if request.points is None:
            raise InputError("an override gives the check's points")
        made = book.override(
            course, actor,
            book.OverrideRequest(found.student, found.lab, found.check, request.points,
                                 f"question {found.id}: {text}"),
        ).id  # fmt: skip
    questions.answer(course.acting(actor.name).book, found, text, request.action, made)
    answered = questions.get(course.book, found.id)
    assert answered is not None
    return answered
