"""The outbox of scores for the LMS: rows of the book, so that nothing is lost when the LMS is
down or the server stops. A score is queued when a student's mark differs from the last one
queued (``put``: an older one still waiting is superseded, never sent), taken by one sender at
a time (a lease), and ends ``sent`` (the LMS took it), ``refused`` (the LMS said no: its answer
is kept for staff) or, tried again with a growing wait, stays ``pending``; a score that waits
for something (the student has not opened the lab from the LMS yet) says what.

What has changed since the outbox last looked (``changes``) is read from the book's rows (runs,
overrides, drops, acceptances, releases), so that every way a mark changes, from any process,
reaches it through one place.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.course.book import (
    Book,
    accepts,
    drops,
    meta,
    overrides,
    parse_utc,
    releases,
    reports,
    runs,
    utc,
)
from grader.course.lti.store import outbox

PENDING, SENDING, SENT, REFUSED, SUPERSEDED = "pending", "sending", "sent", "refused", "superseded"
LEASE = timedelta(minutes=2)
WAIT_FIRST, WAIT_MOST = 15, 3600  # seconds before a try again: doubled each time, at most


def digest(score: dict[str, Any]) -> str:
    """What makes two scores the same (their time apart)."""
    kept = {k: v for k, v in score.items() if k != "timestamp"}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    id: int
    student: str
    lab: str
    score: dict[str, Any]
    state: str
    attempts: int
    next_try_at: datetime
    made_at: datetime
    sent_at: datetime | None
    waiting: str | None
    answer: str | None


def _entry(row: Any) -> Entry:
    return Entry(
        int(row.id), row.student, row.lab, json.loads(row.score), row.state, int(row.attempts),
        parse_utc(row.next_try_at), parse_utc(row.made_at),
        parse_utc(row.sent_at) if row.sent_at else None, row.waiting, row.answer,
    )  # fmt: skip


def latest(book: Book, student: str, lab: str) -> Entry | None:
    """The last score queued for the student's lab (whatever became of it)."""
    with book.engine.connect() as connection:
        row = connection.execute(
            sa.select(outbox)
            .where(outbox.c.student == student, outbox.c.lab == lab,
                   outbox.c.state != SUPERSEDED)
            .order_by(outbox.c.id.desc()).limit(1)
        ).first()  # fmt: skip
    return _entry(row) if row else None


def put(book: Book, student: str, lab: str, score: dict[str, Any]) -> bool:
    """Queue ``score`` unless the last one queued for the student's lab is the same; an older
    one still waiting, or refused, is superseded. Whether it was queued."""
    same = digest(score)
    moment = utc(now())
    with book.engine.begin() as connection:
        last = connection.execute(
            sa.select(outbox.c.digest, outbox.c.score)
            .where(outbox.c.student == student, outbox.c.lab == lab,
                   outbox.c.state != SUPERSEDED)
            .order_by(outbox.c.id.desc()).limit(1)
        ).first()  # fmt: skip
        if last is not None and last.digest == same:
            return False
        if last is not None:  # the LMS keeps the newest score: its time must be later
            before = json.loads(last.score).get("timestamp", "")
            if score.get("timestamp", "") <= before:
                later = max(now(), parse_utc(before[:19] + "Z") + timedelta(seconds=1))
                score = {**score, "timestamp": _stamp(later)}
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.student == student, outbox.c.lab == lab,
                   outbox.c.state.in_((PENDING, REFUSED)))
            .values(state=SUPERSEDED)
        )  # fmt: skip
        connection.execute(
            sa.insert(outbox).values(
                student=student, lab=lab, score=json.dumps(score), digest=same, state=PENDING,
                attempts=0, next_try_at=moment, made_at=moment,
            )
        )  # fmt: skip
    return True


