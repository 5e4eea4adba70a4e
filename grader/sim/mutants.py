"""Mutants: small changes a student could plausibly make to a VM done right, derived from what
the reference grading's checks read, so that ``grade prove --mutants`` can show that every
check fails when it should.

Every check records what it relied on: a file read safely (``p=PATH; ...``, the toolkit's
reads) and the outside probes (a port scanned, an SMTP or POP3 conversation). From those, one
mutant each:

- a file: removed, emptied, made world-readable and world-writable, replaced by a symbolic
  link; each of its active lines commented out (files of at most ``MAX_LINES`` such lines: a
  generated configuration is not a file a student edits by hand); a mailbox loses one
  message at a time;
- a port the grading talked to from outside: whatever listens there stopped.

What a file's own syntax makes of a line (a setting said the other way, a commented-out one
back in) only the pack that owns the syntax knows: its scenarios module gives its own kinds
of line mutant (``LINE_KINDS``: each a ``LineKind``, a function of the file's lines that
gives a ``LineChange`` of each line it changes), made into mutants of every file of at most
``MAX_LINES`` active lines with the generic ones.

A file mutant records its undo, so a VM can take mutants one after another; a port mutant
(a daemon stopped) is given a VM of its own. Each file mutant keeps a copy of the file as it
was in a backup of its own on the VM (``BACKUPS``), never written over and not removed by its
undo (which copies it back): the proof removes them only once the VM, graded again at the
end, gives the reference's verdicts. A mutant that would cut the grader's own way in (sshd
stopped, a file that a login reads changed) is never applied (``withheld``: its path written
plainly, and as the VM resolves it), nor, on a live VM that must end as it started, one
without an undo. This module is pure: it derives, withholds and judges; ``grader.sim.proof``
applies, on simulated VMs or over SSH.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from grader.sim.wayin import Unresolved as Unresolved
from grader.sim.wayin import WayIn
from grader.sim.wayin import normalised as normalised

MAX_LINES = 60
"""A file with more active lines than this gets no line mutants (it is generated, not
edited)."""
#: Where file mutants keep the originals (inside the VM): one copy per mutant, named after it,
#: kept until the VM is graded again at the end of the proof and gives the reference's verdicts
BACKUPS = "/root/.grade-prove"
#: A probe's source names the port it talked to ("... 198.18.0.7:25", "port 110")
_PORT = re.compile(r"(?:\d+\.\d+\.\d+\.\d+|\]):(\d{1,5})\b|\bports? (\d{1,5})\b")
#: Stops whatever listens on a TCP port (and says so by its exit status)
_STOP = (
    "pids=$(ss -Hltnp 'sport = :{port}' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true); "
    '[ -z "$pids" ] || kill $pids || true; sleep 1; '
    '[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true; '
    "! ss -Hltn 'sport = :{port}' | grep -q LISTEN"
)


@dataclass(frozen=True)
class Mutant:
    """One small change a student could make to the VM done right, with its undo: derived
    from what a grading's checks read, or one of a pack's own (``MUTANTS`` in its scenarios
    module). ``grade prove --mutants`` applies each, grades, and undoes it."""

    id: str  # unique, short: "ftpusers:3:comment"
    description: str  # in words: "/etc/ftpusers line 3 (root) commented out"
    apply: str  # a shell script run inside the VM as root
    undo: str | None  # the script that puts the VM back; None: the VM is not reused
    read_by: tuple[str, ...] = ()  # the checks whose evidence it was derived from
    path: str = ""  # the file it changes, if it is a file mutant ("": something else)
    port: int = 0  # the TCP port whose listener it stops, if it stops one
    backup: str = ""  # where on the VM it keeps what it changes as it was (file, or folder)
    #: what of the grader's way in it may touch besides its path ("user:NAME", "group:NAME",
    #: "member:USER:GROUP", "process:PROGRAM", "service:NAME", "port:N"): see grader.sim.wayin
    touches: tuple[str, ...] = ()
    #: the files it changes whose originals ``backup`` (a folder) keeps, each at its own path
    #: inside it (a mutant of several files: the accounts, a package database)
    kept: tuple[str, ...] = ()
    #: the commands whose answers it should change: when none answers otherwise once it is
    #: applied, it is equivalent (said so, and not graded)
    watch: tuple[str, ...] = ()


def withheld(
    mutant: Mutant,
    live: bool,
    resolve: Callable[[str], str] | None = None,
    way_in: WayIn | None = None,
) -> str | None:
    """Why ``mutant`` is not applied (None: it is). Never what cuts the grader's own way in
    (``way_in``: derived from how it logs in; a root login with a key when not given), its
    path tested written plainly and, with ``resolve`` (the path as the VM resolves it, its
    symbolic links followed: ``readlink -f``; raises Unresolved), as it really is there; a
    path that cannot be resolved is withheld. On a live VM, which must end as it started,
    never a mutant without an undo."""
    reason = (way_in or WayIn()).why(mutant, resolve)
    if reason:
        return reason
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


def described(text: str) -> str:
    """A line (or a part of one) as a mutant's description shows it: its spaces collapsed, at
    most 60 characters."""
    shown = " ".join(text.split())
    return shown if len(shown) <= 60 else shown[:57] + "..."


@dataclass(frozen=True)
class Line:
    """A line of a file a check read, as a pack's own kinds of line mutant see it."""

    number: int  # from 1
    text: str  # without its newline

    @property
    def active(self) -> bool:
        """Neither blank nor a comment (``#``): a line a generic mutant comments out."""
        return bool(self.text.strip()) and not self.text.lstrip().startswith("#")


