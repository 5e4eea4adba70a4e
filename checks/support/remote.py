"""Questions the Lab 6 checks ask the VM, through testinfra's ``host``.

Everything a check learns about the VM comes through ``host`` (commands on the VM) or
``outside`` (probes from the grading machine); the paths come from the rubric via ``lab``.
"""

from __future__ import annotations

from dataclasses import dataclass

from grader.evidence import note

from .inetd import Entry, parse_inetd_conf, parse_services
from .mbox import Message, parse_mbox

#: Bytes of a mailbox or config file read at most; a bigger file is read in part, and says so.
READ_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class Listener:
    protocol: str  # tcp or udp
    address: str  # 0.0.0.0, ::, 127.0.0.1 ...

    def __str__(self) -> str:
        return f"{self.protocol} {self.address}"


def listeners(host, port: int, protocols: tuple[str, ...] = ("tcp",)) -> list[Listener]:
    """What listens on ``port`` on the VM, on any address, IPv4 or IPv6 (``ss -l``)."""
    found = []
    for spec in host.socket.get_listening_sockets():
        protocol, _, rest = spec.partition("://")
        if protocol not in protocols:
            continue
        address, _, number = rest.rpartition(":")
        if number.isdigit() and int(number) == port:
            found.append(Listener(protocol, address))
    return list(dict.fromkeys(found))  # ss's "*" is reported as both 0.0.0.0 and ::


def is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def compare_views(host, outside, port: int) -> None:
    """Note it when the VM's own socket list and the port scan from outside disagree about a TCP
    port: a firewall, a fake ``ss``, or a daemon that restarted in between."""
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
    pid: int
    ppid: int
    comm: str
    args: str


def output(host, command: str, *args: str) -> str:
    """stdout of a command that must succeed. When it fails the check cannot judge: that is an
    error of the grading, not a failure of the student's VM (PermissionError when the VM said
    "Permission denied": the grader needs root there)."""
    result = host.run(command, *args)
    if result.rc != 0:
        shown = result.command.decode(errors="replace")
        if "Permission denied" in result.stderr:
            raise PermissionError(f"`{shown}`: permission denied")
        raise RuntimeError(
            f"`{shown}` failed with exit status {result.rc}: {result.stderr.strip()[:300]}"
        )
    return result.stdout


def processes(host) -> dict[int, Process]:
    out = output(host, "ps -e -ww -o pid=,ppid=,comm=,args=")
    table = {}
    for line in out.splitlines():
        fields = line.split(None, 3)
        if len(fields) >= 3 and fields[0].isdigit() and fields[1].isdigit():
            pid, ppid = int(fields[0]), int(fields[1])
            table[pid] = Process(pid, ppid, fields[2], fields[3] if len(fields) > 3 else "")
    return table


@dataclass(frozen=True)
class FileContent:
    data: bytes
    size: int
    truncated: bool

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


#: One command reads a file safely: it says what the path is, and reads a regular file with
#: dd's nofollow, so a symlink (to /etc/shadow, say) is never followed, even by a prefetch.
_READ_FILE = (
    'p=%s; if [ -L "$p" ]; then echo symlink; readlink -- "$p"; '
    'elif [ ! -e "$p" ]; then echo missing; '
    'elif [ ! -f "$p" ]; then echo other; '
    'else echo "file $(stat -c %%s -- "$p")" && '
    'dd if="$p" iflag=nofollow,count_bytes count=%s bs=65536 status=none; fi'
)


def read_file(host, path: str, limit: int = READ_LIMIT) -> FileContent | None:
    """A regular file's first ``limit`` bytes; None when it does not exist.

    A symlink or anything but a regular file is refused (AssertionError): a student's
    mailbox that points at /etc/shadow must never be read into a report.
    """
    result = host.run(_READ_FILE, path, str(limit))
    if result.rc != 0:
        output(host, _READ_FILE, path, str(limit))  # raises, saying why
    kind, _, rest = result.stdout_bytes.partition(b"\n")
    if kind == b"symlink":
        target = rest.decode(errors="replace").strip()
        raise AssertionError(f"{path} is a symbolic link (to {target}); it was not read")
    if kind == b"missing":
        return None
    if kind != b"file" and not kind.startswith(b"file "):
        raise AssertionError(f"{path} is not a regular file; it was not read")
    size = int(kind.split()[1])
    return FileContent(rest, size, size > limit)


def listdir(host, folder: str) -> list[str]:
    """The names in a folder (hidden ones included)."""
    return [name for name in output(host, "ls -1 -A -- %s", folder).split("\n") if name]


def inetd_entries(host, lab) -> list[Entry]:
    content = read_file(host, lab.paths.inetd_conf)
    assert content is not None, f"{lab.paths.inetd_conf} does not exist"
    return parse_inetd_conf(content.text)


def services(host, lab) -> dict[str, set[tuple[int, str]]]:
    content = read_file(host, lab.paths.services)
    return parse_services(content.text if content else "")


@dataclass(frozen=True)
class Mailbox:
    path: str
    messages: list[Message]
    note: str  # said when the mailbox was only partly read

    def describe(self) -> str:
        if not self.messages:
            return f"{self.path} {self.note or 'holds no messages'}"
        listing = "; ".join(m.describe() for m in self.messages[:10])
        more = f"; and {len(self.messages) - 10} more" if len(self.messages) > 10 else ""
        return f"{self.path} holds {len(self.messages)} message(s): {listing}{more}{self.note}"


#: The mail checks read each message's From_ line, its headers and the first BODY_LINES lines of
#: its body; awk on the VM extracts them, so a mailbox of any size costs little to grade and a
#: huge message never hides the others. Same refusals as _READ_FILE (symlinks, non-files).
BODY_LINES = 20
_READ_MAILBOX = (
    'p=%s; if [ -L "$p" ]; then echo symlink; readlink -- "$p"; '
    'elif [ ! -e "$p" ]; then echo missing; '
    'elif [ ! -f "$p" ]; then echo other; '
    'elif [ ! -r "$p" ]; then echo "$p: Permission denied" >&2; exit 1; '
    'else echo "file $(stat -c %%s -- "$p")" && '
    'dd if="$p" iflag=nofollow bs=65536 status=none | awk -v n=%s '
    '\'/^From /{if (NR > 1) print ""; print; h = 1; b = 0; next} '
    "h && /^$/ {h = 0; print; next} h {print; next} b < n {print; b++}' | head -c %s; fi"
)


def mailbox(host, lab, user: str) -> Mailbox:
    path = f"{lab.paths.mail_spool.rstrip('/')}/{user}"
    result = host.run(_READ_MAILBOX, path, str(BODY_LINES), str(READ_LIMIT))
    if result.rc != 0:
        output(host, _READ_MAILBOX, path, str(BODY_LINES), str(READ_LIMIT))  # raises, saying why
    kind, _, rest = result.stdout_bytes.partition(b"\n")
    if kind == b"symlink":
        target = rest.decode(errors="replace").strip()
        raise AssertionError(f"{path} is a symbolic link (to {target}); it was not read")
    if kind == b"missing":
        return Mailbox(path, [], "does not exist: nothing was delivered there")
    if not kind.startswith(b"file "):
        raise AssertionError(f"{path} is not a regular file; it was not read")
    cut = (
        f" (the first {READ_LIMIT} bytes of its headers were read)"
        if len(rest) >= READ_LIMIT
        else ""
    )
    return Mailbox(path, parse_mbox(rest), cut)
