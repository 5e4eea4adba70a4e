"""The grader's toolkit for checks: what a lab's checks may use besides testinfra's ``host``.

A check is a plain pytest-testinfra test: everything it learns about the VM comes through
``host`` (commands on the VM, memoized, recorded as evidence, prefetched and replayed by
``grade regrade``) or ``outside`` (probes from the grading machine); the rubric's paths and
variables come through ``lab``. The helpers here are built on ``host`` in the same way, so a
check that uses them runs unchanged under plain ``pytest --hosts=...`` too.

Two rules hold for every helper:

* **Nothing from the VM is trusted.** Files are read without following a symbolic link (a
  student's mailbox that points at /etc/shadow is never read), names from the VM are never put
  in a command, every argument is quoted.
* **A bound is never a verdict.** What the VM sends is read up to a bound (``READ_LIMIT``).
  Ask the VM for what the check needs (the lines that matter, with ``read_lines``) rather than
  a whole file, so that size stops mattering; where a bound is still reached, the content says
  so, and reading it as if it were whole raises ``ReadInPart``: the check is ``error`` ("read
  in part, not decided"), not counted against the student, never ``fail``.

* **Every line is read whole, or named.** A number in what the VM wrote is ASCII digits within a
  bound (``number``: never ``int()`` of a VM's text, which takes '٣', refuses '²' and more than
  4300 digits); a line a helper cannot read is named in ``Unreadable``, an error of the grading
  (the check is ``error``, kind ``unreadable``), never a crash and never a verdict on the
  lines that did read (the one it could not read may be the one that decides).

* **A bound on the VM's answers is never a verdict either.** The grader keeps at most 8 MiB of one
  command's output and ``--evidence-limit`` of a VM's answers; a check that asks for more gets
  ``OutputLimit`` (``EvidenceLimit``), an error, not a lost mark. A helper whose answer only
  explains a verdict may catch it and say so in a note.

Also here: ``skip`` and ``fail`` (pytest's own outcomes when pytest is there), ``note`` (say
something about a check without changing its verdict), and what a pack's own kind of outside
probe is made of (``Probe``, ``Conversation``, and ``TurnedAway`` for a service that refuses a
probe). This module and ``grader.sim`` (for a pack's simulated scenarios) are the grader's
whole public pack API: a pack imports nothing else of the grader (tests/test_quality.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from grader.base.budget import EvidenceLimit, OutputLimit
from grader.base.errors import CheckError
from grader.base.evidence import command_in_words, note, record
from grader.base.numbers import number
from grader.base.outcomes import fail, skip
from grader.base.words import ErrorKind
from grader.probes import Probe
from grader.probes.mail import TurnedAway
from grader.probes.net import Conversation

__all__ = [
    "READ_LIMIT",
    "Busy",
    "Conversation",
    "EvidenceLimit",
    "FileContent",
    "Lines",
    "Listener",
    "OutputLimit",
    "Probe",
    "Process",
    "ReadInPart",
    "TurnedAway",
    "Unreadable",
    "compare_views",
    "fail",
    "is_loopback",
    "listdir",
    "listeners",
    "note",
    "number",
    "output",
    "processes",
    "read_file",
    "read_lines",
    "reads",
    "skip",
    "unreadable",
]

READ_LIMIT = 4 * 1024 * 1024
"""Bytes of a file (``read_file``), or of the lines asked for (``read_lines``), read at most:
past it, what was read says so, and deciding on it as if whole is an error (``ReadInPart``)."""


class ReadInPart(CheckError):
    """A check would have decided on part of what it asked for: it is an error instead."""


class Unreadable(CheckError):
    """What the VM printed holds a line the grader cannot read (a fake ``ps`` or ``ss``, a tool
    that is not the one the lab expects): the check is an error (``unreadable``) that names the
    line, not decided on the lines that did read, and not counted against the student."""

    kind = ErrorKind.UNREADABLE


def unreadable(what: str, number: int, line: str | bytes, expected: str) -> Unreadable:
    """The error for line ``number`` of ``what`` (a command in words, or a file), which is not
    ``expected``; the line is shown in part, quoted, its control characters escaped."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    shown = repr(text[:120]) + (f" ({len(text) - 120} more characters)" if len(text) > 120 else "")
    return Unreadable(
        f"{what} gave a line the grader cannot read (line {number}: {shown}; expected "
        f"{expected}), so this is not decided on the rest"
    )


