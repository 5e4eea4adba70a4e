"""Packages (testinfra's ``package``: ``dpkg-query``, ``pacman``): the package made absent from
the package database, or a package that must not be there made present in it. The database
is edited and put back; the package's files are never touched. rpm's database is not edited
(no mutant is made of an rpm package)."""

from __future__ import annotations

import shlex

from grader.sim.asked import PACKAGE_NAME
from grader.sim.kinds import Ground, kept_mutant
from grader.sim.mutants import Mutant, backup_of

STATUS = "/var/lib/dpkg/status"
#: Writes dpkg's status again without the package's stanzas (-v n=NAME), by a rename
_WITHOUT = (
    'BEGIN{RS=""; ORS="\\n\\n"} '
    '{k=split($0, l, "\\n"); keep=1; for(i=1;i<=k;i++) if(l[i]=="Package: " n) keep=0; '
    "if(keep) print}"
)


def _status_edited(program: str, name: str) -> str:
    new = shlex.quote(STATUS + ".grade-prove-new")
    return (
        f"cp -a -- {STATUS} {new} && awk -v n={shlex.quote(name)} {shlex.quote(program)} "
        f"{STATUS} > {new} && mv -f -- {new} {STATUS}"
    )


def package(ground: Ground) -> list[Mutant]:
    """A package a check asked about (see the module's docstring)."""
    name, manager = ground.name, ground.asked.aspect
    bare = name.split(":", 1)[0]
    if not PACKAGE_NAME.match(name):
        return []
    installed = ground.facts.installed(name, manager)
    touches = (f"package:{bare}",)
    if manager == "dpkg" and installed:
        return [
            kept_mutant(f"package:{bare}:absent",
                        f"the package {bare} absent from dpkg's database (its files left)",
                        [STATUS], _status_edited(_WITHOUT, bare), ground, touches, path=STATUS),
        ]  # fmt: skip
    if manager == "dpkg" and installed is False:
        stanza = (
            f"Package: {bare}\nStatus: install ok installed\nPriority: optional\n"
            "Section: misc\nMaintainer: grade prove\nArchitecture: all\nVersion: 1.0\n"
            "Description: a package made present by grade prove --mutants\n\n"
        )
        return [
            kept_mutant(f"package:{bare}:present",
                        f"the package {bare} made present in dpkg's database (it must not be)",
                        [STATUS], f"printf '%s' {shlex.quote(stanza)} >> {STATUS}", ground,
                        touches, path=STATUS),
        ]  # fmt: skip
    if manager == "pacman" and installed:
        folders = ground.facts.pacman(bare)
        if len(folders) != 1:
            return []
        backup = backup_of(f"package:{bare}:absent", ground.backups, folders[0])
        q, b = shlex.quote(folders[0]), shlex.quote(backup)
        from grader.sim.kinds import fresh  # lazy: import cycle

        return [
            Mutant(f"package:{bare}:absent",
                   f"the package {bare} absent from pacman's database (its files left)",
                   f"{fresh(backup, ground.backups)} && cp -a -- {q} {b} && rm -rf -- {q}",
                   f"rm -rf -- {q} && cp -a -- {b} {q}", ground.read_by, path=folders[0],
                   backup=backup, touches=touches, watch=ground.watch),
        ]  # fmt: skip
    return []
