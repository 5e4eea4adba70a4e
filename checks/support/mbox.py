"""Mailboxes in mbox format, as sendmail's local delivery writes them to /var/spool/mail.

A message starts at a ``From sender date`` line at the top of the file or after an empty line.
Parsing never raises: whatever is in a student's mailbox, a check gets messages to look at.
"""

from __future__ import annotations

import email
import email.header
import email.message
import re
from dataclasses import dataclass
from email import policy

_FROM_LINE = re.compile(rb"(?:\A|\n\n)(From [^\n]*)\n")
#: Received headers that mark a message submitted on the VM itself (mail, sendmail -t), not
#: received over SMTP: sendmail's MSP, postfix's pickup, exim's local reception.
LOCAL_SUBMISSION = re.compile(r"/Submit\)|\(Postfix, from userid|\bwith local\b", re.IGNORECASE)
SMTP_RECEIPT = re.compile(r"\bwith E?SMTPS?A?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    index: int  # 1-based position in the mailbox
    envelope_sender: str  # from the From_ line
    subject: str
    received: tuple[str, ...]  # Received headers, newest first
    return_path: str
    body: str

    @property
    def locally_submitted(self) -> bool:
        return any(LOCAL_SUBMISSION.search(r) for r in self.received)

    @property
    def arrived_by_smtp(self) -> bool:
        return bool(self.received) and bool(SMTP_RECEIPT.search(self.received[0]))

    @property
    def sender_user(self) -> str:
        """The local part of the envelope sender (Return-Path, else the From_ line)."""
        address = self.return_path or self.envelope_sender
        return address.strip("<> ").split("@", 1)[0].lower()

    def describe(self) -> str:
        return f"message {self.index} from {self.envelope_sender or '?'}: {self.subject!r}"


def _text(value: object) -> str:
    """A header's text, with RFC 2047 words decoded when they can be."""
    if value is None:
        return ""
    raw = str(value)
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except Exception:  # a malformed encoded word: keep it as written
        return raw


def _body(message: email.message.Message) -> str:
    parts = message.walk() if message.is_multipart() else [message]
    texts = []
    for part in parts:
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                texts.append(payload.decode(charset, errors="replace"))
            except LookupError:  # an unknown charset name
                texts.append(payload.decode("utf-8", errors="replace"))
    return "\n".join(texts)


def parse_mbox(data: bytes) -> list[Message]:
    starts = [(m.start(1), m.group(1)) for m in _FROM_LINE.finditer(data)]
    messages = []
    for n, (start, from_line) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(data)
        raw = data[start + len(from_line) + 1 : end]
        parsed = email.message_from_bytes(raw, policy=policy.compat32)
        fields = from_line.decode("utf-8", errors="replace").split()
        messages.append(
            Message(
                index=n + 1,
                envelope_sender=fields[1] if len(fields) > 1 else "",
                subject=" ".join(_text(parsed.get("Subject")).split()),
                received=tuple(
                    " ".join(_text(r).split()) for r in parsed.get_all("Received") or ()
                ),
                return_path=_text(parsed.get("Return-Path")).strip(),
                body=_body(parsed),
            )
        )
    return messages


def normalise(text: str) -> str:
    """Lower case, straight quotes dropped, blanks collapsed: how a person compares text."""
    text = re.sub("[\"'\u2018\u2019\u201c\u201d]", "", text)
    return " ".join(text.lower().split())