#: Lines of a process or socket list read at most: far more than a lab VM has, and a bound on
#: what a fake ``ps`` or ``ss`` makes the grader hold
LIST_LINES = 100_000
#: The largest process id Linux gives (pid_max's limit)
LARGEST_PID = 4_194_304


def _lines(text: str | bytes, what: str) -> list[Any]:
    """A list's lines (split at newlines only: a process title may hold U+2028), bounded."""
    lines = text.split("\n") if isinstance(text, str) else text.split(b"\n")
    if len(lines) > LIST_LINES + 1:
        raise Unreadable(
            f"{what} gave {len(lines) - 1} lines, more than the grader reads of a list "
            f"({LIST_LINES}), so this is not decided on part of it"
        )
    return lines


class Busy(CheckError):
    """The VM was too busy to answer (a daemon refusing work under load, in its own words):
    not the student's mistake, so the check is an error (``busy``), not a lost mark."""

    kind = ErrorKind.BUSY


# ----- what listens, what runs -----


@dataclass(frozen=True)
class Listener:
    """A socket listening on the VM, as ``listeners`` finds it."""

    protocol: str  # tcp or udp
    address: str  # 0.0.0.0, ::, 127.0.0.1 ...

    def __str__(self) -> str:
        return f"{self.protocol} {self.address}"


def listeners(host: Any, port: int, protocols: tuple[str, ...] = ("tcp",)) -> list[Listener]:
    """What listens on ``port`` on the VM, on any address, IPv4 or IPv6 (``ss -l``, else
    ``netstat``, as testinfra finds them).

    Returns: a ``Listener`` (protocol, address) for each, ``[]`` when nothing listens there.
    Raises ``Unreadable`` naming a line of the list that does not read.

    Evidence: the command and what it printed.

    The prover mutates: nothing it reads (a port a check asks from ``outside`` is stopped:
    ``whatever listens on TCP port N stopped``)."""
    found = [
        Listener(protocol, address)
        for protocol, address, number in _listening(host)
        if protocol in protocols and number == port
    ]
    return list(dict.fromkeys(found))  # ss's "*" is reported as both 0.0.0.0 and ::


def _listening(host: Any) -> list[tuple[str, str, int]]:
    """(protocol, address, port) of each TCP and UDP socket listening on the VM: the command
    testinfra's socket module runs (ss, else netstat, as it finds them), read as it reads
    them, but every line of a TCP or UDP socket read whole or named (``Unreadable``)."""
    # lazy: start-up (testinfra's modules are only needed once a check asks)
    from testinfra.modules.socket import LinuxSocketNetstat, LinuxSocketSS

    try:
        module = host.socket
    except (RuntimeError, NotImplementedError, ValueError) as e:
        raise CheckError(f"the VM's listening sockets cannot be listed: {e}") from None
    if issubclass(module, LinuxSocketSS):
        command = "%s --numeric --listening"
        result = host.run(command, module._command)
        lines = _lines(result.stdout_bytes, _named(result))[1:]  # ss's own header
        return list(_read_ss(lines, _named(result)))
    if issubclass(module, LinuxSocketNetstat):
        command = "%s -n -l"
        result = host.run(command, module._command)
        if result.rc != 0:
            output(host, command, module._command)  # raises, saying why
        return list(_read_netstat(_lines(result.stdout_bytes, _named(result)), _named(result)))
    found = []
    for spec in module.get_listening_sockets():  # another system: testinfra reads it
        protocol, _, rest = spec.partition("://")
        address, _, port = rest.rpartition(":")
        if protocol in ("tcp", "udp") and (value := number(port, 65535)) is not None:
            found.append((protocol, address, value))
    return found


