"""One grading of a course at a time: the course lock.

``grade course run`` and ``grade course due`` hold it while they decide whom to grade, grade and
record: two deadline runs at once (two cron hosts, a slow run overlapping the next tick) grade
each student once, the second finding nobody left. A SQLite book's lock is a file next to it
(``flock``); a PostgreSQL book's is an advisory lock on the server, so graders on several
machines share it. Whoever holds it is written where the next one can read it: a second
grading says who it waits for (or, with ``--no-wait``, who holds the course, and stops).

The shards of one class grading (``--shard K/N`` with one ``--batch``) hold the lock together:
they take it shared, under their batch's name, and a grading of another batch waits until every
shard of the first is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.base.errors import CourseBusy

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
        lock = _AdvisoryLock(book.engine, book.url, holder, batch)  # type: ignore[assignment]
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


class _AdvisoryLock:
    """A PostgreSQL advisory lock on a connection of its own, held while the grading runs.
    Shards of one batch take it shared. Who holds it is the connection's application_name
    (``lab-grader [BATCH] HOLDER``), which the server shows to the next one."""

    def __init__(self, engine: sa.Engine, url: str, holder: str, batch: str | None) -> None:
        self.key = zlib.crc32(f"lab-grader course {url}".encode()) & 0x7FFFFFFF
        self.guard = self.key ^ 0x5A5A5A5A  # taken while a shard decides whether to join
        self.batch = batch
        self.connection = engine.connect()
        name = f"lab-grader [{batch}] {holder}" if batch else f"lab-grader {holder}"
        self.connection.execute(
            sa.text("SELECT set_config('application_name', :name, false)"), {"name": name[:63]}
        )
        self.connection.commit()

    def try_acquire(self) -> bool:
        if self.batch is None:
            got = self.connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}
            ).scalar()
            self.connection.commit()
            return bool(got)
        self.connection.execute(sa.text("SELECT pg_advisory_xact_lock(:g)"), {"g": self.guard})
        others = {_batch_of(name) for name in self._holders()}
        got = False
        if not others or others == {self.batch}:
            got = bool(
                self.connection.execute(
                    sa.text("SELECT pg_try_advisory_lock_shared(:k)"), {"k": self.key}
                ).scalar()
            )
        self.connection.commit()  # lets the guard go
        return got

    def _holders(self) -> list[str]:
        rows = self.connection.execute(
            sa.text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a "
                "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = 0 "
                "AND l.objid = :k AND l.granted AND a.pid <> pg_backend_pid()"
            ),
            {"k": self.key},
        ).all()
        return [str(name or "") for (name,) in rows]

    def holder(self) -> str:
        found = self._holders()
        self.connection.commit()
        return "; ".join(n.removeprefix("lab-grader ") for n in found)

    def release(self) -> None:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            function = "pg_advisory_unlock_shared" if self.batch else "pg_advisory_unlock"
            self.connection.execute(sa.text(f"SELECT {function}(:k)"), {"k": self.key})
            self.connection.commit()
        self.close()

    def close(self) -> None:
        self.connection.close()


def _batch_of(application_name: str) -> str | None:
    """The batch a holder's application_name names (None: a grading of no batch)."""
    rest = application_name.removeprefix("lab-grader ")
    if rest.startswith("[") and "]" in rest:
        return rest[1 : rest.index("]")]
    return None
