"""What the book keeps of the course as an LTI 1.3 tool (schema 10): logins under way, LMS
users bound to students, the LMS courses seen, each lab's line item there, and the launches of
people the roster does not have. (The outbox of scores is grader.course.lti.outbox.)"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.course.book import Book, metadata, parse_utc, utc

logins = metadata.tables["lti_logins"]
users = metadata.tables["lti_users"]
contexts = metadata.tables["lti_contexts"]
lineitems = metadata.tables["lti_lineitems"]
outbox = metadata.tables["lti_outbox"]
unmatched = metadata.tables["lti_unmatched"]

#: How long a login may take, from its initiation to its launch
LOGIN_LASTS = timedelta(minutes=10)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- logins: a state and a nonce, each used once ------------------------------------------------


def start_login(book: Book, state: str, nonce: str, issuer: str, client_id: str) -> None:
    moment = now()
    with book.engine.begin() as connection:
        connection.execute(sa.delete(logins).where(logins.c.expires_at < utc(moment - LOGIN_LASTS)))
        connection.execute(
            sa.insert(logins).values(
                state_sha256=_sha256(state), nonce=nonce, issuer=issuer, client_id=client_id,
                made_at=utc(moment), expires_at=utc(moment + LOGIN_LASTS),
            )
        )  # fmt: skip


def use_login(book: Book, state: str, nonce: str, issuer: str, client_id: str) -> bool:
    """Whether ``state`` is a login of this platform, not used and not expired, whose nonce is
    ``nonce``: used up now (one transaction; a second launch with it is refused)."""
    if not 20 <= len(state) <= 200:
        return False
    moment = utc(now())
    with book.engine.begin() as connection:
        done = connection.execute(
            sa.update(logins)
            .where(
                logins.c.state_sha256 == _sha256(state), logins.c.nonce == nonce,
                logins.c.issuer == issuer, logins.c.client_id == client_id,
                logins.c.used_at.is_(None), logins.c.expires_at > moment,
            )
            .values(used_at=moment)
        )  # fmt: skip
    return done.rowcount == 1


# -- LMS users and students ---------------------------------------------------------------------


def bound_student(book: Book, issuer: str, sub: str) -> str | None:
    with book.engine.connect() as connection:
        row = connection.execute(
            sa.select(users.c.student).where(users.c.issuer == issuer, users.c.sub == sub)
        ).first()
    return str(row.student) if row else None


def sub_of(book: Book, student: str) -> dict[str, str]:
    """The student's LMS user id (``sub``) on each platform, by issuer."""
    with book.engine.connect() as connection:
        rows = connection.execute(
            sa.select(users.c.issuer, users.c.sub).where(users.c.student == student)
        ).all()
    return {r.issuer: r.sub for r in rows}


def bindings(book: Book, issuer: str) -> dict[str, str]:
    """student -> sub, on one platform."""
    with book.engine.connect() as connection:
        rows = connection.execute(
            sa.select(users.c.student, users.c.sub).where(users.c.issuer == issuer)
        ).all()
    return {r.student: r.sub for r in rows}


def bind(book: Book, issuer: str, sub: str, student: str, matched_by: str) -> str | None:
    """Bind the LMS user to the student (the first match); None when done, else the reason
    it is not (the student is bound to another user of that LMS already)."""
    try:
        with book.engine.begin() as connection:
            connection.execute(
                sa.insert(users).values(issuer=issuer, sub=sub, student=student,
                                        matched_by=matched_by, bound_at=utc(now()))
            )  # fmt: skip
    except sa.exc.IntegrityError:
        if bound_student(book, issuer, sub) == student:
            return None
        return f"{student} is bound to another user of {issuer} already"
    return None


def launched_from(book: Book, issuer: str, sub: str, context: int) -> None:
    """The LMS course of the user's latest launch (where their scores go)."""
    with book.engine.begin() as connection:
        connection.execute(
            sa.update(users).where(users.c.issuer == issuer, users.c.sub == sub)
            .values(context=context)
        )  # fmt: skip


@dataclass(frozen=True)
class Binding:
    issuer: str
    sub: str
    student: str
    matched_by: str
    context: int | None


def binding_of(book: Book, student: str) -> Binding | None:
    """The student's LMS user whose launch was latest bound to an LMS course."""
    with book.engine.connect() as connection:
        rows = list(connection.execute(
            sa.select(users).where(users.c.student == student).order_by(users.c.id.desc())
        ).all())  # fmt: skip
    rows.sort(key=lambda r: r.context is None)
    return (Binding(rows[0].issuer, rows[0].sub, rows[0].student, rows[0].matched_by,
                    rows[0].context) if rows else None)  # fmt: skip


def context_by_id(book: Book, context: int) -> Context | None:
    with book.engine.connect() as connection:
        row = connection.execute(sa.select(contexts).where(contexts.c.id == context)).first()
    return _context(row) if row else None


def note_unmatched(book: Book, issuer: str, sub: str, name: str, role: str, claim: str) -> None:
    """A launch of somebody the roster (or course.toml's staff) does not have, for staff."""
    at = utc(now())
    with book.engine.begin() as connection:
        done = connection.execute(
            sa.update(unmatched)
            .where(unmatched.c.issuer == issuer, unmatched.c.sub == sub)
            .values(name=name, role=role, claim=claim, at=at, count=unmatched.c.count + 1)
        )
        if done.rowcount == 0:
            connection.execute(
                sa.insert(unmatched).values(issuer=issuer, sub=sub, name=name, role=role,
                                            claim=claim, at=at, count=1)
            )  # fmt: skip