def _named(result: Any) -> str:
    return command_in_words(_shown(result))


def _read_ss(lines: list[bytes], what: str) -> Any:
    expected = "NETID STATE RECV-Q SEND-Q ADDRESS:PORT PEER, the port in digits 0-9"
    for n, line in enumerate(lines, start=2):
        fields = line.split()
        if not fields or fields[0] not in (b"tcp", b"udp"):
            continue  # unix sockets and the like: no port
        if len(fields) < 6:
            raise unreadable(what, n, line, expected)
        address, sep, port = fields[4].rpartition(b":")
        value = number(port, 65535)
        if not sep or value is None:
            raise unreadable(what, n, line, expected)
        if fields[1] not in (b"LISTEN", b"UNCONN"):
            continue
        protocol, host = fields[0].decode(), address.decode("utf-8", errors="replace")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # ss writes an IPv6 address in brackets
        if host == "*":  # any address, IPv6 and IPv4
            yield protocol, "::", value
            yield protocol, "0.0.0.0", value
        else:
            yield protocol, host, value


def _read_netstat(lines: list[bytes], what: str) -> Any:
    expected = "PROTO RECV-Q SEND-Q ADDRESS:PORT ..., the port in digits 0-9"
    for n, line in enumerate(lines, start=1):
        fields = line.replace(b"\t", b" ").split()
        if not fields or fields[0] not in (b"tcp", b"udp", b"tcp6", b"udp6"):
            continue
        address, sep, port = fields[3].rpartition(b":") if len(fields) > 3 else (b"", b"", b"")
        value = number(port, 65535)
        if not sep or value is None:
            raise unreadable(what, n, line, expected)
        protocol = fields[0].decode().rstrip("6")
        yield protocol, address.decode("utf-8", errors="replace"), value


def is_loopback(address: str) -> bool:
    """Whether ``address`` is the VM's own loopback (127.0.0.0/8 or ::1): a daemon listening
    there only is not reached from outside."""
    return address.startswith("127.") or address == "::1"


def compare_views(host: Any, outside: Any, port: int) -> None:
    """Note it when the VM's own socket list and the port scan from outside disagree about a TCP
    port: a firewall, a fake ``ss``, or a daemon that restarted in between. Returns nothing and
    changes no verdict: the note is kept with the check.

    Evidence: ``listeners``' command and the port scan (``outside.port_state``).

    The prover mutates: the port, stopped (its listener killed)."""
    # only sockets that take the scan's address family: the scan goes to one address, and a
    # socket on [::] alone (IPv6-only) refuses IPv4 (ss shows a dual-stack one as *, both)
    family_v6 = ":" in outside.address
    inside = [
        x
        for x in listeners(host, port)
        if not is_loopback(x.address) and (":" in x.address) == family_v6
    ]
    state = outside.port_state(port)
    if inside and state != "open":
        note(
            f"inconsistent: on the VM port {port} listens ({', '.join(map(str, inside))}), but "
            f"from outside it is {state}: a firewall, a fake listener, or a daemon that "
            "restarted?"
        )
    elif not listeners(host, port) and state == "open":
        note(
            f"inconsistent: nothing listens on port {port} according to the VM (ss), but from "
            "outside it is open: a fake ss, or a daemon that started in between?"
        )


@dataclass(frozen=True)
class Process:
    """One process of the VM, as ``ps`` lists it (see ``processes``)."""

    pid: int
    ppid: int
    comm: str  # its command name (at most 15 characters: the kernel's), "sshd"
    args: str  # its command line, or the title it gave itself ("sshd: /usr/sbin/sshd ...")
    #: ps's STAT: the state letter (R running, S sleeping, D in a wait, T stopped, Z a zombie,
    #: I idle ...) and its flags (s a session leader, + in the foreground ...); "" when the
    #: grading that recorded it did not ask (a regrade of a grading made before it was asked)
    state: str = ""

    @property
    def zombie(self) -> bool:
        """It has ended and its parent has not reaped it (``[cron] <defunct>``): it runs no
        more, and ``processes`` leaves it out unless asked."""
        return self.state.startswith("Z")