@dataclass(frozen=True)
class LineChange:
    """One change a pack's kind makes of a line: the mutant ``FILE:NUMBER:KIND``. Its original
    is kept first and put back by its undo, as for every file mutant."""

    number: int  # the line's
    kind: str  # the last part of the mutant's id: "flipped"
    says: str  # what is done, after "PATH line NUMBER ": "set the other way (listen=NO)"
    script: Callable[[str], str]  # the shell that makes the change, given the path quoted


LineKind = Callable[[Sequence[Line]], Iterable[LineChange]]
"""A pack's own kind of line mutant, for its files' syntax: given every line of a file, the
changes it makes of them (none: the file is not of its syntax). A change of a line that is not
active (a commented-out one made present) comes before the lines commented out; one of an
active line right after that line is commented out."""


#: The shell that keeps a file mutant's original ({backup}, {path}: quoted), never over another
_SAVE = (
    "mkdir -p -m 700 -- {folder} && {{ [ ! -e {backup} ] && [ ! -L {backup} ] || {{ "
    "echo {backup} is there already: the original an earlier proof kept >&2; exit 1; }}; }} "
    "&& cp -a -- {path} {backup}"
)
#: ... and puts it back, the backup kept, and says whether the file is the original again
#: (a link: where it leads; a file, where the VM has cmp: the final grading says so too)
_RESTORE = (
    "rm -rf -- {path}.grade-prove-new && cp -a -- {backup} {path}.grade-prove-new && "
    "{{ [ ! -d {path} ] || rm -rf -- {path}; }} && mv -f -- {path}.grade-prove-new {path} && "
    '{{ if [ -L {backup} ]; then [ "$(readlink -- {backup})" = "$(readlink -- {path})" ]; '
    "else ! command -v cmp >/dev/null || cmp -s -- {backup} {path}; fi; }}"
)