@dataclass(frozen=True)
class Unmatched:
    issuer: str
    sub: str
    name: str
    role: str
    claim: str
    at: datetime
    count: int


def unmatched_launches(book: Book) -> list[Unmatched]:
    with book.engine.connect() as connection:
        rows = connection.execute(sa.select(unmatched).order_by(unmatched.c.at.desc())).all()
    return [Unmatched(r.issuer, r.sub, r.name or "", r.role, r.claim, parse_utc(r.at),
                      int(r._mapping["count"])) for r in rows]  # fmt: skip


# -- LMS courses and line items -----------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    id: int
    issuer: str
    client_id: str
    deployment_id: str
    context_id: str
    title: str
    lineitems_url: str | None
    memberships_url: str | None
    scopes: tuple[str, ...]


def _context(row: Any) -> Context:
    return Context(int(row.id), row.issuer, row.client_id, row.deployment_id, row.context_id,
                   row.title or "", row.lineitems_url, row.memberships_url,
                   tuple(json.loads(row.scopes)))  # fmt: skip


def remember_context(
    book: Book, issuer: str, client_id: str, deployment_id: str, context_id: str,
    title: str, lineitems_url: str | None, memberships_url: str | None, scopes: list[str],
) -> Context:  # fmt: skip
    """The LMS course a launch came from, with its services' addresses as the launch said."""
    key = (
        contexts.c.issuer == issuer,
        contexts.c.client_id == client_id,
        contexts.c.deployment_id == deployment_id,
        contexts.c.context_id == context_id,
    )
    values = {"title": title, "seen_at": utc(now()), "scopes": json.dumps(scopes)}
    if lineitems_url:
        values["lineitems_url"] = lineitems_url
    if memberships_url:
        values["memberships_url"] = memberships_url
    for _ in range(2):
        try:
            with book.engine.begin() as connection:
                done = connection.execute(sa.update(contexts).where(*key).values(**values))
                if done.rowcount == 0:
                    connection.execute(
                        sa.insert(contexts).values(
                            issuer=issuer, client_id=client_id, deployment_id=deployment_id,
                            context_id=context_id, **values,
                        )
                    )  # fmt: skip
                row = connection.execute(sa.select(contexts).where(*key)).one()
            return _context(row)
        except sa.exc.IntegrityError:  # two first launches at once: the other one made it
            continue
    raise RuntimeError("the LMS course could not be kept")  # pragma: no cover


def all_contexts(book: Book) -> list[Context]:
    with book.engine.connect() as connection:
        rows = connection.execute(sa.select(contexts).order_by(contexts.c.id)).all()
    return [_context(r) for r in rows]


def lineitem_of(book: Book, context: int, lab: str) -> str | None:
    """The lab's line item bound in the LMS course (None: none yet, or one being made)."""
    with book.engine.connect() as connection:
        row = connection.execute(
            sa.select(lineitems.c.url).where(
                lineitems.c.context == context, lineitems.c.lab == lab, lineitems.c.how != MAKING
            )
        ).first()
    return str(row.url) if row else None


def bind_lineitem(book: Book, context: int, lab: str, url: str, how: str) -> str:
    """The lab's line item in the LMS course, bound once: the one bound first wins (and is
    what this returns). A line item being made (a claim) is replaced by it."""
    with book.engine.begin() as connection:
        connection.execute(
            sa.delete(lineitems).where(lineitems.c.context == context, lineitems.c.lab == lab,
                                       lineitems.c.how == MAKING)
        )  # fmt: skip
    try:
        with book.engine.begin() as connection:
            connection.execute(
                sa.insert(lineitems).values(context=context, lab=lab, url=url, how=how,
                                            bound_at=utc(now()))
            )  # fmt: skip
    except sa.exc.IntegrityError:
        pass
    return lineitem_of(book, context, lab) or url


MAKING = "making"  # a line item claimed: one process asks the LMS for it, the others wait
MAKING_LASTS = timedelta(minutes=2)


def claim_lineitem(book: Book, context: int, lab: str) -> bool:
    """Whether this process may look for (and make) the lab's line item now: nobody has
    claimed it, or a claim is older than MAKING_LASTS (its maker died: the next one looks for
    what it may have made before making one)."""
    moment = now()
    with book.engine.begin() as connection:
        connection.execute(
            sa.delete(lineitems).where(
                lineitems.c.context == context, lineitems.c.lab == lab,
                lineitems.c.how == MAKING, lineitems.c.bound_at < utc(moment - MAKING_LASTS),
            )
        )  # fmt: skip
    try:
        with book.engine.begin() as connection:
            connection.execute(
                sa.insert(lineitems).values(context=context, lab=lab, url="", how=MAKING,
                                            bound_at=utc(moment))
            )  # fmt: skip
    except sa.exc.IntegrityError:
        return False
    return True


def release_lineitem(book: Book, context: int, lab: str) -> None:
    """A claim given up (the LMS could not be asked): another try may claim it again."""
    with book.engine.begin() as connection:
        connection.execute(
            sa.delete(lineitems).where(lineitems.c.context == context, lineitems.c.lab == lab,
                                       lineitems.c.how == MAKING)
        )  # fmt: skip
