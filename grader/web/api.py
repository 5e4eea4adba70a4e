"""The JSON API beside the pages (for scripts and the tests): the same sessions, the same CSRF
token on every POST (header ``X-CSRF-Token``), the same actions and rules.

* ``GET /api/me``: who is signed in, the CSRF token, a student's own marks;
* ``GET /api/book``: staff only, exactly ``grade book show --format json``;
* ``POST /api/grade`` ``{"lab": LAB}`` (a student's own VM) or ``{"lab": LAB, "student": ID}``
  (staff): 202 ``{"request": ID}``; 429 with Retry-After; 409 when the lab is closed (or a late
  grading is not confirmed: ``"confirm_late": true``); 404 for a student naming anyone else;
* ``GET /api/requests/ID``: ``{"state", "run", "mark", "reason", ...}``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from grader.actions import access, book, student
from grader.actions import requests as asking
from grader.actions.common import Actor
from grader.base.errors import InputError
from grader.report.render.safe import json_text
from grader.web.render import csrf, guarded, private

if TYPE_CHECKING:
    from grader.course.gradebook import Gradebook


def _json(value: Any, status: int = 200) -> Response:
    return private(Response(json_text(value), status_code=status, media_type="application/json"))


@guarded(api=True)
def me(request: Request, actor: Actor, course: Gradebook) -> Response:
    found = access.me(course, actor)
    rows = [dataclasses.asdict(student.student_row(course, r)) for r in found.marks]
    return _json({"role": found.role, "student": found.student, "name": found.name,
                  "csrf": csrf(request), "marks": rows})  # fmt: skip


@guarded(api=True)
def whole_book(request: Request, actor: Actor, course: Gradebook) -> Response:
    actor.must_be_staff("read the whole book")
    marks = book.marks(course, actor, book.MarksRequest())
    return _json([dataclasses.asdict(r) for r in marks.rows])


@guarded(api=True)
def grade(request: Request, actor: Actor, course: Gradebook) -> Response:
    import anyio.from_thread  # lazy: the body is read from within the route's thread

    try:
        body = json.loads(anyio.from_thread.run(request.body) or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past reading
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("lab"), str):
        raise InputError('give {"lab": LAB} (and "student": ID, for staff)')
    whose = body.get("student")
    if whose is not None and not isinstance(whose, str):
        raise InputError('"student" is a student\'s id')
    confirm = body.get("confirm_late") is True
    asked = asking.ask(course, actor, asking.GradeRequest(body["lab"], whose, confirm))
    return _json({"request": asked.request.id, "again": asked.again}, status=202)


@guarded(api=True)
def request_state(request: Request, actor: Actor, course: Gradebook) -> Response:
    found = asking.standing(course, actor, request.path_params["id"])
    asked = found.request
    return _json({
        "id": asked.id, "lab": asked.lab, "student": asked.student,
        "state": asked.state, "run": asked.run_id, "mark": found.mark, "reason": asked.reason,
        "ahead": found.ahead, "estimate_s": found.estimate_s,
        "phases": [{"phase": p, "at": at} for p, at in asked.phases],
    })  # fmt: skip


ROUTES = [
    Route("/api/me", me),
    Route("/api/book", whole_book),
    Route("/api/grade", grade, methods=["POST"]),
    Route("/api/requests/{id:int}", request_state),
]