def backup_of(mutant_id: str, folder: str = BACKUPS, path: str = "") -> str:
    """Where the mutant ``mutant_id`` (of ``path``) keeps the original of what it changes: a
    name of its own in ``folder``, made of its id (readable) and a digest of its id and path
    (no two alike, even of two files of the same name)."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", mutant_id)[:60]
    digest = hashlib.sha256(f"{mutant_id}\0{path}".encode() if path else mutant_id.encode())
    return f"{folder}/{readable}-{digest.hexdigest()[:8]}"


@dataclass(frozen=True)
class _File:
    """The mutants of one file: each keeps the original in a backup of its own first."""

    path: str
    read_by: tuple[str, ...]
    folder: str
    watch: tuple[str, ...] = ()  # the commands of the checks that read it (none: the toolkit's)

    @property
    def q(self) -> str:
        return shlex.quote(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def mutant(
        self,
        key: str,
        description: str,
        change: str | Callable[[str], str],
        undo_first: str = "",
        touches: tuple[str, ...] = (),
    ) -> Mutant:
        """``change``: the shell that makes the change (or makes it from the backup's path,
        quoted); ``undo_first``: what the undo does before the original is copied back."""
        backup = backup_of(key, self.folder, self.path)
        quoted = {"folder": shlex.quote(self.folder), "backup": shlex.quote(backup),
                  "path": self.q}  # fmt: skip
        made = change(quoted["backup"]) if callable(change) else change
        return Mutant(
            key,
            description,
            f"{_SAVE.format(**quoted)} && {made}",
            undo_first + _RESTORE.format(**quoted),
            self.read_by,
            path=self.path,
            backup=backup,
            touches=touches,
            watch=self.watch,
        )


def _file_mutants(
    path: str,
    text: str | None,
    read_by: tuple[str, ...],
    folder: str = BACKUPS,
    kinds: Sequence[LineKind] = (),
    watch: tuple[str, ...] = (),
) -> list[Mutant]:
    if text is None:  # not there (or not a regular file): nothing of it to change
        return []
    file = _File(path, read_by, folder, watch)
    q, name = file.q, file.name
    made = [
        file.mutant(f"{name}:removed", f"{path} removed", f"rm -f -- {q}"),
        file.mutant(f"{name}:emptied", f"{path} emptied", f": > {q}"),
        file.mutant(
            f"{name}:world",
            f"{path} made world-readable and world-writable",
            f"chmod o+rw -- {q}",
        ),
        file.mutant(
            f"{name}:symlink",
            f"{path} replaced by a symbolic link to a copy of it",
            f"cp -a -- {q} {q}.link-target && rm -f -- {q} && "
            f"ln -s -- {shlex.quote(name)}.link-target {q}",
            undo_first=f"rm -f -- {q}.link-target && ",
        ),
    ]
    if text.startswith("From "):  # a mailbox: its messages, not its lines
        made += _message_mutants(file, text)
    else:
        made += _line_mutants(file, text, kinds)
    return made


#: The account databases, whose lines are entries of the kind named (see grader.sim.wayin)
_ENTRIES = {"/etc/passwd": "user", "/etc/shadow": "user", "/etc/group": "group",
            "/etc/gshadow": "group"}  # fmt: skip


def _line_mutants(file: _File, text: str, kinds: Sequence[LineKind]) -> list[Mutant]:
    """Each active line commented out, and the changes the pack's own ``kinds`` make of the
    lines (none for a file of more than MAX_LINES active lines)."""
    path, q, name = file.path, file.q, file.name
    lines = [Line(number, line) for number, line in enumerate(text.splitlines(), 1)]
    active = [line for line in lines if line.active]
    if len(active) > MAX_LINES:
        return []
    changes = [change for kind in kinds for change in kind(lines)]
    numbers = {line.number for line in active}

    entries = _ENTRIES.get(normalised(path))  # an account database: a line is an entry

    def touched(number: int) -> tuple[str, ...]:
        first = lines[number - 1].text.split(":", 1)[0] if number <= len(lines) else ""
        return (f"{entries}:{first}",) if entries and first else ()

    def made_of(change: LineChange) -> Mutant:
        return file.mutant(
            f"{name}:{change.number}:{change.kind}",
            f"{path} line {change.number} {change.says}",
            change.script(q),
            touches=touched(change.number),
        )

    # what a check found absent, made present (a commented-out line back in) first
    made = [made_of(change) for change in changes if change.number not in numbers]
    for line in active:
        made.append(
            file.mutant(
                f"{name}:{line.number}:commented",
                f"{path} line {line.number} commented out ({described(line.text)})",
                f"sed -i '{line.number}s/^/#/' -- {q}",
                touches=touched(line.number),
            )
        )
        made += [made_of(change) for change in changes if change.number == line.number]
    return made


def _without_message(n: int, q: str) -> Callable[[str], str]:
    """The shell that writes the mailbox ``q`` again from its backup, message ``n`` left out."""
    return lambda backup: f"awk -v n={n} '/^From /{{k++}} k!=n' {backup} > {q}"


def _message_mutants(file: _File, text: str) -> list[Mutant]:
    """Each message of a mailbox (mbox: a message starts at a "From " line) removed."""
    subjects: list[str] = []
    for line in text.splitlines():
        if line.startswith("From "):
            subjects.append("")
        elif subjects and not subjects[-1] and line.lower().startswith("subject:"):
            subjects[-1] = line.split(":", 1)[1].strip()
    if len(subjects) > MAX_LINES:
        return []
    return [
        file.mutant(
            f"{file.name}:message{n}:removed",
            f"{file.path} message {n} removed ({described(subject) or 'no subject'})",
            _without_message(n, file.q),
        )
        for n, subject in enumerate(subjects, 1)
    ]


def derive(
    checks: Sequence[Mapping[str, Any]],
    contents: Callable[[str], str | None],
    only: Iterable[str] = (),
    backups: str = BACKUPS,
    kinds: Sequence[LineKind] = (),
) -> list[Mutant]:
    """The mutants of a reference grading's checks (of ``only`` those, when given), each
    change once, whichever checks read the same file or port. ``contents`` gives a file's
    text on the reference VM (None: no regular file there, as a check that found a file
    absent read it; what is absent made present is a pack's own kind of mutant). A file
    mutant keeps the original in a file of its own in the VM's folder ``backups``; ``kinds``:
    the pack's own kinds of line mutant."""
    wanted = set(only)
    chosen = [c for c in checks if not wanted or c["id"] in wanted]
    made: list[Mutant] = []
    for path in files_read(chosen):
        made += _file_mutants(path, contents(path), relied_on(checks, path), backups, kinds)
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
    return list(unique(made).values())


def unique(made: Iterable[Mutant], into: dict[str, Mutant] | None = None) -> dict[str, Mutant]:
    """Each change once, by id (into ``into``): the same change made twice concerns the checks
    of both; two changes of one id (of two files of the same name) get ids of their own."""
    found = {} if into is None else into
    for mutant in made:
        first = found.get(mutant.id)
        if first is None:
            found[mutant.id] = mutant
        elif (first.apply, first.undo) == (mutant.apply, mutant.undo):
            found[mutant.id] = replace(
                first,
                read_by=tuple(dict.fromkeys(first.read_by + mutant.read_by)),
                watch=tuple(dict.fromkeys(first.watch + mutant.watch))
                if first.watch and mutant.watch else (),
            )  # fmt: skip
        else:
            key = f"{mutant.path}:{mutant.id.split(':', 1)[-1]}" if mutant.path else mutant.id
            number = 1
            while key in found:
                number += 1
                key = f"{key.rsplit('#', 1)[0]}#{number}"
            found[key] = replace(mutant, id=key)
    return found


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
