"""Mutants: small changes a student could plausibly make to a VM done right, derived from what
the reference grading's checks read, so that ``grade prove --mutants`` can show that every
check fails when it should.

Every check records what it relied on: a file read safely (``p=PATH; ...``, the toolkit's
reads) and the outside probes (a port scanned, an SMTP or POP3 conversation). From those, one
mutant each:

- a file: removed, emptied, made world-readable and world-writable, replaced by a symbolic
  link; each of its active lines commented out, each commented-out setting or service line
  uncommented, each YES/NO value flipped, or said the other way again at the end (files of
  at most ``MAX_LINES`` such lines: a generated configuration is not a file a student edits
  by hand); a mailbox loses one message at a time;
- a port the grading talked to from outside: whatever listens there stopped.

A file mutant records its undo, so a VM can take mutants one after another; a port mutant
(a daemon stopped) is given a VM of its own. A mutant that would cut the grader's own way in
(sshd stopped, a file that a login reads changed) is never applied (``withheld``), nor, on a
live VM that must end as it started, one without an undo. This module is pure: it derives,
withholds and judges; ``grader.cli.sim`` applies, on simulated VMs or over SSH.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: A file with more active lines than this gets no line mutants (it is generated, not edited)
MAX_LINES = 60
#: Where a file mutant keeps the original while it is applied (inside the VM)
BACKUP = "/root/.grade-prove-original"
#: A probe's source names the port it talked to ("... 198.18.0.7:25", "port 110")
_PORT = re.compile(r"(?:\d+\.\d+\.\d+\.\d+|\]):(\d{1,5})\b|\bports? (\d{1,5})\b")
#: Stops whatever listens on a TCP port (and says so by its exit status)
_STOP = (
    "pids=$(ss -Hltnp 'sport = :{port}' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true); "
    '[ -z "$pids" ] || kill $pids || true; sleep 1; '
    '[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true; '
    "! ss -Hltn 'sport = :{port}' | grep -q LISTEN"
)
#: What the grader's own way in reads at each login (sshd's files, the accounts, PAM, sudo,
#: the login's keys, the programs and libraries themselves): a mutant never changes them
_WAY_IN = re.compile(
    r"^/etc/(?:ssh|pam\.d|security|sudoers\.d)/"
    r"|^/etc/(?:passwd|shadow|group|gshadow|nsswitch\.conf|sudoers|shells|hosts\.(?:allow|deny)"
    r"|ld\.so\.[\w.]+)$"
    r"|/\.ssh(?:/|$)|^/(?:s?bin|lib\w*|usr)/"
)
_FLIP = {"YES": "NO", "NO": "YES", "yes": "no", "no": "yes"}
_SETTING = re.compile(r"^(\s*[\w.-]+\s*=\s*)(YES|NO|yes|no)(\s*)$")


@dataclass(frozen=True)
class Mutant:
    id: str  # unique, short: "ftpusers:3:comment"
    description: str  # in words: "/etc/ftpusers line 3 (root) commented out"
    apply: str  # a shell script run inside the VM as root
    undo: str | None  # the script that puts the VM back; None: the VM is not reused
    read_by: tuple[str, ...] = ()  # the checks whose evidence it was derived from
    path: str = ""  # the file it changes, if it is a file mutant ("": something else)
    port: int = 0  # the TCP port whose listener it stops, if it stops one


def withheld(mutant: Mutant, live: bool) -> str | None:
    """Why ``mutant`` is not applied (None: it is). Never what cuts the grader's own way in;
    on a live VM, which must end as it started, never a mutant without an undo."""
    if mutant.port == 22:
        return "it would cut the grader's own way in (sshd)"
    if mutant.path and _WAY_IN.search(mutant.path):
        return f"it would cut the grader's own way in ({mutant.path} is read at each login)"
    if live and mutant.undo is None:
        return "it cannot be undone, and a live VM must end as it started"
    return None


@dataclass
class Matrix:
    """What each mutant did to the reference's verdicts, and what that proves."""

    reference: Mapping[str, str]  # check -> status on the lab done right
    changed: dict[str, dict[str, str]] = field(default_factory=dict)  # mutant -> check -> new
    errors: dict[str, str] = field(default_factory=dict)  # mutant -> why it was not graded

    def killed_by(self, check: str) -> list[str]:
        """The mutants that made ``check`` a lost mark (fail, or skipped for a lost one)."""
        return [
            m
            for m, changes in self.changed.items()
            if changes.get(check) == "fail" or changes.get(check) == "skipped"
        ]

    def survivors(self, checks: Iterable[str]) -> list[str]:
        return [c for c in checks if not self.killed_by(c)]

    def gaps(self) -> list[str]:
        """Mutants graded that changed no verdict: a change the rubric does not see (some are
        harmless, such as a comment; the lab's author judges)."""
        return [m for m, changes in self.changed.items() if not changes and m not in self.errors]


