"""starsessions' session store, in the course's book: a session survives a restart of the web
server and serves every process of it alike; its id is kept only as its SHA-256."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from anyio import to_thread
from starsessions import SessionStore

from grader.actions import access
from grader.base.clock import now

if TYPE_CHECKING:
    from grader.course.gradebook import Gradebook

#: A session ends after this long without use (each use starts the time again)
IDLE = timedelta(days=1)
#: An unchanged session's end is pushed on at most this often: written at every page, each
#: page waited for the book's writer (a class's gradings being recorded) on a busy server
REFRESH = timedelta(minutes=10)


class BookStore(SessionStore):
    """Sessions in the book. A page that changed nothing in its session writes it only when
    its end was last pushed on more than REFRESH ago (so a session ends after IDLE without use,
    give or take REFRESH); a changed session is written at once."""

    def __init__(self, course: Gradebook) -> None:
        self.course = course
        self.written: dict[str, tuple[bytes, datetime]] = {}  # by this process: data, when

    async def read(self, session_id: str, lifetime: int) -> bytes:
        found = await to_thread.run_sync(access.read_session, self.course, session_id)
        return found or b""

    async def write(self, session_id: str, data: bytes, lifetime: int, ttl: int) -> str:
        lasts = timedelta(seconds=ttl) if ttl > 0 else IDLE
        at = now()
        last = self.written.get(session_id)
        if last is not None and _unchanged(last[0], data) and at - last[1] < REFRESH:
            return session_id
        await to_thread.run_sync(access.write_session, self.course, session_id, data, lasts)
        if len(self.written) >= 10_000:  # forget what needs writing again anyway
            self.written = {k: v for k, v in self.written.items() if at - v[1] < REFRESH}
        self.written[session_id] = (data, at)
        return session_id

    async def remove(self, session_id: str) -> None:
        self.written.pop(session_id, None)
        await to_thread.run_sync(access.remove_session, self.course, session_id)


def _unchanged(before: bytes, after: bytes) -> bool:
    """Whether a session holds what it held, the time starsessions notes at each use aside."""

    def kept(data: bytes) -> object:
        try:
            found = json.loads(data)
        except ValueError:
            return data
        if isinstance(found, dict) and isinstance(found.get("__metadata__"), dict):
            found["__metadata__"].pop("last_access", None)
        return found

    return before == after or kept(before) == kept(after)
