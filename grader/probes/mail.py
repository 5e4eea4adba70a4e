"""Mail services seen from outside: an SMTP greeting, a POP3 greeting, a POP3 login.

Each is one short conversation through ``net.Conversation``: a total deadline and a byte budget
for the whole exchange, so a server that trickles, floods or never ends its reply costs the
grading the probe's reply timeout at most. The standard library's clients speak the protocols.
"""

from __future__ import annotations

import contextlib
import poplib
import smtplib
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from grader.base.errors import CheckError
from grader.base.words import ErrorKind
from grader.probes import Outside, Probe, too_long
from grader.probes.net import Conversation, Exceeded


@dataclass(frozen=True)
class Greeting:
    """A server's greeting: whether one came (``ok``), its SMTP code, its text (or why none
    came)."""

    ok: bool
    code: int | None  # SMTP reply code; None for POP3 or when nothing answered
    text: str  # the greeting line(s), or why there was none
    trouble: str | None = None  # the conversation went past the probe's bounds


@dataclass(frozen=True)
class Pop3Answer:
    """A POP3 login: whether it worked (``ok``), how many messages STAT counted, the server's
    words (or why it did not work)."""

    ok: bool
    messages: int | None  # messages in the mailbox, from STAT
    text: str  # the server's answer, or why the login did not work
    trouble: str | None = None  # the conversation went past the probe's bounds, or made no sense


def why(error: BaseException, port: int, timeout: float) -> str:
    if isinstance(error, ConnectionRefusedError):
        return f"connection to port {port} refused (nothing listens there)"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"no answer on port {port} within {timeout:g} s"
    if isinstance(error, (smtplib.SMTPServerDisconnected, EOFError)):
        return f"port {port} closed the connection without a greeting"
    return f"port {port}: {error}"


def _conversation(outside: Outside, port: int) -> Conversation:
    return Conversation(
        outside.address,
        port,
        outside.timeout,
        outside.reply_timeout,
        outside.deadline,
        connected=outside.take(port),
        source=outside.source,
    )


class TurnedAway(CheckError):
    """An SMTP server answered 421: it limits how many connections one client may make in a
    while, and this grading is past it. Not the student's mistake: the check is an error."""

    kind = ErrorKind.TURNED_AWAY

    @classmethod
    def now(cls, own_machine: bool, port: int, said: str) -> TurnedAway:
        """The error for a 421 the server on ``port`` ``said`` now, in words a student reads."""
        when = datetime.now(timezone.utc).strftime("%H:%M UTC")
        who = (
            "on this VM it limits even the machine itself (a self-check connects from "
            "127.0.0.1, which stock configurations leave unlimited)"
            if own_machine
            else "gradings of this VM count against it (each one connects once)"
        )
        return cls(
            f"port {port} answered {said}: the SMTP server turned the grader away at {when}, as "
            f"it limits how many connections one client may make in a while, and {who}. This "
            "is not a lost mark; try again in a few minutes"
        )

    def explained(self, more: str) -> TurnedAway:
        """The same, with what the lab knows of its server's limit."""
        return TurnedAway(f"{self} ({more})")


class _SMTP(smtplib.SMTP):
    """smtplib's client over a bounded conversation (a mail server may pause before
    its greeting; the conversation's deadline is the reply timeout)."""

    def __init__(self, outside: Outside) -> None:
        super().__init__(local_hostname="lab-grader", timeout=outside.reply_timeout)
        self.outside = outside
        self.conversation: Conversation | None = None

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        self.conversation = _conversation(self.outside, port)
        return self.conversation


class _POP3(poplib.POP3):
    def __init__(self, outside: Outside, port: int) -> None:
        self.outside = outside
        self.conversation: Conversation | None = None
        try:
            super().__init__(outside.address, port, timeout=outside.reply_timeout)
        except BaseException as e:
            e.conversation = self.conversation  # type: ignore[attr-defined]
            if self.conversation is not None:
                self.conversation.close()
            raise

    def _create_socket(self, timeout: float) -> Any:
        self.conversation = _conversation(self.outside, self.port)
        return self.conversation

    def close(self) -> None:
        with contextlib.suppress(OSError):
            super().close()


def _goodbye(client: smtplib.SMTP | poplib.POP3) -> None:
    """QUIT politely, and close the connection whatever the server answers."""
    with contextlib.suppress(OSError, smtplib.SMTPException, poplib.error_proto, ValueError):
        client.quit()
    with contextlib.suppress(OSError):
        client.close()


def _failed(
    error: BaseException, conversation: Conversation | None, port: int, outside: Outside
) -> tuple[str, str | None]:
    """Why a conversation ended early, and whether that was the probe's trouble (a bound hit
    once the service had started to answer, or the grading's deadline: the check is an error)
    rather than the VM's answer (nothing answered: a lost mark for the check to decide)."""
    if conversation is None or conversation.why is None:
        return why(error, port, outside.reply_timeout), None
    if conversation.received or outside.deadline.passed:
        return f"port {port}: {conversation.why}", conversation.why
    return f"no answer on port {port} within {outside.reply_timeout:g} s", None