def files_read(checks: Sequence[Mapping[str, Any]]) -> list[str]:
    """The files the checks read with the toolkit's safe reads, each once, in order (which
    checks a change to one concerns: ``relied_on``)."""
    found: dict[str, None] = {}
    for check in checks:
        for piece in check.get("evidence", ()):
            source = " ".join(str(piece["source"]).split())
            if source.startswith("p=") and ";" in source:
                found.setdefault(shlex.split(source[2:].split(";", 1)[0])[0])
    return list(found)


def relied_on(checks: Sequence[Mapping[str, Any]], path: str) -> tuple[str, ...]:
    """The checks a change to ``path`` may concern: those whose evidence names it, or its
    folder when that is not a top-level one (a check that lists /var/lib/x sees the modes of
    the files in it; one that reads /etc/hosts does not see /etc/passwd)."""
    folder = path.rsplit("/", 1)[0]
    named = [path] + ([folder] if folder.count("/") >= 2 else [])
    pattern = re.compile("|".join(re.escape(n) + r"(?![\w.-])" for n in named))
    return tuple(
        str(check["id"])
        for check in checks
        if any(pattern.search(str(piece["source"])) for piece in check.get("evidence", ()))
    )


def ports_probed(checks: Sequence[Mapping[str, Any]]) -> dict[int, list[str]]:
    """{port: [check ids]} of the ports the checks' outside probes talked to."""
    found: dict[int, list[str]] = {}
    for check in checks:
        for piece in check.get("evidence", ()):
            source = str(piece["source"])
            if source.startswith("p="):
                continue
            for match in _PORT.finditer(source):
                port = int(match.group(1) or match.group(2))
                if not 0 < port < 65536:
                    continue
                found.setdefault(port, [])
                if check["id"] not in found[port]:
                    found[port].append(str(check["id"]))
    return found


#: A line commented out that reads as a setting or a service when uncommented ("#pop3 stream
#: tcp ...", "#<off># time dgram udp ...", "#anonymous_enable=YES"), not as prose
_COMMENTED = re.compile(r"^#(?:<off>#)?\s*([\w.-]+(?:\s*=\s*\S+|\s+(?:stream|dgram)\s.*))$")


def _shown(line: str) -> str:
    shown = " ".join(line.split())
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _file_mutants(path: str, text: str | None, read_by: tuple[str, ...]) -> list[Mutant]:
    if text is None:  # not there (or not a regular file): nothing of it to change
        return []
    q = shlex.quote(path)
    save = f"rm -rf {BACKUP} && cp -a -- {q} {BACKUP}"
    restore = f"rm -rf -- {q} && mv -- {BACKUP} {q}"
    name = path.rsplit("/", 1)[-1]
    made = [
        Mutant(f"{name}:removed", f"{path} removed", f"{save} && rm -f -- {q}", restore, read_by),
        Mutant(f"{name}:emptied", f"{path} emptied", f"{save} && : > {q}", restore, read_by),
        Mutant(
            f"{name}:world",
            f"{path} made world-readable and world-writable",
            f"{save} && chmod o+rw -- {q}",
            restore,
            read_by,
        ),
        Mutant(
            f"{name}:symlink",
            f"{path} replaced by a symbolic link to a copy of it",
            f"{save} && cp -a -- {q} {q}.link-target && rm -f -- {q} && "
            f"ln -s -- {shlex.quote(name)}.link-target {q}",
            f"rm -f -- {q}.link-target && {restore}",
            read_by,
        ),
    ]
    if text.startswith("From "):  # a mailbox: its messages, not its lines
        made += _message_mutants(path, text, save, restore, read_by)
    else:
        made += _line_mutants(path, text, save, restore, read_by)
    return [dataclasses.replace(m, path=path) for m in made]