def put_again(book: Book, entry: Entry) -> None:
    """Queue a score sent (or refused) before once more (the LMS lost it, holds another, or
    was put right), with a newer time (the LMS keeps the newest)."""
    score = {k: v for k, v in entry.score.items() if k != "userId"}
    score["timestamp"] = _stamp(now())
    moment = utc(now())
    with book.engine.begin() as connection:
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.student == entry.student, outbox.c.lab == entry.lab,
                   outbox.c.state.in_((PENDING, REFUSED)))
            .values(state=SUPERSEDED)
        )  # fmt: skip
        connection.execute(
            sa.insert(outbox).values(
                student=entry.student, lab=entry.lab, score=json.dumps(score),
                digest=digest(score), state=PENDING, attempts=0, next_try_at=moment,
                made_at=moment,
            )
        )  # fmt: skip


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def ready(book: Book, limit: int = 100) -> list[Entry]:
    """Scores to try now: pending ones whose time has come, and those whose sender died."""
    moment = utc(now())
    query = (
        sa.select(outbox)
        .where(sa.or_(
            sa.and_(outbox.c.state == PENDING, outbox.c.next_try_at <= moment),
            sa.and_(outbox.c.state == SENDING, outbox.c.lease_until < moment),
        ))
        .order_by(outbox.c.id).limit(limit)
    )  # fmt: skip
    with book.engine.connect() as connection:
        return [_entry(r) for r in connection.execute(query)]


def take(book: Book, entry: Entry) -> bool:
    """Whether this sender has the score now (nobody else sends it until its lease ends)."""
    moment = now()
    with book.engine.begin() as connection:
        done = connection.execute(
            sa.update(outbox)
            .where(outbox.c.id == entry.id, sa.or_(
                outbox.c.state == PENDING,
                sa.and_(outbox.c.state == SENDING, outbox.c.lease_until < utc(moment)),
            ))
            .values(state=SENDING, lease_until=utc(moment + LEASE))
        )  # fmt: skip
    return done.rowcount == 1


def _end(book: Book, entry: Entry, **values: Any) -> None:
    with book.engine.begin() as connection:
        connection.execute(
            sa.update(outbox)
            .where(outbox.c.id == entry.id, outbox.c.state == SENDING)
            .values(lease_until=None, **values)
        )  # fmt: skip


def sent(book: Book, entry: Entry, score: dict[str, Any]) -> None:
    _end(book, entry, state=SENT, sent_at=utc(now()), waiting=None, score=json.dumps(score),
         attempts=entry.attempts + 1)  # fmt: skip


def refused(book: Book, entry: Entry, answer: str) -> None:
    _end(book, entry, state=REFUSED, answer=answer[:2000], waiting=None,
         attempts=entry.attempts + 1)  # fmt: skip


def later(book: Book, entry: Entry, why: str, tried: bool) -> None:
    """Try again later: after a growing wait when the LMS was tried (``tried``), in a minute
    when the score waits for something on our side."""
    attempts = entry.attempts + 1 if tried else entry.attempts
    wait = min(WAIT_FIRST * 2 ** max(attempts - 1, 0), WAIT_MOST) if tried else 60
    _end(book, entry, state=PENDING, attempts=attempts, waiting=why[:2000],
         next_try_at=utc(now() + timedelta(seconds=wait)))  # fmt: skip


def now_again(book: Book, student: str | None = None) -> None:
    """Pending scores (of one student) tried at once (the LMS is back, the student bound)."""
    query = sa.update(outbox).where(outbox.c.state == PENDING)
    if student is not None:
        query = query.where(outbox.c.student == student)
    with book.engine.begin() as connection:
        connection.execute(query.values(next_try_at=utc(now())))


def last_sent(book: Book, student: str, lab: str) -> Entry | None:
    with book.engine.connect() as connection:
        row = connection.execute(
            sa.select(outbox)
            .where(outbox.c.student == student, outbox.c.lab == lab, outbox.c.state == SENT)
            .order_by(outbox.c.id.desc()).limit(1)
        ).first()  # fmt: skip
    return _entry(row) if row else None


def entries(book: Book, states: tuple[str, ...], limit: int = 500) -> list[Entry]:
    query = sa.select(outbox).where(outbox.c.state.in_(states)).order_by(outbox.c.id).limit(limit)
    with book.engine.connect() as connection:
        return [_entry(r) for r in connection.execute(query)]


