"""One grading of a course at a time: the course lock.

``grade course run`` and ``grade course due`` hold it while they decide whom to grade, grade and
record: two deadline runs at once (two cron hosts, a slow run overlapping the next tick) grade
each student once, the second finding nobody left. A SQLite book's lock is a file next to it
(``flock``); a PostgreSQL book's is an advisory lock on the server, so graders on several
machines share it. Whoever holds it is written where the next one can read it: a second
grading says who it waits for (or, with ``--no-wait``, who holds the course, and stops).

The shards of one class grading (``--shard K/N`` with one ``--batch``) hold the lock together:
they take it shared, under their batch's name, and a grading of another batch waits until every
shard of the first is done. On PostgreSQL a shard also holds a lock keyed by a hash of its batch's
name, which is how it tells its batch's holders from others; whoever holds the course is a row of
the book's ``lock_holders``, named whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.base.errors import CourseBusy
from grader.course.book import lock_holders

#: How long a grading waits for the lock by default (a whole class run, at most)
WAIT = 3600.0
POLL = 0.5


def holder_text(action: str, by: str, batch: str | None = None) -> str:
    return (
        f"{action} by {by} on {socket.gethostname()} (pid {os.getpid()}), since "
        f"{now().strftime('%Y-%m-%d %H:%M:%S %Z')}" + (f", batch {batch}" if batch else "")
    )


@contextlib.contextmanager
def course_lock(
    book: Any, action: str, wait: float | None = WAIT, batch: str | None = None
) -> Iterator[None]:
    """Hold the course's lock while the block runs. ``wait``: seconds to wait for it (0: do
    not wait); ``batch``: the shards of one class grading share the lock."""
    holder = holder_text(action, book.by, batch)
    if book.url.startswith("sqlite"):
        lock = _FileLock(Path(book.url.removeprefix("sqlite:///") + ".lock"), holder, batch)
    else:
        lock = _AdvisoryLock(book.engine, holder, batch)  # type: ignore[assignment]
    deadline = time.monotonic() + (wait or 0)
    told = False
    while not lock.try_acquire():
        held_by = lock.holder() or "another grading"
        if wait is None or time.monotonic() >= deadline:
            lock.close()
            raise CourseBusy(
                f"another grading holds this course: {held_by}; run again when it is done"
                + ("" if not wait else f" (waited {wait:g} s)")
            )
        if not told:
            sys.stderr.write(f"grade: waiting for the course, held by {held_by}\n")
            told = True
        time.sleep(POLL)
    try:
        yield
    finally:
        lock.release()


class _FileLock:
    """flock on a file next to a SQLite book: exclusive, or shared by the shards of a batch
    (the batch's name sits in the file beside the lock)."""

    def __init__(self, path: Path, holder: str, batch: str | None) -> None:
        self.path, self.holder_line, self.batch = path, holder, batch
        self.file = open(path, "a+")  # noqa: SIM115 - held until release()
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
        self.guard = open(str(path) + ".guard", "a+")  # noqa: SIM115 - serialises who joins

    def try_acquire(self) -> bool:
        fcntl.flock(self.guard, fcntl.LOCK_EX)
        try:
            if self.batch is None:
                return self._flock(fcntl.LOCK_EX)
            if self._flock(fcntl.LOCK_EX):  # nobody holds it: we start the batch
                self._write({"batch": self.batch, "holders": [self.holder_line]})
                fcntl.flock(self.file, fcntl.LOCK_SH)  # downgrade, so the batch can join
                return True
            found = self._read()
            if found.get("batch") == self.batch and self._flock(fcntl.LOCK_SH):
                self._write({**found, "holders": [*found.get("holders", []), self.holder_line]})
                return True
            return False
        finally:
            fcntl.flock(self.guard, fcntl.LOCK_UN)

    def _flock(self, mode: int) -> bool:
        try:
            fcntl.flock(self.file, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if mode == fcntl.LOCK_EX and self.batch is None:
            self._write({"holders": [self.holder_line]})
        return True

    def _write(self, data: dict[str, Any]) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.file.write(json.dumps(data))
        self.file.flush()

    def _read(self) -> dict[str, Any]:
        self.file.seek(0)
        try:
            found = json.loads(self.file.read() or "{}")
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}

    def holder(self) -> str:
        return "; ".join(self._read().get("holders", []))

    def release(self) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.close()

    def close(self) -> None:
        self.file.close()
        self.guard.close()


def _key(text: str) -> int:
    """A key of PostgreSQL's advisory locks (a bigint): 63 bits of the text's SHA-256."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


#: The course's lock: advisory locks belong to their database, and a book is one database, so
#: every grader of the book takes this key, whatever URL it reached the server by
COURSE = _key("lab-grader course")
GUARD = _key("lab-grader course guard")  # taken while a shard decides whether to join


class _AdvisoryLock:
    """A PostgreSQL advisory lock on a connection of its own, held while the grading runs.
    Shards of one batch take it shared, and with it a lock keyed by a hash of their batch's
    name: a shard joins when every other holder of the course holds its batch's key too. Who
    holds it is the row of ``lock_holders`` for the connection's server pid, written before the
    lock is tried and read by the next grading, which the lock's own holders decide (a row of a
    connection that holds nothing is never shown)."""

    def __init__(self, engine: sa.Engine, holder: str, batch: str | None) -> None:
        self.batch = _key(f"lab-grader batch {batch}") if batch is not None else None
        self.connection = engine.connect()
        # for people looking at the server's sessions (cut at 63 bytes by the server)
        self.connection.execute(
            sa.text("SELECT set_config('application_name', :name, false)"),
            {"name": f"lab-grader {holder}"[:63]},
        )
        # this connection's row, and none of a connection that is gone
        self.connection.execute(
            sa.text(
                "DELETE FROM lock_holders WHERE pid = pg_backend_pid() "
                "OR pid NOT IN (SELECT pid FROM pg_stat_activity)"
            )
        )
        me = sa.func.pg_backend_pid()
        self.connection.execute(sa.insert(lock_holders).values(pid=me, holder=holder))
        self.connection.commit()

    def _call(self, function: str, key: int) -> bool:
        found = self.connection.execute(sa.text(f"SELECT {function}(:k)"), {"k": key}).scalar()
        return bool(found)

    def try_acquire(self) -> bool:
        if self.batch is None:
            got = self._call("pg_try_advisory_lock", COURSE)
            self.connection.commit()
            return got
        self.connection.execute(sa.text("SELECT pg_advisory_xact_lock(:g)"), {"g": GUARD})
        others = set(self._holding(COURSE))
        got = False
        if others <= set(self._holding(self.batch)):
            got = self._call("pg_try_advisory_lock_shared", COURSE)
            if got and not self._call("pg_try_advisory_lock_shared", self.batch):
                self._call("pg_advisory_unlock_shared", COURSE)  # nobody takes a batch's alone
                got = False
        self.connection.commit()  # lets the guard go
        return got

    def _holding(self, key: int) -> list[tuple[int, str]]:
        """The other connections to this database that hold ``key``, oldest first: their pid
        and who they are (the book's row, else their application_name)."""
        rows = self.connection.execute(
            sa.text(
                "SELECT l.pid, COALESCE(h.holder, a.application_name) FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "LEFT JOIN lock_holders h ON h.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND CAST(l.classid AS bigint) = :high AND CAST(l.objid AS bigint) = :low "
                "AND l.pid <> pg_backend_pid() ORDER BY a.backend_start, l.pid"
            ),
            {"high": key >> 32, "low": key & 0xFFFFFFFF},
        ).all()
        return [(int(pid), str(name or "")) for pid, name in rows]

    def holder(self) -> str:
        found = self._holding(COURSE)
        self.connection.commit()
        return "; ".join(name.removeprefix("lab-grader ") for _, name in found)

    def release(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if self.batch is None:
                self._call("pg_advisory_unlock", COURSE)
            else:
                self._call("pg_advisory_unlock_shared", COURSE)
                self._call("pg_advisory_unlock_shared", self.batch)
            self.connection.commit()
        self.close()

    def close(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self.connection.execute(
                sa.delete(lock_holders).where(lock_holders.c.pid == sa.func.pg_backend_pid())
            )
            self.connection.commit()
        self.connection.close()
