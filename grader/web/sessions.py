"""starsessions' session store, in the course's book: a session survives a restart of the web
server and serves every process of it alike; its id is kept only as its SHA-256."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from anyio import to_thread
from starsessions import SessionStore

from grader.actions import access

if TYPE_CHECKING:
    from grader.course.gradebook import Gradebook

#: A session ends after this long without use (each use starts the time again)
IDLE = timedelta(days=1)


class BookStore(SessionStore):
    def __init__(self, course: Gradebook) -> None:
        self.course = course

    async def read(self, session_id: str, lifetime: int) -> bytes:
        found = await to_thread.run_sync(access.read_session, self.course, session_id)
        return found or b""

    async def write(self, session_id: str, data: bytes, lifetime: int, ttl: int) -> str:
        lasts = timedelta(seconds=ttl) if ttl > 0 else IDLE
        await to_thread.run_sync(access.write_session, self.course, session_id, data, lasts)
        return session_id

    async def remove(self, session_id: str) -> None:
        await to_thread.run_sync(access.remove_session, self.course, session_id)
