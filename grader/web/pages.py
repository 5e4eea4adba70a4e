"""The pages: each route reads what it was given, calls one action, and renders the result.
Every page works without JavaScript; a request's page polls for its progress with a little."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import anyio.from_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starsessions import get_session_id, regenerate_session_id

from grader.actions import access, book, lms, student
from grader.actions import questions as asking_staff
from grader.actions import requests as asking
from grader.actions.common import Actor
from grader.base.errors import InputError
from grader.report.render.html import render as report_html
from grader.web.render import (
    actor_of,
    course_of,
    csrf_refused,
    form_of,
    guarded,
    page,
    private,
    refusal,
)

if TYPE_CHECKING:
    from grader.course.book import Row
    from grader.course.gradebook import Gradebook


def home(request: Request) -> Response:
    actor = actor_of(request)
    if actor is None:
        return page(request, "signed_out.html.j2")
    course = course_of(request)
    if actor.staff:
        marks = book.marks(course, actor, book.MarksRequest())
        table = _by_student(marks.rows)
        released = book.released(course, actor)
        return private(page(request, "staff_home.html.j2", marks=marks, table=table,
                            labs=course.course.labs, released=released))  # fmt: skip
    me = access.me(course, actor)
    rows = [student.student_row(course, r) for r in me.marks]
    dues = {lab: course.course.due_for(me.student or "", lab) for lab in course.course.labs}
    return private(page(request, "student_home.html.j2", me=me, rows=rows,
                        labs=course.course.labs, dues=dues))  # fmt: skip


def _by_student(rows: list[Row]) -> dict[str, dict[str, Row]]:
    table: dict[str, dict[str, Row]] = {}
    for r in rows:
        table.setdefault(r.student, {})[r.lab] = r
    return table


def sign_in_page(request: Request) -> Response:
    """A sign-in link opened: a button that signs in (opening it signs nobody in, so a mail
    scanner that follows links uses none up)."""
    token = request.path_params["token"]
    return private(page(request, "sign_in.html.j2", token=token))


def sign_in(request: Request) -> Response:
    """The sign-in page's button pressed: the link is used up and a new session opens (a new
    session id; the one before is ended). Only with the CSRF token the page gave."""
    try:
        form = form_of(request)
    except InputError as e:
        return refusal(request, e, api=False)
    refused = csrf_refused(request, False, form.get("csrftoken"))
    if refused is not None:
        return refused
    actor = access.sign_in(course_of(request), form.get("token", ""))
    if actor is None:
        return private(page(request, "sign_in_refused.html.j2", status=403))
    before = get_session_id(request)
    request.session.clear()
    regenerate_session_id(request)  # a new session id at sign-in: no session fixation
    if before:
        anyio.from_thread.run(request.app.state.store.remove, before)
    request.session["who"] = {"role": actor.role, "name": actor.name, "student": actor.student}
    return RedirectResponse("/", status_code=303)


def sign_out(request: Request) -> Response:
    try:
        given = form_of(request).get("csrftoken")
    except InputError as e:
        return refusal(request, e, api=False)
    refused = csrf_refused(request, False, given)
    if refused is not None:
        return refused
    request.session.clear()
    return RedirectResponse("/", status_code=303)


@guarded(api=False)
def lab_page(request: Request, actor: Actor, course: Gradebook) -> Response:
    lab = request.path_params["lab"]
    whose = actor.student or ""
    view = student.lab_view(course, actor, whose, lab)
    asked = asking_staff.theirs(course, actor, lab)
    reached = lms.reached(course, actor, whose, lab)
    return private(page(request, "student_lab.html.j2", view=view, student_id=whose,
                        questions=asked, lms=reached))  # fmt: skip


@guarded(api=False)
def question_asked(request: Request, actor: Actor, course: Gradebook) -> Response:
    form = form_of(request)
    lab = request.path_params["lab"]
    try:
        run = int(form.get("run", ""))
    except ValueError:
        return refusal(request, InputError("no such grading"), api=False)
    made = asking_staff.QuestionRequest(lab, run, form.get("check", ""), form.get("text", ""))
    asking_staff.ask(course, actor, made)
    return RedirectResponse(f"/labs/{lab}#questions", status_code=303)


@guarded(api=False)
def staff_questions(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("see the questions")
    waiting = asking_staff.theirs(course, actor)
    shown = [(q, asking_staff.evidence(course, actor, q)) for q in waiting]
    return private(page(request, "staff_questions.html.j2", questions=shown))


#: What staff may do about a question, as a form names it
ACTIONS: dict[str, Literal["none", "regrade", "grade", "override"]] = {
    "none": "none",
    "regrade": "regrade",
    "grade": "grade",
    "override": "override",
}


@guarded(api=False)
def staff_answer(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("answer questions")
    form = form_of(request)
    action = form.get("action", "none")
    if action not in ACTIONS:
        return refusal(request, InputError(f"no such action {action!r}"), api=False)
    points = None
    if action == "override":
        try:
            points = float(form.get("points", ""))
        except ValueError:
            return refusal(request, InputError("an override gives a number of points"), api=False)
    made = asking_staff.AnswerRequest(
        request.path_params["id"], form.get("answer", ""), ACTIONS[action], points
    )
    asking_staff.answer(course, actor, made)
    return RedirectResponse("/staff/questions", status_code=303)


@guarded(api=False)
def grading_page(request: Request, actor: Actor, course: Gradebook) -> Response:
    whose = request.path_params.get("student") or actor.student or ""
    report = student.report_of(
        course, actor, whose, request.path_params["lab"], request.path_params["run"]
    )
    response = private(Response(report_html(report), media_type="text/html"))
    # the report is a page of its own, its style inline (no script in it)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    )
    return response


@guarded(api=False)
def ask_page(request: Request, actor: Actor, course: Gradebook) -> Response:
    form = form_of(request)
    lab = request.path_params["lab"]
    whose = request.path_params.get("student")
    confirm = form.get("confirm_late") == "yes"
    try:
        asked = asking.ask(course, actor, asking.GradeRequest(lab, whose, confirm))
    except asking.ConfirmLate as e:
        return private(page(request, "confirm_late.html.j2", status=409, lab=lab,
                            message=str(e), student_id=whose))  # fmt: skip
    except InputError as e:
        return refusal(request, e, api=False)
    return RedirectResponse(f"/requests/{asked.request.id}", status_code=303)


@guarded(api=False)
def request_page(request: Request, actor: Actor, course: Gradebook) -> Response:
    found = asking.standing(course, actor, request.path_params["id"])
    return private(page(request, "request.html.j2", standing=found))


@guarded(api=False)
def staff_student(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("see a student's page")
    whose = request.path_params["student"]
    if whose not in course.roster:
        return refusal(request, InputError(f"no student {whose!r}"), api=False)
    explained = {
        lab: book.explain(course, actor, book.ExplainRequest(whose, lab))
        for lab in course.course.labs
    }
    history = book.history(course, actor, book.HistoryRequest(whose))
    return private(page(request, "staff_student.html.j2", student_id=whose,
                        explained=explained, history=history.events))  # fmt: skip


@guarded(api=False)
def staff_override(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("override marks")
    form = form_of(request)
    whose, lab = request.path_params["student"], request.path_params["lab"]
    check = form.get("check") or None
    try:
        value = float(form.get("value", ""))
    except ValueError:
        return refusal(request, InputError("the override's value must be a number"), api=False)
    made = book.OverrideRequest(whose, lab, check, value, form.get("reason", ""))
    book.override(course, actor, made)
    return RedirectResponse(f"/staff/students/{whose}", status_code=303)


@guarded(api=False)
def staff_queue(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("see the queue")
    return private(page(request, "staff_queue.html.j2", latest=asking.latest(course, actor)))


@guarded(api=False)
def staff_grade_lab(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("grade a whole lab")
    asking.ask_for_lab(course, actor, request.path_params["lab"])
    return RedirectResponse("/staff/queue", status_code=303)


@guarded(api=False)
def staff_release(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("release feedback")
    lab = request.path_params["lab"]
    book.release(course, actor, book.ReleaseRequest(lab))
    return RedirectResponse("/", status_code=303)


ROUTES = [
    Route("/", home),
    Route("/signin/{token}", sign_in_page),
    Route("/signin", sign_in, methods=["POST"]),
    Route("/signout", sign_out, methods=["POST"]),
    Route("/labs/{lab}", lab_page),
    Route("/labs/{lab}/grade", ask_page, methods=["POST"]),
    Route("/labs/{lab}/questions", question_asked, methods=["POST"]),
    Route("/staff/questions", staff_questions),
    Route("/staff/questions/{id:int}/answer", staff_answer, methods=["POST"]),
    Route("/labs/{lab}/gradings/{run:int}", grading_page),
    Route("/requests/{id:int}", request_page),
    Route("/staff/queue", staff_queue),
    Route("/staff/labs/{lab}/release", staff_release, methods=["POST"]),
    Route("/staff/labs/{lab}/grade", staff_grade_lab, methods=["POST"]),
    Route("/staff/students/{student}", staff_student),
    Route("/staff/students/{student}/labs/{lab}/override", staff_override, methods=["POST"]),
    Route("/staff/students/{student}/labs/{lab}/grade", ask_page, methods=["POST"]),
    Route("/staff/students/{student}/labs/{lab}/gradings/{run:int}", grading_page),
]
