"""Signing in to the course on the web: the links staff hand out, the sign-in itself, and who
is signed in (``/api/me``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from grader.actions.common import Actor, NotFound
from grader.base.closest import closest
from grader.base.errors import InputError
from grader.course import access
from grader.course.gradebook import Gradebook

#: How long a link lasts by default: a student's, to be mailed; staff's, to be used now
LASTS = {"student": timedelta(hours=72), "staff": timedelta(hours=1)}


@dataclass(frozen=True)
class LinkRequest:
    role: Literal["student", "staff"]
    name: str  # a student's roster id, or a name course.toml's staff lists
    lasts: timedelta | None = None  # default: LASTS[role]


@dataclass(frozen=True)
class SignInLink:
    role: str
    name: str
    token: str  # the secret part of the address (``/signin/TOKEN``)
    expires_at: datetime


def make_link(course: Gradebook, actor: Actor, request: LinkRequest) -> SignInLink:
    """A single-use sign-in link for a student or a member of staff, stored hashed."""
    actor.must_be_staff("make sign-in links")
    _known(course, request.role, request.name)
    lasts = request.lasts or LASTS[request.role]
    if not timedelta(minutes=1) <= lasts <= timedelta(days=30):
        raise InputError("--expires: a link lasts from a minute to 30 days")
    made = access.make_link(course.acting(actor.name).book, request.role, request.name, lasts)
    return SignInLink(request.role, request.name, made.token, made.expires_at)


def roster_links(course: Gradebook, actor: Actor, lasts: timedelta | None) -> list[SignInLink]:
    """One link for each student of the roster (to mail)."""
    return [make_link(course, actor, LinkRequest("student", s, lasts)) for s in course.roster]


def _known(course: Gradebook, role: str, name: str) -> None:
    if role == "student":
        course.on_roster(name)
    elif name not in course.course.staff:
        staff = list(course.course.staff)
        raise InputError(
            f"{course.course.path}: staff: {name!r} is not one of the course's staff"
            f"{closest(name, staff)} (staff = {staff}): a member of staff is named there first"
        )


def sign_in(course: Gradebook, token: str) -> Actor | None:
    """Who a sign-in link signs in, the link used up; None for no link, or one used or
    expired, or of somebody the course no longer has."""
    found = access.use_link(course.book, token)
    if found is None:
        return None
    role, name = found
    if role == "student":
        return Actor(name, "student", name) if name in course.roster else None
    return Actor(name, "staff") if name in course.course.staff else None


@dataclass(frozen=True)
class Me:
    role: str
    student: str | None
    name: str  # as the roster names the student (else their id), or staff's name
    marks: list[Any]  # a student's own rows (grader.course.book.Row); none for staff


def me(course: Gradebook, actor: Actor) -> Me:
    """Who is signed in, and a student's own marks."""
    if actor.staff:
        return Me("staff", None, actor.name, [])
    student = actor.student or ""
    if student not in course.roster:
        raise NotFound(f"no student {student!r} here")
    person = course.people().get(student, {})
    rows = [course.explain(student, lab).row for lab in course.course.labs]
    return Me("student", student, person.get("name") or student, rows)


# -- sessions, for a front end's session store ------------------------------------------------


def read_session(course: Gradebook, session_id: str) -> bytes | None:
    return access.read_session(course.book, session_id)


def write_session(course: Gradebook, session_id: str, data: bytes, lasts: timedelta) -> None:
    access.write_session(course.book, session_id, data, lasts)


def remove_session(course: Gradebook, session_id: str) -> None:
    access.remove_session(course.book, session_id)