def output(host: Any, command: str, *args: str, about: str | None = None) -> str:
    """The standard output of a command that must succeed (``command`` with ``args`` put in,
    quoted, as testinfra's ``host.run`` does: ``output(host, "getent passwd %s", user)``).

    Returns: its standard output, as text. When the command fails the check cannot judge: that
    is an error of the grading, not a failure of the student's VM, so it raises (the check is
    ``error``): ``PermissionError`` when the VM said "Permission denied" (the grader needs root
    there), else ``CheckError`` with its exit status and what it said. A check that decides
    on the exit status (``visudo -c`` refusing a file) asks ``host.run`` instead and reads
    ``rc``. ``about`` names what the command reads, for the message a student sees (else the
    file a safe read is of, or the command).

    Evidence: the command as asked and what it printed (the HTML report shows the command).

    The prover mutates: what the command reads where it is also read with ``read_file`` or
    ``read_lines``; the files a command reads on its own are not yet derived."""
    result = host.run(command, *args)
    if result.rc != 0:
        if "Permission denied" in result.stderr:
            what = about or _what(command, args)
            raise PermissionError(
                f"{what}: only root may read it; run the grader as root (with sudo, or "
                "after su - where there is no sudo)"
            )
        said = result.stderr.strip()
        raise CheckError(
            f"{about or command_in_words(_shown(result))} failed (exit status {result.rc})"
            + (f": {said[:300]}{'...' if len(said) > 300 else ''}" if said else "")
        )
    return str(result.stdout)


def _shown(result: Any) -> str:
    return str(result.command.decode(errors="replace"))


def _what(command: str, args: tuple[str, ...]) -> str:
    """A failed command in words a person reads: the file it was about, else the command."""
    if command in (_READ_FILE, _READ_LINES) and args:
        return args[0]
    return command_in_words(command % args if args else command)


#: The process list: ``ps``'s STAT column says which processes ended unreaped (zombies)
_PS = "ps -e -ww -o pid=,ppid=,stat=,comm=,args="
#: The process list graders asked before a Process had its state, as their evidence archives
#: recorded it: a regrade of one of those reads it, and gives the verdict the grading gave
_PS_RECORDED = "ps -e -ww -o pid=,ppid=,comm=,args="
#: ps's STAT: a state letter and its flags (man ps, PROCESS STATE CODES)
_STATE = re.compile(r"[DIRSTtWXZP][<NLsl+]*")


def processes(host: Any, zombies: bool = False) -> dict[int, Process]:
    """Every process running on the VM, by pid: its parent, command name, arguments and state
    (``ps -e -o pid=,ppid=,stat=,comm=,args=``). A process that ended and that its parent has
    not reaped (a zombie: ``[cron] <defunct>``) runs no more and is left out, unless
    ``zombies``.

    Returns: ``{pid: Process}``. Raises ``Unreadable`` (the check is an error, not a lost
    mark) naming a line that is not ``PID PPID STAT COMM ARGS`` (ids in digits 0-9, a state
    as ps writes one), and ``CheckError`` when ``ps`` fails.

    Evidence: the ``ps`` command and what it printed.

    The prover can mutate: a process a check found (stopped, where ``grade prove --mutants``
    derives mutants from the process list)."""
    try:
        listed, with_state = output(host, _PS), True
    except CheckError as e:
        if e.kind != ErrorKind.NEEDS_LIVE_VM:
            raise
        try:  # an evidence archive of a grading that asked the process list without STAT
            listed, with_state = output(host, _PS_RECORDED), False
        except CheckError:
            raise e from None
    what = command_in_words(_PS if with_state else _PS_RECORDED)
    expected = (
        "PID PPID STAT COMM ARGS, the ids in digits 0-9"
        if with_state
        else ("PID PPID COMM ARGS, the ids in digits 0-9")
    )
    table = {}
    for n, line in enumerate(_lines(listed, what), start=1):
        fields = line.split(None, 4 if with_state else 3)
        if not fields:
            continue
        pid = number(fields[0], LARGEST_PID)
        ppid = number(fields[1], LARGEST_PID) if len(fields) > 1 else None
        state = ""
        if with_state:
            state = fields.pop(2) if len(fields) > 2 else ""
            if not _STATE.fullmatch(state):
                raise unreadable(what, n, line, expected)
        if pid is None or ppid is None:
            raise unreadable(what, n, line, expected)
        comm = fields[2] if len(fields) > 2 else ""
        found = Process(pid, ppid, comm, fields[3] if len(fields) > 3 else "", state)
        if zombies or not found.zombie:
            table[pid] = found
    return table


