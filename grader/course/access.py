"""Who may come in to the course on the web, and what they may see: single-use sign-in links
and the sessions they open, kept in the book so that they survive a restart and serve every
web process alike; the labs whose feedback staff released to their students.

A link's token and a session's id are random (``secrets``) and stored only as their SHA-256: a
copy of the book lets nobody in. A link is used once, atomically (two tabs opening it at once
sign in once), and not after it expires; a session ends when its holder signs out or after a
time without use.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from grader.base.clock import now
from grader.course.book import Book, releases, sign_ins, utc, web_sessions


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Link:
    token: str  # the secret part of the address: shown once, never stored
    expires_at: datetime


def make_link(book: Book, role: str, name: str, lasts: timedelta) -> Link:
    """A new single-use sign-in link for ``name`` (a student's id, or staff's name)."""
    token = secrets.token_urlsafe(32)
    made = now()
    with book.engine.begin() as connection:
        connection.execute(
            sa.insert(sign_ins).values(
                token_sha256=_sha256(token), role=role, name=name, made_at=utc(made),
                made_by=book.by, expires_at=utc(made + lasts),
            )
        )  # fmt: skip
    return Link(token, made + lasts)


def use_link(book: Book, token: str) -> tuple[str, str] | None:
    """Whom the link signs in (role, name), used up now; None for a link that is not one,
    was used, or has expired (which is which is not said: none of it signs anybody in)."""
    if not 20 <= len(token) <= 100:
        return None
    at = utc(now())
    found = sign_ins.c.token_sha256 == _sha256(token)
    with book.engine.begin() as connection:
        used = connection.execute(
            sa.update(sign_ins)
            .where(found, sign_ins.c.used_at.is_(None), sign_ins.c.expires_at > at)
            .values(used_at=at)
        )
        if used.rowcount != 1:
            return None
        row = connection.execute(sa.select(sign_ins.c.role, sign_ins.c.name).where(found)).one()
    return str(row.role), str(row.name)


def read_session(book: Book, session_id: str) -> bytes | None:
    with book.engine.connect() as connection:
        row = connection.execute(
            sa.select(web_sessions.c.data).where(
                web_sessions.c.id_sha256 == _sha256(session_id),
                web_sessions.c.expires_at > utc(now()),
            )
        ).first()
    return bytes(row.data) if row is not None else None


def write_session(book: Book, session_id: str, data: bytes, lasts: timedelta) -> None:
    key = _sha256(session_id)
    until = utc(now() + lasts)
    with book.engine.begin() as connection:
        done = connection.execute(
            sa.update(web_sessions)
            .where(web_sessions.c.id_sha256 == key)
            .values(data=data, expires_at=until)
        )
        if done.rowcount == 0:
            connection.execute(
                sa.insert(web_sessions).values(id_sha256=key, data=data, expires_at=until)
            )
        # sessions long over go: nothing of them is needed
        connection.execute(sa.delete(web_sessions).where(web_sessions.c.expires_at < utc(now())))


def remove_session(book: Book, session_id: str) -> None:
    with book.engine.begin() as connection:
        connection.execute(
            sa.delete(web_sessions).where(web_sessions.c.id_sha256 == _sha256(session_id))
        )


def released(book: Book, lab: str) -> bool:
    """Whether staff released the lab's feedback to its students."""
    with book.engine.connect() as connection:
        return (
            connection.execute(sa.select(releases.c.id).where(releases.c.lab == lab)).first()
            is not None
        )


def release(book: Book, lab: str) -> None:
    """Release a lab's feedback (kept with who and when, as the history shows it)."""
    with book.engine.begin() as connection:
        connection.execute(sa.insert(releases).values(lab=lab, made_at=utc(now()), made_by=book.by))