# -- what changed in the book since the outbox last looked ---------------------------------------

KEY = "lti_outbox_seen"


def _marker(connection: sa.Connection) -> dict[str, int]:
    def one(query: Any) -> int:
        return int(connection.execute(query).scalar() or 0)

    found = {
        "withdrawn": one(sa.select(sa.func.count(overrides.c.withdrawn_at))),
        "undropped": one(sa.select(sa.func.count(drops.c.undone_at))),
        "unaccepted": one(sa.select(sa.func.count(accepts.c.undone_at))),
    }
    for key, table in _ADDED.items():  # the newest id, and how many rows there are
        found[key] = one(sa.select(sa.func.max(table.c.id)))
        found[f"{key}_rows"] = one(sa.select(sa.func.count()).select_from(table))
    return found


#: The tables whose new rows change a mark (each row's id grows as rows are added)
_ADDED = {"runs": runs, "overrides": overrides, "drops": drops, "accepts": accepts,
          "releases": releases}  # fmt: skip


def _only_above(connection: sa.Connection, marker: dict[str, int], seen: dict[str, Any]) -> bool:
    """Whether every row added since ``seen`` has an id above the newest id seen then. Not so
    on PostgreSQL when two recorders write at once: the row given the lower id may commit after
    the outbox looked at the higher one (or a row was deleted): then every mark is looked at."""
    for key, table in _ADDED.items():
        before = seen.get(f"{key}_rows")
        if not isinstance(before, int) or not isinstance(seen.get(key), int):
            return False
        above = connection.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.id > seen[key])
        ).scalar()
        if marker[f"{key}_rows"] - before != int(above or 0):
            return False
    return True


def changes(book: Book) -> tuple[dict[str, int], set[tuple[str, str]] | None, set[str]]:
    """What changed since ``seen`` was last kept: the marker now, the (student, lab) pairs
    touched (None: look at every one: a change made in place, or nothing kept yet) and the
    labs released since."""
    with book.engine.connect() as connection:
        marker = _marker(connection)
        row = connection.execute(sa.select(meta.c.value).where(meta.c.key == KEY)).first()
        seen = json.loads(row.value) if row and row.value else None
        if seen is None or any(marker[k] != seen.get(k) for k in
                               ("withdrawn", "undropped", "unaccepted")):  # fmt: skip
            return marker, None, set()
        if marker == seen:
            return marker, set(), set()
        if not _only_above(connection, marker, seen):
            return marker, None, set()
        touched: set[tuple[str, str]] = set()
        for r in connection.execute(
            sa.select(reports.c.student, runs.c.lab)
            .join(runs, runs.c.id == reports.c.run_id)
            .where(runs.c.id > seen["runs"])
        ):
            touched.add((r.student, r.lab))
        for table, key in ((overrides, "overrides"), (accepts, "accepts")):
            for r in connection.execute(
                sa.select(table.c.student, table.c.lab).where(table.c.id > seen[key])
            ):
                touched.add((r.student, r.lab))
        for r in connection.execute(
            sa.select(reports.c.student, runs.c.lab)
            .join(runs, runs.c.id == reports.c.run_id)
            .join(drops, drops.c.run_id == runs.c.id)
            .where(drops.c.id > seen["drops"])
        ):
            touched.add((r.student, r.lab))
        labs = {
            str(r.lab)
            for r in connection.execute(
                sa.select(releases.c.lab).where(releases.c.id > seen["releases"])
            )
        }
    return marker, touched, labs


def seen(book: Book, marker: dict[str, int]) -> None:
    """The book looked at up to ``marker``."""
    with book.engine.begin() as connection:
        done = connection.execute(
            sa.update(meta).where(meta.c.key == KEY).values(value=json.dumps(marker))
        )
        if done.rowcount == 0:
            connection.execute(sa.insert(meta).values(key=KEY, value=json.dumps(marker)))