def listdir(host: Any, folder: str) -> list[str]:
    """The names in ``folder`` on the VM, hidden ones included (``ls -1 -A``).

    Returns: the names, in ``ls``'s order. Raises ``CheckError`` when the folder cannot be
    listed (it does not exist: a check that allows that asks ``host.file(folder).exists``
    first).

    Evidence: the command and what it printed.

    The prover mutates: a file of the folder that a check read with ``read_file``."""
    return [name for name in output(host, "ls -1 -A -- %s", folder).split("\n") if name]


# ----- files, read safely and never decided on in part -----


@dataclass(frozen=True)
class FileContent:
    """A file as ``read_file`` read it: ``text`` when it is whole (else ``ReadInPart``),
    ``part`` for finding something in what was read, whatever its size."""

    path: str
    data: bytes  # what was read: the whole file, or its first ``limit`` bytes
    size: int  # the file's size on the VM
    complete: bool

    @property
    def part(self) -> str:
        """What was read, whole or not: for finding something (found is found)."""
        return self.data.decode("utf-8", errors="replace")

    @property
    def text(self) -> str:
        """The whole file's text; ReadInPart when only part of it was read."""
        if not self.complete:
            raise ReadInPart(
                f"{self.path} is {self.size} bytes, more than the grader reads of a file "
                f"({len(self.data)}), so it was read in part and this is not decided on it"
            )
        return self.part


@dataclass(frozen=True)
class Lines:
    """The lines of a file that ``read_lines`` picked: ``numbered`` when they were all read
    (else ``ReadInPart``), ``found`` for what was read."""

    path: str
    found: tuple[tuple[int, str], ...]  # (line number, text) of the lines asked for
    complete: bool

    @property
    def numbered(self) -> tuple[tuple[int, str], ...]:
        """Every line asked for; ReadInPart when they went past the bound."""
        if not self.complete:
            raise ReadInPart(
                f"the lines of {self.path} the check looks at are more than the grader reads "
                f"({READ_LIMIT} bytes), so they were read in part and this is not decided"
            )
        return self.found


#: Says what the path is, and reads a regular file with dd's nofollow, so a symlink (to
#: /etc/shadow, say) is never followed, even by a prefetch.
_CHECKED = (
    'p=%s; if [ -L "$p" ]; then echo symlink; readlink -- "$p"; '
    'elif [ ! -e "$p" ]; then echo missing; '
    'elif [ ! -f "$p" ]; then echo other; '
    'elif [ ! -r "$p" ]; then echo "$p: Permission denied" >&2; exit 1; '
    'else echo "file $(stat -c %%s -- "$p")" && '
)
_READ_FILE = _CHECKED + 'dd if="$p" iflag=nofollow,count_bytes count=%s bs=65536 status=none; fi'
#: The lines matching an extended regular expression, numbered, bounded (one byte more than
#: the bound is read, to know whether the bound was reached).
_READ_LINES = (
    _CHECKED + 'dd if="$p" iflag=nofollow bs=65536 status=none '
    "| grep -n -a -E -e %s | head -c %s; fi"
)


