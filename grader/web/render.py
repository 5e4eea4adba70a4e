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
    """Who is signed in, from the session (None: nobody)."""
    found = request.session.get("who")
    if not isinstance(found, dict) or found.get("role") not in ("student", "staff"):
        return None
    return Actor(str(found["name"]), found["role"], found.get("student"))


def course_of(request: Request) -> Gradebook:
    """The course, for this request only (what is computed from the book is computed anew)."""
    base: Gradebook = request.app.state.course
    return base.fresh()


def csrf(request: Request) -> str:
    """The CSRF token a form or a script sends back (asgi-csrf sets its cookie)."""
    return str(request.scope["csrftoken"]())


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
                return route(request, actor, course_of(request))
            except InputError as e:
                return refusal(request, e, api)

        return guarded_route

    return wrap


def form_of(request: Request) -> dict[str, str]:
    """A posted form's fields (read from a sync route's thread); a field given twice, its
    first value; an upload is no field."""
    import anyio.from_thread  # lazy: only a form's route needs it

    async def read() -> dict[str, str]:
        form = await request.form(max_files=0, max_fields=50)
        return {k: v for k, v in form.multi_items()[::-1] if isinstance(v, str)}

    return anyio.from_thread.run(read)


def private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
