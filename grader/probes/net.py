"""A conversation with a service on the VM, bounded in time and in bytes as a whole.

A socket timeout bounds one read; a server that trickles a byte every second, or sends
continuation lines for ever, never trips it. ``Conversation`` bounds the whole exchange: a total
deadline (the probe's reply timeout, and never past the host's deadline) and a byte budget. It
looks like a socket to the standard library's clients (smtplib, poplib, http.client), which
read through ``makefile()``: past either bound a read raises ``Exceeded``, an ``OSError`` they
turn into their own "connection lost" errors, and ``why`` says what happened.
"""

from __future__ import annotations

import io
import socket
import time
from typing import Any

from grader.base.budget import SLICE, Deadline

#: Bytes one conversation may receive: a greeting and a few replies, never a flood.
RECEIVE_LIMIT = 64 * 1024


class Exceeded(OSError):
    """A conversation went past its deadline or its byte budget."""


class Conversation:
    """A connected TCP socket to ``(address, port)`` with a total deadline and byte budget."""

    def __init__(
        self,
        address: str,
        port: int,
        connect_timeout: float,
        reply_timeout: float,
        deadline: Deadline,
        limit: int = RECEIVE_LIMIT,
        kind: int = socket.SOCK_STREAM,
        connected: socket.socket | None = None,
        source: str | None = None,
    ) -> None:
        deadline.check()
        self.host_deadline = deadline
        self.reply_timeout = reply_timeout
        self.limit = limit
        self.received = 0
        self._readers = 0  # files made by makefile() still open: the socket outlives close()
        self._closing = False
        self.why: str | None = None  # set when a bound ended the conversation
        self.ends = time.monotonic() + reply_timeout
        if connected is not None:  # a connection the port scan made and kept for this
            self.sock = connected
            return
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, kind)
        try:
            self.sock.settimeout(deadline.bound(connect_timeout))
            if source is not None:  # see Outside.source
                self.sock.bind((source, 0))
            self.sock.connect((address, port))
        except BaseException:
            self.sock.close()
            raise

    def _remaining(self) -> float:
        return min(self.ends - time.monotonic(), self.host_deadline.remaining())

    def _expired(self) -> Exceeded:
        if self.host_deadline.passed:
            self.why = "the grading of this host ran out of time"
        else:
            self.why = f"no complete answer within {self.reply_timeout:g} s"
        return Exceeded(self.why)

    def recv_into(self, buffer: Any, size: int = 0) -> int:
        """As a socket's: into ``buffer``, within the deadline and the byte budget (past
        either, ``OSError``: the probe's answer says the service went past its bounds)."""
        view = memoryview(buffer)
        wanted = min(size or len(view), len(view), self.limit - self.received)
        if wanted <= 0:
            self.why = f"it sent more than {self.limit} bytes"
            raise Exceeded(self.why)
        while True:
            remaining = self._remaining()
            if remaining <= 0:
                raise self._expired()
            self.sock.settimeout(min(remaining, SLICE))
            try:
                count = self.sock.recv_into(view[:wanted])
            except (socket.timeout, TimeoutError):
                continue  # look at the deadlines again
            self.received += count
            return count

    def recv(self, size: int) -> bytes:
        """At most ``size`` bytes, as ``recv_into`` reads them."""
        buffer = bytearray(size)
        count = self.recv_into(buffer, size)
        return bytes(buffer[:count])

    def sendall(self, data: bytes) -> None:
        """Send all of ``data`` within the deadline."""
        remaining = self._remaining()
        if remaining <= 0:
            raise self._expired()
        self.sock.settimeout(remaining)
        self.sock.sendall(data)

    def send(self, data: bytes) -> int:
        """Send all of ``data`` (as ``sendall``); its length."""
        self.sendall(data)
        return len(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        """A file to read lines from (``readline(limit)``), bytes only, within the bounds."""
        if "b" not in mode or "w" in mode:
            raise ValueError(f"a Conversation reads bytes only, not {mode!r}")
        self._readers += 1
        return io.BufferedReader(_Reader(self))

    def settimeout(self, timeout: float | None) -> None:
        """The clients set their own per-read timeouts; the conversation's bounds rule."""

    def gettimeout(self) -> float:
        """The seconds left before the deadline."""
        return max(self._remaining(), 0.0)

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self.sock.fileno()

    def shutdown(self, how: int) -> None:
        """Shut the socket down, as a socket's ``shutdown``."""
        self.sock.shutdown(how)

    def close(self) -> None:
        """As a socket's close(): the connection ends once the files made from it are closed
        too (http.client closes the connection while its response is still being read)."""
        self._closing = True
        if self._readers <= 0:
            self.sock.close()

    def _reader_closed(self) -> None:
        self._readers -= 1
        if self._closing and self._readers <= 0:
            self.sock.close()

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Reader(io.RawIOBase):
    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self.conversation._reader_closed()
        super().close()

    def readinto(self, buffer: Any) -> int:
        return self.conversation.recv_into(buffer)