def _checked(host: Any, command: str, path: str, *args: str) -> tuple[str, bytes] | None:
    """Run a safe read; (size line, data), or None when the file does not exist."""
    result = host.run(command, path, *args)
    if result.rc != 0:
        output(host, command, path, *args)  # raises, saying why
    kind, _, rest = result.stdout_bytes.partition(b"\n")
    if kind == b"symlink":
        target = rest.decode(errors="replace").strip()
        raise AssertionError(f"{path} is a symbolic link (to {target}); it was not read")
    if kind == b"missing":
        return None
    if not kind.startswith(b"file "):
        raise AssertionError(f"{path} is not a regular file; it was not read")
    return kind.decode(), rest


def read_file(host: Any, path: str, limit: int = READ_LIMIT) -> FileContent | None:
    """A regular file of the VM, read safely: never through a symbolic link, at most
    ``limit`` bytes.

    Returns: a ``FileContent`` (``.text``: the whole file, or ``ReadInPart``; ``.part``: what
    was read), or None when the file does not exist. A symbolic link or anything but a
    regular file is refused: the check fails saying so (``AssertionError``). A file the grader
    may not read raises ``PermissionError`` (the check is ``error``, "needs root").

    Evidence: the safe read (the HTML report shows ``read PATH``) and what it gave.

    The prover mutates: the file removed, emptied, made world-readable and writable, replaced
    by a symbolic link; each active line commented out (files of at most 60 such lines); a
    mailbox's messages, one at a time; and the pack's own kinds of line mutant (``LINE_KINDS``:
    a setting flipped)."""
    found = _checked(host, _READ_FILE, path, str(limit))
    if found is None:
        return None
    kind, data = found
    size = number(kind.removeprefix("file "))
    if size is None:
        raise unreadable(f"reading {path}", 1, kind, "file SIZE, in digits 0-9 (stat -c %s)")
    return FileContent(path, data, size, size <= limit)


def read_lines(host: Any, path: str, pattern: str, limit: int = READ_LIMIT) -> Lines | None:
    """The lines of a file that match ``pattern`` (a POSIX extended regular expression, as
    grep -E reads it), with their line numbers, picked on the VM: a check of a few settings
    costs the same whatever the file's size. Read as ``read_file`` reads, never through a
    symbolic link.

    Returns: a ``Lines`` (``.numbered``: (number, text) of each, or ``ReadInPart`` past
    ``limit`` bytes of them), or None when the file does not exist.

    Evidence: the safe read and the lines it gave.

    The prover mutates: the file, as for ``read_file`` (its lines: every active one, not only
    those that matched)."""
    found = _checked(host, _READ_LINES, path, pattern, str(limit + 1))
    if found is None:
        return None
    _, data = found
    complete = len(data) <= limit
    pieces = data[:limit].split(b"\n")
    if not complete or not pieces[-1]:
        pieces.pop()  # after the last newline: nothing, or a line the bound cut
    lines = []
    for n, raw in enumerate(pieces, start=1):
        at, sep, text = raw.partition(b":")
        value = number(at)
        if not sep or value is None:
            what = f"reading the lines of {path} that match {pattern!r}"
            raise unreadable(what, n, raw, "NUMBER:LINE, in digits 0-9 (grep -n)")
        lines.append((value, text.decode("utf-8", errors="replace")))
    return Lines(path, tuple(lines), complete)


def reads(host: Any, *paths: str) -> None:
    """Say which files a command of the check reads (``visudo -c`` reads /etc/sudoers ...),
    for ``grade prove --mutants`` on a VM without strace, where it cannot learn them itself.
    Runs nothing on the VM; records one piece of evidence a file ("the check reads PATH"),
    and the prover changes each file as one the check read directly (removed, emptied, its
    lines commented out ...)."""
    for path in paths:
        record(f"the check reads {path}", "(declared by the check; nothing was run)")
