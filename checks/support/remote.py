"""What the Lab 6 checks ask the VM, built on the grader's toolkit (grader.toolkit).

Each reader asks the VM for the lines the checks look at (an inetd.conf's entries, vsftpd.conf's
settings, /etc/ftpusers' lines naming root, each message's few headers), not whole files, so a
file's size does not decide a mark; where a bound is still reached, a check that would decide on
what was left out is an error, never a lost mark (see grader.toolkit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from grader.toolkit import READ_LIMIT, ReadInPart, note, number, output, read_lines

from .inetd import Entry, parse_inetd_lines, parse_services_lines
from .mbox import Message, parse_mbox
from .vsftpd import Setting, parse_vsftpd_lines

#: Lines that may be an inetd.conf entry, active or commented out (the parser decides)
INETD_ENTRY = r"(^|[[:space:]])(stream|dgram|raw|rdm|seqpacket)([[:space:]]|$)"
#: Lines of /etc/services that name a port
SERVICE = r"[0-9]+/[[:alnum:]]"
#: Lines vsftpd reads as settings: any line not starting with '#' (blank ones it skips)
VSFTPD_SETTING = r"^[^#]"


def inetd_entries(host: Any, lab: Any) -> list[Entry]:
    lines = read_lines(host, lab.paths.inetd_conf, INETD_ENTRY)
    assert lines is not None, f"{lab.paths.inetd_conf} does not exist"
    return parse_inetd_lines(lines.numbered)


def services(host: Any, lab: Any) -> dict[str, set[tuple[int, str]]]:
    lines = read_lines(host, lab.paths.services, SERVICE)
    return parse_services_lines(text for _, text in lines.numbered) if lines else {}


def vsftpd_settings(host: Any, lab: Any) -> list[Setting]:
    lines = read_lines(host, lab.paths.vsftpd_conf, VSFTPD_SETTING)
    assert lines is not None, (
        f"{lab.paths.vsftpd_conf} does not exist, so vsftpd runs "
        "with its built-in defaults (anonymous FTP on, local users off)"
    )
    return parse_vsftpd_lines(lines.numbered)


def listed_users(host: Any, path: str, user: str) -> set[str] | None:
    """The users a list such as /etc/ftpusers names, of those whose line mentions ``user``
    (one name a line, '#' starts a comment); None when the file does not exist."""
    lines = read_lines(host, path, user)
    if lines is None:
        return None
    return {text.split("#", 1)[0].strip() for _, text in lines.numbered}


@dataclass(frozen=True)
class Mailbox:
    path: str
    messages: list[Message]  # the last ones of ``count`` (all of them when complete)
    count: int  # messages in the mailbox
    note: str  # said when the mailbox does not exist
    exists: bool = True

    @property
    def complete(self) -> bool:
        return len(self.messages) == self.count

    def describe(self) -> str:
        if not self.count:
            return f"{self.path} {self.note or 'holds no messages'}"
        listing = "; ".join(m.describe() for m in self.messages[-10:])
        read = (
            ""
            if self.complete
            else f" (the last {len(self.messages)} were read: their headers were more than the "
            "grader reads)"
        )
        return f"{self.path} holds {self.count} message(s){read}: {listing}"

    def decide(self, missing: str) -> None:
        """Called when ``missing`` was not found: a lost mark only if every message was read."""
        if not self.complete:
            raise ReadInPart(
                f"{missing} is not among the last {len(self.messages)} of the {self.count} "
                f"messages in {self.path} (the grader reads {READ_LIMIT} bytes of their "
                "headers), so this is not decided: not a lost mark"
            )


#: Each message's From_ line, its headers and the first BODY_LINES lines of its body, picked by
#: awk on the VM, then the messages' count; the last READ_LIMIT bytes are kept, so a huge
#: mailbox costs little and its newest messages (the lab's) are always read. Same refusals as
#: the toolkit's file reads (symlinks, non-files, no permission).
BODY_LINES = 20
COUNT_MARK = b"\n@@lab-grader-messages "
_READ_MAILBOX = (
    'p=%s; if [ -L "$p" ]; then echo symlink; readlink -- "$p"; '
    'elif [ ! -e "$p" ]; then echo missing; '
    'elif [ ! -f "$p" ]; then echo other; '
    'elif [ ! -r "$p" ]; then echo "$p: Permission denied" >&2; exit 1; '
    'else echo "file $(stat -c %%s -- "$p")" && '
    'dd if="$p" iflag=nofollow bs=65536 status=none | awk -v n=%s '
    '\'/^From /{if (NR > 1) print ""; print; h = 1; b = 0; m++; next} '
    "h && /^$/ {h = 0; print; next} h {print; next} b < n {print; b++} "
    'END {printf "\\n@@lab-grader-messages %%d\\n", m}\' | tail -c %s; fi'
)


def other_spools(lab: Any) -> list[str]:
    """The folders a VM's mailer may deliver to instead of the lab's mail spool."""
    also = lab.paths.get("mail_spool_also", [])  # a rubric from before it was there: none
    return [also] if isinstance(also, str) else list(also)


def mailbox(host: Any, lab: Any, user: str, limit: int = READ_LIMIT) -> Mailbox:
    """``user``'s mailbox in the lab's mail spool; where it is not there, the one in a folder
    the VM's mailer may deliver to instead (``mail_spool_also``: /var/mail, where
    /var/spool/mail is not a link to it), with a note saying which was read."""
    box = _read_mailbox(host, f"{lab.paths.mail_spool.rstrip('/')}/{user}", user, limit)
    if box.exists:
        return box
    others = [f"{other.rstrip('/')}/{user}" for other in other_spools(lab)]
    for path in others:
        elsewhere = _read_mailbox(host, path, user, limit)
        if elsewhere.exists:
            note(
                f"{box.path} does not exist; this VM's mailer delivers to "
                f"{path.rsplit('/', 1)[0]}, so {path} was read instead"
            )
            return elsewhere
    also = " or ".join(others)
    return dataclasses.replace(
        box, note=f"does not exist{f' (nor does {also})' if also else ''}: no mail was delivered"
    )


def _read_mailbox(host: Any, path: str, user: str, limit: int) -> Mailbox:
    args = (path, str(BODY_LINES), str(limit))
    result = host.run(_READ_MAILBOX, *args)
    if result.rc != 0:
        output(host, _READ_MAILBOX, *args, about=f"{user}'s mailbox ({path})")  # raises
    kind, _, rest = result.stdout_bytes.partition(b"\n")
    if kind == b"symlink":
        target = rest.decode(errors="replace").strip()
        raise AssertionError(f"{path} is a symbolic link (to {target}); it was not read")
    if kind == b"missing":
        return Mailbox(path, [], 0, "does not exist: no mail was delivered", exists=False)
    if not kind.startswith(b"file "):
        raise AssertionError(f"{path} is not a regular file; it was not read")
    body, mark, count = rest.rpartition(COUNT_MARK)
    total = number(count.strip()) if mark else None
    if total is None:
        raise ReadInPart(f"the grader's reading of {path} came back cut short")
    messages = parse_mbox(body)
    if len(messages) > total:  # cannot be: what was read was not what was counted
        raise ReadInPart(f"the grader's reading of {path} does not add up")
    # what came before the first whole message read (cut at its start) is not a message
    first = total - len(messages)
    kept = [dataclasses.replace(m, index=first + n + 1) for n, m in enumerate(messages)]
    return Mailbox(path, kept, total, "")
