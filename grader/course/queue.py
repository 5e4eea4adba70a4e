"""The queue of gradings asked for on the web: rows of the book's ``requests`` table, so that
they survive a restart and serve every grader alike (``grade serve``'s workers, ``grade
worker`` on other machines).

A request is ``queued`` until a worker takes it (``grading``), with a lease: a worker that dies
leaves it to be taken again when the lease ends. Taking is one transaction: on PostgreSQL
``SELECT ... FOR UPDATE SKIP LOCKED`` (two workers never take one request), on SQLite the
book's writers take turns (``BEGIN IMMEDIATE``). Requests are taken in order of asking, one at a
time per student. A request ends ``done`` (graded and recorded: its run), ``not_graded`` (the
VM could not be reached, or our side could not grade it after its tries) or ``refused``; it is
marked done in the transaction that records its grading, and only by the worker that holds it,
so no grading is recorded twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.course.book import Book, parse_utc, reports, requests, runs, utc

QUEUED, GRADING, DONE, NOT_GRADED, REFUSED = "queued", "grading", "done", "not_graded", "refused"
#: Tries our side makes at a request before it says it could not be graded
TRIES = 3


@dataclass(frozen=True)
class Request:
    id: int
    lab: str
    student: str
    asked_by: str
    asked_at: datetime
    counts: bool
    state: str
    phases: tuple[tuple[str, str], ...]  # (phase, when), in order
    attempts: int
    run_id: int | None
    reason: str | None  # what the student reads of why it was not graded
    finished_at: datetime | None
    worker: str | None
    detail: str | None = None  # what went wrong on our side (staff's only)


def _request(row: Any) -> Request:
    return Request(
        int(row.id), row.lab, row.student, row.asked_by, parse_utc(row.asked_at), bool(row.counts),
        row.state, tuple(tuple(p) for p in json.loads(row.phases)), int(row.attempts),
        row.run_id, row.reason, parse_utc(row.finished_at) if row.finished_at else None,
        row.worker, row.detail,
    )  # fmt: skip


def add(book: Book, lab: str, student: str, asked_by: str, counts: bool) -> Request:
    """A new request, queued; or, when the student's request of the lab waits already (asked
    at the same moment: the book keeps one waiting), that one."""
    at = utc(now())
    try:
        with book.engine.begin() as connection:
            key = connection.execute(
                sa.insert(requests).values(
                    lab=lab, student=student, asked_by=asked_by, asked_at=at, counts=counts,
                    state=QUEUED, phases=json.dumps([["queued", at]]), attempts=0,
                )
            ).inserted_primary_key  # fmt: skip
    except sa.exc.IntegrityError:
        waiting = [r for r in of_student(book, student, lab) if r.state in (QUEUED, GRADING)]
        if not waiting:
            raise
        return waiting[0]
    found = get(book, int(key[0]) if key else 0)
    assert found is not None
    return found


def get(book: Book, request_id: int) -> Request | None:
    with book.engine.connect() as connection:
        row = connection.execute(sa.select(requests).where(requests.c.id == request_id)).first()
    return _request(row) if row is not None else None


def of_student(book: Book, student: str, lab: str, since: datetime | None = None) -> list[Request]:
    """A student's requests of a lab (asked since ``since``), in asking order."""
    query = sa.select(requests).where(requests.c.student == student, requests.c.lab == lab)
    if since is not None:
        query = query.where(requests.c.asked_at >= utc(since))
    with book.engine.connect() as connection:
        return [_request(r) for r in connection.execute(query.order_by(requests.c.id))]


def waiting(book: Book) -> list[Request]:
    """Every request queued or being graded, in asking order."""
    query = sa.select(requests).where(requests.c.state.in_([QUEUED, GRADING]))
    with book.engine.connect() as connection:
        return [_request(r) for r in connection.execute(query.order_by(requests.c.id))]


def latest(book: Book, count: int = 50) -> list[Request]:
    """The latest requests, newest first."""
    query = sa.select(requests).order_by(requests.c.id.desc()).limit(count)
    with book.engine.connect() as connection:
        return [_request(r) for r in connection.execute(query)]


def any_queued(book: Book) -> bool:
    """Whether a request waits to be taken (or one being graded has lost its worker)."""
    query = sa.select(requests.c.id).where(
        sa.or_(
            requests.c.state == QUEUED,
            sa.and_(requests.c.state == GRADING, requests.c.lease_until < utc(now())),
        )
    )
    with book.engine.connect() as connection:
        return connection.execute(query.limit(1)).first() is not None


def ahead_of(book: Book, request: Request) -> int:
    """How many requests asked before this one wait to be graded."""
    with book.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).where(
                    requests.c.state == QUEUED, requests.c.id < request.id
                )
            ).scalar()
            or 0
        )


def recent_seconds(book: Book, count: int = 20) -> list[float]:
    """How long the latest finished gradings took, from taken to done (for estimates)."""
    query = (
        sa.select(requests.c.phases)
        .where(requests.c.state.in_([DONE, NOT_GRADED]))
        .order_by(requests.c.id.desc())
        .limit(count)
    )
    found = []
    with book.engine.connect() as connection:
        for row in connection.execute(query):
            phases = json.loads(row.phases)
            taken = [at for phase, at in phases if phase == "connecting"]
            if taken:
                found.append((parse_utc(phases[-1][1]) - parse_utc(taken[-1])).total_seconds())
    return found


