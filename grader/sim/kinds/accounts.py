"""Users and groups (testinfra's ``user`` and ``group``, ``getent``, ``id``): each change made
in the local account databases (/etc/passwd, /etc/shadow, /etc/group, /etc/gshadow), which are
kept first and put back by a rename. Only a name an account may have is ever edited."""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from grader.sim.asked import ACCOUNT_NAME
from grader.sim.kinds import Ground, kept_mutant
from grader.sim.mutants import Mutant

DATABASES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")
#: Groups that give a user more than it should have: a user is tried in each the VM has
ADMIN_GROUPS = ("sudo", "wheel", "adm", "admin", "root")

#: The shell function every account mutant edits with: awk over a database, written to a new
#: file that has the database's mode and owners, renamed over it (a login that reads it
#: meanwhile finds it whole); a database the VM does not have is left alone
_EDIT = (
    'edit() { f=$1; shift; [ -f "$f" ] || return 0; n="$f.grade-prove-new"; '
    'cp -a -- "$f" "$n" && awk "$@" "$f" > "$n" && mv -f -- "$n" "$f"; }; '
)
#: awk programs (-v n=NAME, g=GROUP, u=USER, v=VALUE; fields by ":")
_WITHOUT = 'BEGIN{FS=OFS=":"} $1!=n'
_FIELD = 'BEGIN{FS=OFS=":"} $1==n{$%d=v} {print}'
_TAKEN_OUT = (
    'BEGIN{FS=OFS=":"} $1==g{k=split($4,m,","); s=""; '
    'for(i=1;i<=k;i++) if(m[i]!=u) s=s (s==""?"":",") m[i]; $4=s} {print}'
)
_PUT_IN = 'BEGIN{FS=OFS=":"} $1==g{$4=($4==""?u:$4","u)} {print}'


def _edit(database: str, program: str, **names: str) -> str:
    given = " ".join(f"-v {k}={shlex.quote(v)}" for k, v in names.items())
    return f"edit {database} {given} {shlex.quote(program)}"


def _changed(ground: Ground, id: str, says: str, edits: Iterable[str], touches: tuple[str, ...],
             read_by: tuple[str, ...] = ()) -> Mutant:  # fmt: skip
    mutant = kept_mutant(id, says, DATABASES, _EDIT + " && ".join(edits), ground, touches)
    if read_by:
        from dataclasses import replace  # lazy: rarely

        mutant = replace(mutant, read_by=tuple(dict.fromkeys(mutant.read_by + read_by)))
    return mutant


def _members(ground: Ground, group: str) -> list[str]:
    entry = ground.facts.entry("group", group)
    return [m for m in entry[3].split(",") if m] if entry and len(entry) > 3 else []


def user(ground: Ground) -> list[Mutant]:
    """A user asked about: removed, its shell and its home changed, taken out of each of its
    groups, put in the groups the checks asked about and those that give more rights; a user
    the VM does not have, added."""
    name, facts = ground.name, ground.facts
    if not ACCOUNT_NAME.match(name):
        return []
    entry = facts.entry("passwd", name)
    touches = (f"user:{name}",)
    if entry is None:
        if facts.groups_of(name) or "$" in name:  # another name service's user: not the files'
            return []
        uid = "uid=$(awk -F: 'BEGIN{u=1000} $3>=u && $3<60000 {u=$3+1} END{print u}' /etc/passwd)"
        line = f"{name}:x:$uid:$uid:grade prove:/home/{name}:/bin/sh"
        shadow = shlex.quote(f"{name}:!:19000:0:99999:7:::")
        return [
            _changed(ground, f"user:{name}:added", f"the user {name} added (it must not be there)",
                     [uid, f"printf '%s\\n' \"{line}\" >> /etc/passwd",
                      f"{{ [ ! -f /etc/shadow ] || printf '%s\\n' {shadow} >> /etc/shadow; }}"],
                     touches),
        ]  # fmt: skip
    made = [
        _changed(ground, f"user:{name}:removed", f"the user {name} removed (its files kept)",
                 [_edit(db, _WITHOUT, n=name) for db in DATABASES[:2]], touches),
    ]  # fmt: skip
    if len(entry) > 6:
        shell = "/bin/false" if entry[6] not in ("/bin/false", "/usr/bin/false") else "/bin/sh"
        home = "/nonexistent" if entry[5] != "/nonexistent" else f"/home/{name}"
        made += [
            _changed(ground, f"user:{name}:shell", f"{name}'s shell made {shell} (was {entry[6]})",
                     [_edit("/etc/passwd", _FIELD % 7, n=name, v=shell)], touches),
            _changed(ground, f"user:{name}:home", f"{name}'s home made {home} (was {entry[5]})",
                     [_edit("/etc/passwd", _FIELD % 6, n=name, v=home)], touches),
        ]  # fmt: skip
    groups = facts.groups_of(name)
    primary = groups[0] if groups else ""
    for group in groups[1:]:
        if ACCOUNT_NAME.match(group) and name in _members(ground, group):
            made.append(_membership(ground, name, group, False))
    candidates = ground.asked_of("group") + [g for g in ADMIN_GROUPS if g in facts.group_names()]
    for group in dict.fromkeys(candidates):
        if group not in groups and group != primary and facts.entry("group", group):
            made.append(_membership(ground, name, group, True))
    return made


def _membership(ground: Ground, name: str, group: str, put_in: bool) -> Mutant:
    edits = [_edit(db, _PUT_IN if put_in else _TAKEN_OUT, g=group, u=name)
             for db in DATABASES[2:]]  # fmt: skip
    says = f"{name} put in the group {group}" if put_in else f"{name} taken out of group {group}"
    # the checks that asked about the user or the group
    also = tuple(
        a.check for a in ground.everything
        if (a.asked.kind, a.asked.name) in (("group", group), ("user", name))
    )  # fmt: skip
    return _changed(ground, f"member:{name}:{group}:{'added' if put_in else 'removed'}", says,
                    edits, (f"member:{name}:{group}",), also)  # fmt: skip


def group(ground: Ground) -> list[Mutant]:
    """A group asked about: removed, each member taken out, each user the checks asked about
    put in; a group the VM does not have, added."""
    name, facts = ground.name, ground.facts
    if not ACCOUNT_NAME.match(name):
        return []
    touches = (f"group:{name}",)
    entry = facts.entry("group", name)
    if entry is None:
        if "$" in name:
            return []
        gid = "gid=$(awk -F: 'BEGIN{g=1000} $3>=g && $3<60000 {g=$3+1} END{print g}' /etc/group)"
        return [
            _changed(ground, f"group:{name}:added",
                     f"the group {name} added (it must not be there)",
                     [gid, f"printf '%s\\n' \"{name}:x:$gid:\" >> /etc/group"], touches),
        ]  # fmt: skip
    made = [
        _changed(ground, f"group:{name}:removed", f"the group {name} removed",
                 [_edit(db, _WITHOUT, n=name) for db in DATABASES[2:]], touches),
    ]  # fmt: skip
    members = _members(ground, name)
    made += [_membership(ground, m, name, False) for m in members if ACCOUNT_NAME.match(m)]
    for user in ground.asked_of("user"):
        if ACCOUNT_NAME.match(user) and user not in members and facts.entry("passwd", user):
            made.append(_membership(ground, user, name, True))
    return made
