"""The kinds of mutant made from what a check asked (grader.sim.asked), one small function a
change: it knows how to apply, undo and describe itself (a ``Mutant``), from what the
reference VM holds (grader.sim.facts).

``KINDS`` maps what was asked ("user", "file", "processes" ...) to its kinds; a pack adds its
own in its scenarios module (``KINDS``: the same mapping, each a ``Kind``: given a ``Ground``,
its mutants), as it adds kinds of line mutant (``LINE_KINDS``).

The kinds of what was asked by name come first (``NAMED``: a user, a file, a package ...); those
of what a listing of every process or socket holds, and of the files another command read,
only for the checks the first left alive (``LISTED``): they are many, and each is dear (a
daemon stopped and started again).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from grader.sim.asked import NAMED, Asked, Asking, asking, by_thing
from grader.sim.facts import Facts
from grader.sim.mutants import BACKUPS, LineKind, Mutant, backup_of, relied_on, unique


@dataclass(frozen=True)
class Ground:
    """What a kind makes its mutants of: one thing asked, every asking of it, the reference
    VM, and the rest of what the grading asked."""

    asked: Asked  # the thing (its kind and name; the aspect of its first asking)
    askings: tuple[Asking, ...]  # every command that asked it, by which check
    facts: Facts
    checks: Sequence[Mapping[str, Any]]  # the reference grading's checks, as its report has them
    everything: tuple[Asking, ...] = ()  # all that was asked, by every check
    backups: str = BACKUPS
    line_kinds: tuple[LineKind, ...] = ()

    @property
    def name(self) -> str:
        return self.asked.name

    @property
    def read_by(self) -> tuple[str, ...]:
        """The checks a change of it concerns."""
        if self.asked.kind in ("read", "file", "folder"):
            named = relied_on(self.checks, self.name)
            if named:
                return named
        return tuple(dict.fromkeys(a.check for a in self.askings))

    @property
    def aspects(self) -> frozenset[str]:
        return frozenset(a.asked.aspect for a in self.askings)

    @property
    def watch(self) -> tuple[str, ...]:
        """The commands that asked it (their answers show whether a change of it matters);
        none when a read of the toolkit's is among them (its answers are a file's bytes: a
        file mutant always changes them)."""
        if "toolkit" in self.aspects or "declared" in self.aspects:
            return ()
        return tuple(dict.fromkeys(a.source for a in self.askings))

    def asked_of(self, kind: str) -> list[str]:
        """The names of everything of ``kind`` the grading asked, in order."""
        return list(dict.fromkeys(a.asked.name for a in self.everything if a.asked.kind == kind))


Kind = Callable[[Ground], Iterable[Mutant]]
"""A kind of mutant of what a check asked: given a ``Ground`` (the thing asked, the commands
that asked it and by which checks, the reference VM's facts), its ``Mutant`` each. A pack adds
its own in its scenarios module: ``KINDS = {"user": [locked], ...}``."""


def registry() -> dict[str, tuple[Kind, ...]]:
    """The grader's kinds, by what was asked."""
    from grader.sim.kinds import accounts, files, packages, running  # lazy: import cycle

    return {
        "read": (files.content,),
        "file": (files.metadata,),
        "folder": (files.entries,),
        "user": (accounts.user,),
        "group": (accounts.group,),
        "package": (packages.package,),
        "service": (running.service,),
        "sysctl": (running.sysctl,),
        "processes": (running.processes,),
        "sockets": (running.sockets,),
        "command": (files.command_reads,),
    }


def derive_asked(
    checks: Sequence[Mapping[str, Any]],
    facts: Facts,
    only: Iterable[str] = (),
    listed: bool = False,
    own: Mapping[str, Sequence[Kind]] | None = None,
    backups: str = BACKUPS,
    line_kinds: Sequence[LineKind] = (),
) -> list[Mutant]:
    """The mutants of what the checks (``only`` those, when given) asked by name, or
    (``listed``) of what their listings hold and their other commands read; ``own``: a pack's
    own kinds, by what was asked. Each change once: the same one made for two things (a
    process stopped for its listener and for itself) concerns the checks of both."""
    everything = tuple(asking(checks))
    chosen = asking(checks, only)
    kinds = registry()
    for what, more in (own or {}).items():
        kinds[what] = (*kinds.get(what, ()), *more)
    made: dict[str, Mutant] = {}
    for (kind, _), askings in by_thing(chosen).items():
        if (kind in NAMED) == listed or (kind == "read" and askings[0].asked.aspect == "toolkit"):
            continue  # a safe read of the toolkit's: grader.sim.mutants.derive makes its own
        ground = Ground(askings[0].asked, tuple(askings), facts, checks, everything, backups,
                        tuple(line_kinds))  # fmt: skip
        for make in kinds.get(kind, ()):
            unique(make(ground), made)
    return list(made.values())


# ----- the shell every kind shares -----

#: Refuses to keep anything where an earlier proof kept something (never written over)
_FRESH = (
    "mkdir -p -m 700 -- {folder} && {{ [ ! -e {backup} ] && [ ! -L {backup} ] || {{ "
    "echo {backup} is there already: what an earlier proof kept >&2; exit 1; }}; }}"
)


def fresh(backup: str, folder: str = BACKUPS) -> str:
    """The shell that makes sure nothing is kept at ``backup`` yet (its folder made)."""
    return _FRESH.format(folder=shlex.quote(folder), backup=shlex.quote(backup))


def keeping(paths: Sequence[str], backup: str, folder: str = BACKUPS) -> tuple[str, str]:
    """The shell that keeps ``paths`` (files or links; those not there are not) in the folder
    ``backup``, each at its own path inside it, and the shell that puts each back as it was
    (by a rename: a login that reads one meanwhile finds it whole) and removes those that were
    not there; the copies stay."""
    b = shlex.quote(backup)
    save = [fresh(backup, folder), f"mkdir -m 700 -- {b}"]
    put_back = []
    for path in paths:
        q, kept = shlex.quote(path), shlex.quote(backup + path)
        folder_of = shlex.quote(backup + path.rsplit("/", 1)[0])
        new = shlex.quote(path + ".grade-prove-new")
        save.append(
            f"{{ {{ [ ! -e {q} ] && [ ! -L {q} ]; }} || "
            f"{{ mkdir -p -- {folder_of} && cp -a -- {q} {kept}; }}; }}"
        )
        put_back.append(
            f"if [ -e {kept} ] || [ -L {kept} ]; then rm -rf -- {new} && cp -a -- {kept} {new} "
            f"&& mv -f -- {new} {q} && {{ [ -L {kept} ] || ! command -v cmp >/dev/null || "
            f"cmp -s -- {kept} {q}; }}; else rm -rf -- {q}; fi"
        )
    return " && ".join(save), " && ".join(put_back)


def kept_mutant(
    id: str,
    description: str,
    paths: Sequence[str],
    change: str,
    ground: Ground,
    touches: tuple[str, ...] = (),
    watch: tuple[str, ...] | None = None,
    path: str = "",
) -> Mutant:
    """A mutant that keeps ``paths`` first, makes ``change``, and whose undo puts them back."""
    backup = backup_of(id, ground.backups, path)
    save, put_back = keeping(paths, backup, ground.backups)
    return Mutant(id, description, f"{save} && {change}", put_back, ground.read_by, path=path,
                  backup=backup, touches=touches, kept=tuple(paths),
                  watch=ground.watch if watch is None else watch)  # fmt: skip
