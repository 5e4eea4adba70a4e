"""/etc/inetd.conf and /etc/services, read as openbsd-inetd reads them.

An entry is ``service socket-type protocol wait[.max] user[.group] server [args]``; the service
may carry a listen address (``127.0.0.1:pop3``) and is a name or alias from /etc/services, or a
port number. A line whose first non-blank character is ``#`` is a comment: it can hold a
commented-out entry (``#pop3 stream tcp ...``, Debian's ``#<off># telnet ...``), which is how a
service is disabled. Malformed lines are ignored, as inetd ignores them, except one: a
``<off>#`` left at the start of an entry when only the first ``#`` of ``#<off>#`` was removed.
inetd ignores that line too, and it is kept as a disabled entry that says what is left to remove.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from grader.toolkit import number as ascii_number

#: What a failure caused by inetd still running with an older inetd.conf says it comes from
INETD_NOT_RESTARTED = "inetd_not_restarted"

SOCKET_TYPES = frozenset({"stream", "dgram", "raw", "rdm", "seqpacket"})
_DISABLED_MARK = re.compile(r"^#+\s*(?:<off>#\s*)?")
_HALF_REMOVED = re.compile(r"^<off>#\s*")  # "#<off># telnet ..." with its first "#" removed


@dataclass(frozen=True)
class Entry:
    line: int  # 1-based line number in the file
    text: str  # the line as written, without surrounding blanks
    active: bool  # False for a commented-out entry
    service: str  # name, alias or port, without a listen address
    socket_type: str
    protocol: str  # tcp, tcp4, tcp6, udp, udp6, rpc/tcp ...
    half_removed: bool = False  # starts with "<off>#": inetd ignores the line

    @property
    def family(self) -> str:
        """tcp or udp, whatever the IP version; '' for rpc and unix entries."""
        base = self.protocol.rstrip("46")
        return base if base in ("tcp", "udp") else ""

    def where(self) -> str:
        if self.half_removed:
            return f"line {self.line}: {self.text} (remove the '<off>#' left at its start)"
        return f"line {self.line}: {self.text}"


def parse_inetd_conf(text: str) -> list[Entry]:
    return parse_inetd_lines(enumerate(text.splitlines(), start=1))


def parse_inetd_lines(numbered: Iterable[tuple[int, str]]) -> list[Entry]:
    """The entries among (line number, line) pairs: a whole file's, or the lines picked."""
    entries = []
    for number, raw in numbered:
        stripped = raw.strip()
        if not stripped:
            continue
        half_removed = _HALF_REMOVED.match(stripped) is not None
        active = not stripped.startswith("#") and not half_removed
        mark = _HALF_REMOVED if half_removed else _DISABLED_MARK
        body = stripped if active else mark.sub("", stripped)
        fields = body.split()
        if len(fields) < 6 or fields[1] not in SOCKET_TYPES:
            continue  # a plain comment, or a line inetd would reject
        service = fields[0].rsplit(":", 1)[-1] if ":" in fields[0] else fields[0]
        entries.append(
            Entry(number, stripped[:200], active, service, fields[1], fields[2], half_removed)
        )
    return entries


def parse_services(text: str) -> dict[str, set[tuple[int, str]]]:
    """/etc/services: every name and alias -> {(port, 'tcp' | 'udp' ...)}."""
    return parse_services_lines(text.splitlines())


def parse_services_lines(lines: Iterable[str]) -> dict[str, set[tuple[int, str]]]:
    names: dict[str, set[tuple[int, str]]] = {}
    for raw in lines:
        fields = raw.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        text, _, protocol = fields[1].partition("/")
        port = ascii_number(text, 65535)
        if port is None:  # not a port (glibc reads ASCII digits only): not an entry
            continue
        for name in [fields[0], *fields[2:]]:
            names.setdefault(name, set()).add((port, protocol))
    return names


def entry_port(entry: Entry, services: Mapping[str, set[tuple[int, str]]]) -> int | None:
    """The port an entry serves, or None when inetd could not resolve its service."""
    if entry.service.isascii() and entry.service.isdigit():  # a port, as inetd reads one
        return ascii_number(entry.service, 65535)
    ports = {port for port, proto in services.get(entry.service, ()) if proto == entry.family}
    return min(ports) if ports else None


def entries_for_port(
    entries: Iterable[Entry],
    services: Mapping[str, set[tuple[int, str]]],
    port: int,
    *,
    active: bool | None = None,
) -> list[Entry]:
    """Entries (of any protocol) serving ``port``; only active ones with ``active=True``."""
    return [
        e
        for e in entries
        if entry_port(e, services) == port and (active is None or e.active == active)
    ]