class SmtpGreeting(Probe):
    """``outside.smtp_greeting(port=25)``: connect, read the greeting, QUIT.

    Returns: a ``Greeting``; raises ``TurnedAway`` (an error, not a lost mark) on a 421.

    Evidence: the address and port, and the greeting.

    The prover mutates: whatever listens on the port, stopped (on the simulator, a VM of its
    own; never port 22, the grader's own way in)."""

    name = "smtp_greeting"
    Answer = Greeting

    def key(self, outside: Outside, port: int = 25) -> list[Any]:
        return [port]

    def ask(self, outside: Outside, port: int = 25) -> Greeting:
        outside.deadline.check()
        client = _SMTP(outside)
        started = time.monotonic()
        try:
            code, text = client.connect(outside.address, port)
        except (OSError, smtplib.SMTPException) as e:
            _goodbye(client)
            return Greeting(False, None, *_failed(e, client.conversation, port, outside))
        waited = time.monotonic() - started
        _goodbye(client)
        greeting = text.decode(errors="replace")
        if waited >= 1:
            greeting += f" (greeting after {waited:.1f} s)"
        return Greeting(code == 220, code, greeting)

    def shown(self, outside: Outside, answer: Greeting, port: int = 25) -> tuple[str, str]:
        where = f"{outside.address}:{port}{outside.from_where()}"
        return f"SMTP connection to {where}", f"{answer.code or ''} {answer.text}"

    def result(self, outside: Outside, answer: Greeting, port: int = 25) -> Greeting:
        if answer.trouble:
            raise too_long(f"the SMTP server on port {port}", answer.trouble)
        if answer.code == 421:
            raise TurnedAway.now(outside.own_machine, port, f"{answer.code} {answer.text}")
        return answer


class Pop3Greeting(Probe):
    """``outside.pop3_greeting(port=110)``: connect, read the greeting, QUIT.

    Returns: a ``Greeting``.

    Evidence: the address and port, and the greeting.

    The prover mutates: whatever listens on the port, stopped (on the simulator, a VM of its
    own; never port 22, the grader's own way in)."""

    name = "pop3_greeting"
    Answer = Greeting

    def key(self, outside: Outside, port: int = 110) -> list[Any]:
        return [port]

    def ask(self, outside: Outside, port: int = 110) -> Greeting:
        outside.deadline.check()
        try:
            client = _POP3(outside, port)
        except (OSError, poplib.error_proto) as e:
            return Greeting(
                False, None, *_failed(e, getattr(e, "conversation", None), port, outside)
            )
        text = client.getwelcome().decode(errors="replace")
        _goodbye(client)
        return Greeting(text.startswith("+OK"), None, text)

    def shown(self, outside: Outside, answer: Greeting, port: int = 110) -> tuple[str, str]:
        return f"POP3 connection to {outside.address}:{port}{outside.from_where()}", answer.text

    def result(self, outside: Outside, answer: Greeting, port: int = 110) -> Greeting:
        if answer.trouble:
            raise too_long(f"the POP3 server on port {port}", answer.trouble)
        return answer


class Pop3Login(Probe):
    """``outside.pop3_login(user, password, port=110)``: USER, PASS, STAT, QUIT. Read-only: no
    message is retrieved or deleted.

    Returns: a ``Pop3Answer``.

    Evidence: the login asked (the password masked) and the answer.

    The prover mutates: whatever listens on the port, stopped (on the simulator, a VM of its
    own; never port 22, the grader's own way in)."""

    name = "pop3_login"
    Answer = Pop3Answer

    def key(self, outside: Outside, user: str, password: str, port: int = 110) -> list[Any]:
        return [user, password, port]

    def ask(self, outside: Outside, user: str, password: str, port: int = 110) -> Pop3Answer:
        outside.deadline.check()
        try:
            client = _POP3(outside, port)
        except (OSError, poplib.error_proto) as e:
            return Pop3Answer(
                False, None, *_failed(e, getattr(e, "conversation", None), port, outside)
            )
        try:
            client.user(user)
            client.pass_(password)
            count, size = client.stat()
        except poplib.error_proto as e:
            text = e.args[0].decode(errors="replace") if e.args else str(e)
            return Pop3Answer(False, None, f"login refused: {text}")
        except Exceeded as e:
            return Pop3Answer(False, None, *_failed(e, client.conversation, port, outside))
        except (ValueError, IndexError):  # STAT answered, but not with a count
            return Pop3Answer(
                False, None, "STAT did not answer with a count", trouble="STAT's answer is garbled"
            )
        except OSError as e:
            return Pop3Answer(False, None, why(e, port, outside.reply_timeout))
        finally:
            _goodbye(client)
        return Pop3Answer(True, count, f"+OK {count} messages ({size} octets)")

    def shown(
        self, outside: Outside, answer: Pop3Answer, user: str, password: str, port: int = 110
    ) -> tuple[str, str]:
        asked = f"USER {user}, PASS ****, STAT, QUIT"
        where = f"{outside.address}:{port}{outside.from_where()}"
        return f"POP3 login to {where} as {user} ({asked})", answer.text

    def result(
        self, outside: Outside, answer: Pop3Answer, user: str, password: str, port: int = 110
    ) -> Pop3Answer:
        if answer.trouble:
            raise too_long(f"the POP3 server on port {port}", answer.trouble)
        return answer
