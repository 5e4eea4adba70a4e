"""Pages from templates, and what every route shares: who is signed in, the course for one
request, the CSRF token, errors as pages or JSON."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from grader.actions.common import Actor, NotAllowed, NotFound
from grader.actions.requests import Closed, ConfirmLate, TooSoon
from grader.base.clock import utc_text
from grader.base.errors import CourseBusy, InputError
from grader.report.render.safe import printable
from grader.report.render.text import points
from grader.web import csrf as csrf_token

if TYPE_CHECKING:
    from grader.course.gradebook import Gradebook


@functools.cache
def environment() -> jinja2.Environment:
    made = jinja2.Environment(
        loader=jinja2.PackageLoader("grader.web", "templates"),
        autoescape=True,
        # every value shown: control characters replaced, as the reports do
        finalize=lambda value: printable(value) if isinstance(value, str) else value,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    made.globals.update(points=points, when=_when, percent=lambda x: f"{x:.0%}")
    return made


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    return utc_text(value) if isinstance(value, datetime) else value


def actor_of(request: Request) -> Actor | None:
    """Who is signed in, from the session (None: nobody), as long as the course still has
    them: staff taken out of course.toml's staff, or a student out of the roster, are signed
    out (at the server's next start: it reads course.toml and the roster when it starts)."""
    found = request.session.get("who")
    if not isinstance(found, dict) or found.get("role") not in ("student", "staff"):
        return None
    course: Gradebook = request.app.state.course
    if found["role"] == "staff":
        name = str(found.get("name"))
        return Actor(name, "staff") if name in course.course.staff else None
    student = found.get("student")
    return Actor(str(student), "student", str(student)) if student in course.roster else None


def course_of(request: Request) -> Gradebook:
    """The course, for this request only (what is computed from the book is computed anew)."""
    base: Gradebook = request.app.state.course
    return base.fresh()


def csrf(request: Request) -> str:
    """The session's CSRF token, that a form or a script sends back with a POST."""
    return csrf_token.token(request.session, request.app.state.secret)


def csrf_refused(request: Request, api: bool, given: str | None) -> Response | None:
    """403 unless ``given`` is the session's CSRF token (None: it is)."""
    if csrf_token.valid(request.session, request.app.state.secret, given):
        return None
    message = "this form is out of date or not this site's: load the page again"
    if api:
        return JSONResponse({"error": "no CSRF token of this session (X-CSRF-Token)"},
                            status_code=403)  # fmt: skip
    return page(request, "error.html.j2", status=403, message=message)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    actor = actor_of(request)
    title = request.app.state.title
    html = (
        environment()
        .get_template(template)
        .render(actor=actor, csrf=csrf(request), course_title=title, **context)
    )
    return HTMLResponse(html, status_code=status)


def refusal(request: Request, error: Exception, api: bool) -> Response:
    """An action's refusal as the page or the JSON a person or a script reads: what is not
    theirs is not there (404), past a limit is 429 with when to ask again, a lab closed 409."""
    status, headers, extra = 400, {}, dict[str, Any]()
    if isinstance(error, (NotFound, NotAllowed)):
        status = 404
        message = "Not found."
    elif isinstance(error, TooSoon):
        status, headers = 429, {"Retry-After": str(error.retry_after)}
        message = str(error)
        extra = {"retry_after": error.retry_after}
    elif isinstance(error, ConfirmLate):
        status, message, extra = 409, str(error), {"penalty": error.penalty, "confirm": True}
    elif isinstance(error, (Closed, CourseBusy)):
        status, message = 409, str(error)
    else:
        message = str(error)
    if api:
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)
    response = page(request, "error.html.j2", status=status, message=message)
    response.headers.update(headers)
    return response


def guarded(api: bool) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A route that needs somebody signed in (401 otherwise), and whose actions' refusals
    become pages (or JSON)."""

    def wrap(route: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(route)
        def guarded_route(request: Request) -> Response:
            actor = actor_of(request)
            if actor is None:
                if api:
                    return JSONResponse({"error": "sign in first"}, status_code=401)
                return page(request, "signed_out.html.j2", status=401)
            try:
                if request.method == "POST":
                    given = request.headers.get(csrf_token.HEADER) if api else None
                    if not api:
                        given = form_of(request).get(csrf_token.FIELD)
                    refused = csrf_refused(request, api, given)
                    if refused is not None:
                        return refused
                return route(request, actor, course_of(request))
            except InputError as e:
                return refusal(request, e, api)

        return guarded_route

    return wrap


def form_of(request: Request) -> dict[str, str]:
    """A posted form's fields (read once, from a sync route's thread); a field given twice,
    its first value; an upload is none. A form that cannot be read is bad input."""
    import anyio.from_thread  # lazy: only a form's route needs it

    if hasattr(request.state, "form"):
        return dict(request.state.form)

    async def read() -> dict[str, str]:
        form = await request.form(max_files=0, max_fields=50)
        return {k: v for k, v in form.multi_items()[::-1] if isinstance(v, str)}

    try:
        found = anyio.from_thread.run(read)
    except Exception as e:  # not UTF-8, a type without its boundary, a file: not a form of ours
        raise InputError(f"the form could not be read ({type(e).__name__})") from None
    request.state.form = found
    return dict(found)


def private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