def _line_mutants(
    path: str, text: str, save: str, restore: str, read_by: tuple[str, ...]
) -> list[Mutant]:
    """Each active line commented out, each commented-out setting uncommented, each YES/NO
    flipped (none for a file of more than MAX_LINES such lines)."""
    q, name = shlex.quote(path), path.rsplit("/", 1)[-1]
    made: list[Mutant] = []
    active = [
        (number, line)
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(active) > MAX_LINES:
        return []
    # what a check found absent, made present: a commented-out setting or service line back in
    # (a file with more such lines than MAX_LINES is a file of examples: left as it is)
    dormant = [
        (number, found.group(1))
        for number, line in enumerate(text.splitlines(), 1)
        if (found := _COMMENTED.match(line))
    ]
    for number, setting in dormant if len(dormant) <= MAX_LINES else ():
        shown = _shown(setting)
        made.append(
            Mutant(
                f"{name}:{number}:uncommented",
                f"{path} line {number} uncommented ({shown})",
                f"{save} && sed -i -E '{number}s/^#(<off>#)?[[:space:]]*//' -- {q}",
                restore,
                read_by,
            )
        )
    for number, line in active:
        shown = _shown(line)
        made.append(
            Mutant(
                f"{name}:{number}:commented",
                f"{path} line {number} commented out ({shown})",
                f"{save} && sed -i '{number}s/^/#/' -- {q}",
                restore,
                read_by,
            )
        )
        setting = _SETTING.match(line)
        if setting:
            flipped = setting.group(1) + _FLIP[setting.group(2)] + setting.group(3)
            made.append(
                Mutant(
                    f"{name}:{number}:flipped",
                    f"{path} line {number} set the other way ({' '.join(flipped.split())})",
                    f"{save} && sed -i '{number}s/.*/{flipped}/' -- {q}",
                    restore,
                    read_by,
                )
            )
            # the line left as it is, the other value said again further down (for a program
            # that reads the last one, the line no longer decides)
            again = "".join(flipped.split())
            made.append(
                Mutant(
                    f"{name}:{number}:overridden",
                    f"{path} line {number} left, {again} added at the end",
                    f"{save} && printf '%s\\n' {shlex.quote(again)} >> {q}",
                    restore,
                    read_by,
                )
            )
    return made


def _message_mutants(
    path: str, text: str, save: str, restore: str, read_by: tuple[str, ...]
) -> list[Mutant]:
    """Each message of a mailbox (mbox: a message starts at a "From " line) removed."""
    q, name = shlex.quote(path), path.rsplit("/", 1)[-1]
    subjects: list[str] = []
    for line in text.splitlines():
        if line.startswith("From "):
            subjects.append("")
        elif subjects and not subjects[-1] and line.lower().startswith("subject:"):
            subjects[-1] = line.split(":", 1)[1].strip()
    if len(subjects) > MAX_LINES:
        return []
    return [
        Mutant(
            f"{name}:message{n}:removed",
            f"{path} message {n} removed ({_shown(subject) or 'no subject'})",
            f"{save} && awk -v n={n} '/^From /{{k++}} k!=n' {BACKUP} > {q}",
            restore,
            read_by,
        )
        for n, subject in enumerate(subjects, 1)
    ]


def derive(
    checks: Sequence[Mapping[str, Any]],
    contents: Callable[[str], str | None],
    only: Iterable[str] = (),
) -> list[Mutant]:
    """The mutants of a reference grading's checks (of ``only`` those, when given), each
    change once, whichever checks read the same file or port. ``contents`` gives a file's
    text on the reference VM (None: no regular file there, as a check that found a file
    absent read it; what is absent made present is a pack's own kind of mutant)."""
    wanted = set(only)
    chosen = [c for c in checks if not wanted or c["id"] in wanted]
    made: list[Mutant] = []
    for path in files_read(chosen):
        made += _file_mutants(path, contents(path), relied_on(checks, path))
    for port, read_by in ports_probed(chosen).items():
        made.append(
            Mutant(
                f"port{port}:stopped",
                f"whatever listens on TCP port {port} stopped",
                _STOP.format(port=port),
                None,
                tuple(read_by),
                port=port,
            )
        )
    unique: dict[str, Mutant] = {}
    for mutant in made:
        unique.setdefault(mutant.id, mutant)
    return list(unique.values())


def judge(
    reference: Mapping[str, str], graded: Mapping[str, Mapping[str, str]], errors: Mapping[str, str]
) -> Matrix:
    """The kill matrix: each mutant's verdicts against the reference's."""
    matrix = Matrix(reference, errors=dict(errors))
    for mutant, verdicts in graded.items():
        matrix.changed[mutant] = {
            check: status for check, status in verdicts.items() if reference.get(check) != status
        }
    return matrix
