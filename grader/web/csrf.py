"""CSRF tokens bound to the session: WTForms' SessionCSRF. A random value kept in the session
(server-side: the book) and an HMAC of it with the web's secret make the token, so a token is
good for the session it was given to only, and ends with it (a new session at sign-in, none at
sign-out). Every POST carries it: a form's ``csrftoken`` field, or the API's ``X-CSRF-Token``
header."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import ImmutableMultiDict
from wtforms import Form
from wtforms.csrf.session import SessionCSRF

FIELD = "csrftoken"
HEADER = "x-csrf-token"


class _Token(Form):
    class Meta:
        csrf = True
        csrf_class = SessionCSRF
        csrf_field_name = FIELD
        csrf_time_limit = None  # a token lasts as its session does (a day unused at most)


def token(session: MutableMapping[str, Any], secret: bytes) -> str:
    """The session's token (the session keeps what it is made from)."""
    form = _Token(meta={"csrf_secret": secret, "csrf_context": session})
    return str(getattr(form, FIELD).current_token)


def valid(session: MutableMapping[str, Any], secret: bytes, given: str | None) -> bool:
    """Whether ``given`` is this session's token (a session that was never given one has
    none)."""
    if not given or "csrf" not in session or len(given) > 200 or not given.isascii():
        return False
    form = _Token(
        formdata=ImmutableMultiDict([(FIELD, given)]),
        meta={"csrf_secret": secret, "csrf_context": session},
    )
    return bool(form.validate())