def take(book: Book, worker: str, lease: timedelta, most: int = 1) -> list[Request]:
    """The oldest queued requests, now this worker's (their lease runs ``lease``): the oldest,
    and up to ``most`` in all of the same lab (and counting alike), of students with none
    being graded, one each, in asking order; a request whose lease ended is queued again
    first. None queued: an empty list."""
    at = now()
    with book.engine.begin() as connection:
        connection.execute(
            sa.update(requests)
            .where(requests.c.state == GRADING, requests.c.lease_until < utc(at))
            .values(state=QUEUED, worker=None, lease_until=None)
        )
        busy = sa.select(requests.c.student).where(requests.c.state == GRADING)
        rows = connection.execute(
            sa.select(requests)
            .where(requests.c.state == QUEUED, requests.c.student.not_in(busy))
            .order_by(requests.c.id)
            .limit(max(most, 1) * 4)
            .with_for_update(skip_locked=True)
        ).all()
        chosen: list[Any] = []
        for row in rows:
            first = chosen[0] if chosen else row
            same = (row.lab, bool(row.counts)) == (first.lab, bool(first.counts))
            if same and row.student not in {c.student for c in chosen} and len(chosen) < most:
                chosen.append(row)
        for row in chosen:
            phases = [*json.loads(row.phases), ["connecting", utc(at)]]
            connection.execute(
                sa.update(requests)
                .where(requests.c.id == row.id)
                .values(state=GRADING, worker=worker, lease_until=utc(at + lease),
                        attempts=row.attempts + 1, phases=json.dumps(phases))
            )  # fmt: skip
    return [r for r in (get(book, int(row.id)) for row in chosen) if r is not None]


def phase(book: Book, request: Request, worker: str, name: str) -> None:
    """The request, still this worker's, reached a phase of its grading."""
    with book.engine.begin() as connection:
        row = connection.execute(
            sa.select(requests.c.phases).where(
                requests.c.id == request.id, requests.c.worker == worker,
                requests.c.state == GRADING,
            )
        ).first()  # fmt: skip
        if row is None:
            return
        phases = [*json.loads(row.phases), [name, utc(now())]]
        connection.execute(
            sa.update(requests).where(requests.c.id == request.id)
            .values(phases=json.dumps(phases))
        )  # fmt: skip


def finish(connection: sa.Connection, request: Request, worker: str, run_id: int) -> None:
    """In the transaction that records the request's grading (run ``run_id``): the request is
    done (or not graded, when its VM could not be reached). Raises, undoing the recording,
    when the request is no longer this worker's: another took it, and records it."""
    status = connection.execute(
        sa.select(reports.c.status, reports.c.error).where(
            reports.c.run_id == run_id, reports.c.student == request.student
        )
    ).first()
    graded = status is not None and status.status == "graded"
    row = connection.execute(
        sa.select(requests.c.phases).where(
            requests.c.id == request.id, requests.c.worker == worker, requests.c.state == GRADING
        )
    ).first()
    if row is None:
        raise LostRequest(f"request {request.id} is no longer this worker's ({worker})")
    at = utc(now())
    phases = [*json.loads(row.phases), ["recorded" if graded else "not graded", at]]
    reason = None if graded else f"not graded: {status.error if status else 'no report'}"
    connection.execute(
        sa.update(requests)
        .where(requests.c.id == request.id)
        .values(state=DONE if graded else NOT_GRADED, run_id=run_id, finished_at=at,
                phases=json.dumps(phases), lease_until=None, reason=reason)
    )  # fmt: skip


class LostRequest(RuntimeError):
    """A worker's request was taken by another (its lease ended): this worker records nothing."""


def put_back(book: Book, request: Request, worker: str, why: str, tried: bool) -> Request | None:
    """The request, not graded by this worker, waits again; ``tried``: our side could not
    grade it (a try used), after TRIES of which it is not graded. ``why`` is staff's to read
    (it may name our files); the student reads that our side could not grade it. (Neither
    uses up one of the student's requests.)"""
    with book.engine.begin() as connection:
        row = connection.execute(
            sa.select(requests).where(
                requests.c.id == request.id, requests.c.worker == worker,
                requests.c.state == GRADING,
            )
        ).first()  # fmt: skip
        if row is None:
            return None
        at = utc(now())
        given_up = tried and row.attempts >= TRIES
        attempts = row.attempts if tried else row.attempts - 1
        phases = [*json.loads(row.phases), ["not graded" if given_up else "queued", at]]
        connection.execute(
            sa.update(requests)
            .where(requests.c.id == request.id)
            .values(
                state=NOT_GRADED if given_up else QUEUED, worker=None, lease_until=None,
                attempts=attempts, phases=json.dumps(phases), detail=why,
                reason=f"our side could not grade it ({row.attempts} tries); staff are told"
                if given_up else "our side could not grade it yet: it is tried again",
                finished_at=at if given_up else None,
            )
        )  # fmt: skip
    return get(book, request.id)


def run_of(book: Book, run_id: int) -> dict[str, Any] | None:
    with book.engine.connect() as connection:
        row = connection.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    return dict(row._mapping) if row else None
