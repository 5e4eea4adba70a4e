"""The LTI 1.3 tool's addresses: its JWKS (``/lti/jwks``), the OIDC login initiation
(``/lti/login``, GET or POST), the launch (``/lti/launch``, a form POST), the deep linking
picker (the launch's answer to staff adding the tool) and staff's view of launches and scores
(``/staff/lti``).

The login and the launch come from the LMS (cross-site, no CSRF token of ours): what protects
them is the launch's own checks (grader.actions.lti), and a cookie holding the login's state so
that the launch is posted by the browser that began it. A launch opens the same session a
sign-in link does: a new session id, the one before ended.

Staff adding the tool (a deep linking request) get the picker as the launch's answer, no
session: an LMS opens it in a frame of its page, where the tool's cookies may not be kept. Each
lab is a form posting its signed response straight to the LMS; the picker alone may be framed,
and only by the LMS that asked for it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Literal

import anyio.from_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starsessions import get_session_id, regenerate_session_id

from grader.actions import lms, lti
from grader.actions.common import Actor
from grader.base.errors import InputError
from grader.web.render import course_of, form_of, guarded, page, private

if TYPE_CHECKING:
    from grader.course.gradebook import Gradebook


def state_cookie(state: str) -> str:
    """The cookie that holds a login's state: one a login, so that two launches begun in two
    tabs at once each find their own."""
    return "lti_state_" + hashlib.sha256(state.encode()).hexdigest()[:16]


def keys_made(course: Gradebook) -> bool:
    """Whether the course has its signing key (the JWKS publishes one)."""
    return bool(lti.jwks(course)["keys"])


def _public(request: Request) -> str:
    return str(request.app.state.public_url)


def jwks(request: Request) -> Response:
    found = lti.jwks(course_of(request))
    response = Response(json.dumps(found), media_type="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _refused(request: Request, error: InputError, status: int = 403) -> Response:
    template = (
        "lti_unmatched.html.j2" if isinstance(error, lti.NotOnRoster) else "lti_refused.html.j2"
    )
    return private(page(request, template, status=status, message=str(error)))


def login(request: Request) -> Response:
    """The LMS's login initiation: a state and a nonce, and the browser sent to the LMS's
    authorization address (the state kept in a cookie of this browser)."""
    params = dict(request.query_params)
    if request.method == "POST":
        try:
            params.update(form_of(request))
        except InputError as e:
            return _refused(request, e, 400)
    made = lti.LoginRequest(
        {k: v[:2000] for k, v in params.items()}, f"{_public(request)}/lti/launch"
    )
    try:
        started = lti.login(course_of(request), made)
    except InputError as e:
        return _refused(request, e, 400)
    response = RedirectResponse(started.redirect, status_code=302)
    https = _public(request).startswith("https://")
    # the launch comes back as a cross-site POST: over https the cookie must say SameSite=None
    same_site: Literal["none", "lax"] = "none" if https else "lax"
    response.set_cookie(state_cookie(started.state), started.state, max_age=600, path="/lti/",
                        httponly=True, secure=https, samesite=same_site)  # fmt: skip
    return private(response)


def launch(request: Request) -> Response:
    """The LMS posts the id_token here: checked, and the person signed in where they go."""
    try:
        form = form_of(request)
    except InputError as e:
        return _refused(request, e, 400)
    if form.get("error"):  # the LMS says why it did not launch (its words, shown as text)
        return _refused(
            request,
            InputError(
                f"The LMS did not launch: {form['error'][:200]} "
                f"{form.get('error_description', '')[:300]}"
            ),
            400,
        )
    state = form.get("state", "")
    made = lti.LaunchRequest(form.get("id_token", ""), state,
                             request.cookies.get(state_cookie(state)))  # fmt: skip
    try:
        launched = lti.launch(course_of(request), made)
    except InputError as e:  # the state's cookie is kept: a refused launch used nothing up
        return _refused(request, e)
    if launched.deep_linking is not None:
        return _picker(request, launched.actor, launched.deep_linking, state)
    before = get_session_id(request)
    request.session.clear()
    regenerate_session_id(request)  # a new session id at sign-in: no session fixation
    if before:
        anyio.from_thread.run(request.app.state.store.remove, before)
    actor = launched.actor
    request.session["who"] = {"role": actor.role, "name": actor.name, "student": actor.student,
                              "via": "lti"}  # fmt: skip
    where = "/"
    if launched.lab is not None and not actor.staff:
        where = f"/labs/{launched.lab}"
    response = RedirectResponse(where, status_code=303)
    response.delete_cookie(state_cookie(state), path="/lti/")
    return private(response)


def _picker(request: Request, actor: Actor, settings: lti.DeepLinking, state: str) -> Response:
    """The labs to place, each a form to the LMS; framed by that LMS alone."""
    found = lti.picker(course_of(request), actor, settings, _public(request))
    response = private(page(request, "lti_deep_link.html.j2", picker=found))
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        f"form-action {found.origin}; frame-ancestors {found.origin}; base-uri 'none'"
    )
    response.delete_cookie(state_cookie(state), path="/lti/")
    return response


@guarded(api=False)
def staff_lti(request: Request, actor: Actor, course: Gradebook) -> Response:
    found = lms.status(course, actor)
    return private(page(request, "staff_lti.html.j2", found=found))


ROUTES = [
    Route("/lti/jwks", jwks),
    Route("/lti/login", login, methods=["GET", "POST"]),
    Route("/lti/launch", launch, methods=["POST"]),
    Route("/staff/lti", staff_lti),
]
