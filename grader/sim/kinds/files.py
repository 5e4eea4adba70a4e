"""Files and folders: what testinfra's ``file`` asks (``test``, ``stat``, ``cat``, ``grep``,
``md5sum``, ``ls``), the toolkit's ``listdir`` and the reads a check declares, and the files
another command of a check's reads (learned with ``strace`` on the reference VM).

A file's content gets the mutants the toolkit's reads get (grader.sim.mutants: removed,
emptied, opened, a link, each line); what a file is: made readable or writable by others, its
owner or group changed, removed, a file made a link, a folder made a file, the execute bit
turned, and a path that is not there, made; a folder's names: each entry removed, or renamed.
"""

from __future__ import annotations

import re
import shlex

from grader.sim.facts import FOLDER_LIMIT, Stat
from grader.sim.kinds import Ground, fresh
from grader.sim.mutants import MAX_LINES, Mutant, _File, _file_mutants, backup_of

#: The files a command reads that are no lab's: the loader's, the locale's, the name service's
#: (the accounts have kinds of their own), the system's programs and what only the kernel makes
_NOT_THE_LABS = re.compile(
    r"^/(?:proc|sys|dev|run|tmp|usr/(?!local/)|lib|bin|sbin)|^/etc/(?:ld\.so|nsswitch\.conf"
    r"|localtime|locale|gai\.conf|host\.conf|resolv\.conf|hosts$|passwd$|group$|shadow$"
    r"|gshadow$|os-release|mtab)|/\.grade-prove"
)
#: The places a lab's files are
_THE_LABS = re.compile(r"^/(?:etc|var|home|root|srv|opt|usr/local)/")
#: At most this many files of one command get mutants
MAX_READ = 20


def content(ground: Ground) -> list[Mutant]:
    """A file a command read (``cat``, ``grep``, a digest) or a check declared it reads."""
    path = ground.name
    return _file_mutants(path, ground.facts.text(path), ground.read_by, ground.backups,
                         ground.line_kinds, ground.watch)  # fmt: skip


def _owner(uid: int) -> tuple[int, str]:
    return (65534, "nobody") if uid == 0 else (0, "root")


def metadata(ground: Ground) -> list[Mutant]:
    """What a path is: see the module's docstring."""
    path, facts = ground.name, ground.facts
    found = facts.stat(path)
    if found is None or not path.startswith("/") or path.rstrip("/") != path or path == "/":
        return []
    file = _File(path, ground.read_by, ground.backups, ground.watch)
    q, name = file.q, file.name
    if found.kind == "missing":
        if not found.parent:
            return []
        return [
            Mutant(f"{name}:created", f"{path} made (an empty file; it must not be there)",
                   f"[ ! -e {q} ] && [ ! -L {q} ] && : > {q}", f"rm -f -- {q}", ground.read_by,
                   path=path, watch=ground.watch),
        ]  # fmt: skip
    if found.kind == "folder":
        return _folder(ground, found)
    if found.kind not in ("file", "link"):
        return []
    made = [file.mutant(f"{name}:removed", f"{path} removed", f"rm -f -- {q}")]
    if found.kind == "link":
        return made
    made.append(
        file.mutant(
            f"{name}:symlink",
            f"{path} replaced by a symbolic link to a copy of it",
            f"cp -a -- {q} {q}.link-target && rm -f -- {q} && "
            f"ln -s -- {shlex.quote(name)}.link-target {q}",
            undo_first=f"rm -f -- {q}.link-target && ",
        )
    )
    uid, user = _owner(found.uid)
    gid, group = _owner(found.gid)
    if not found.mode & 0o004:
        made.append(file.mutant(f"{name}:readable", f"{path} made readable by others (o+r)",
                                f"chmod o+r -- {q}"))  # fmt: skip
    if not found.mode & 0o002:
        made.append(file.mutant(f"{name}:writable", f"{path} made writable by others (o+w)",
                                f"chmod o+w -- {q}"))  # fmt: skip
    made += [
        file.mutant(f"{name}:owner", f"{path} given to {user} (its owner was uid {found.uid})",
                    f"chown {uid} -- {q}"),
        file.mutant(f"{name}:group", f"{path}'s group made {group} (was gid {found.gid})",
                    f"chgrp {gid} -- {q}"),
    ]  # fmt: skip
    if "exec" in ground.aspects:
        turned = "a-x" if found.mode & 0o111 else "u+x"
        said = "made not executable" if turned == "a-x" else "made executable"
        made.append(file.mutant(f"{name}:exec", f"{path} {said} ({turned})",
                                f"chmod {turned} -- {q}"))  # fmt: skip
    return made


def _restoring(ground: Ground, id: str, says: str, change: str, path: str) -> Mutant:
    """A change of a folder's own mode or owners: they are kept first (in a file of its own),
    and put back (owners, then mode: chown clears the set-id bits)."""
    backup = backup_of(id, ground.backups, path)
    q, b = shlex.quote(path), shlex.quote(backup)
    return Mutant(
        id, says,
        f"{fresh(backup, ground.backups)} && stat -c '%a %u %g' -- {q} > {b} && {change}",
        f'read -r m u g < {b} && chown -- "$u:$g" {q} && chmod -- "$m" {q} && '
        f"[ \"$(stat -c '%a %u %g' -- {q})\" = \"$m $u $g\" ]",
        ground.read_by, path=path, backup=backup, watch=ground.watch,
    )  # fmt: skip


def _copied(ground: Ground, id: str, says: str, path: str, then: str = "") -> Mutant:
    """A folder (or an entry of one) kept whole first, removed (``then``: and what is made in
    its place), and put back whole."""
    backup = backup_of(id, ground.backups, path)
    q, b = shlex.quote(path), shlex.quote(backup)
    return Mutant(
        id, says,
        f"{fresh(backup, ground.backups)} && cp -a -- {q} {b} && rm -rf -- {q}"
        + (f" && {then}" if then else ""),
        f"rm -rf -- {q} && cp -a -- {b} {q}",
        ground.read_by, path=path, backup=backup, watch=ground.watch,
    )  # fmt: skip


def _folder(ground: Ground, found: Stat) -> list[Mutant]:
    path = ground.name
    q, name = shlex.quote(path), path.rsplit("/", 1)[-1]
    made = []
    if not found.mode & 0o002:
        made.append(
            _restoring(
                ground,
                f"{name}/:writable",
                f"{path} made writable by others (o+w)",
                f"chmod o+w -- {q}",
                path,
            )
        )
    if not found.mode & 0o004:
        made.append(
            _restoring(
                ground,
                f"{name}/:readable",
                f"{path} made readable by others (o+r)",
                f"chmod o+r -- {q}",
                path,
            )
        )
    uid, user = _owner(found.uid)
    gid, group = _owner(found.gid)
    made += [
        _restoring(ground, f"{name}/:owner", f"{path} given to {user} (its owner was uid "
                   f"{found.uid})", f"chown {uid} -- {q}", path),
        _restoring(ground, f"{name}/:group", f"{path}'s group made {group} (was gid "
                   f"{found.gid})", f"chgrp {gid} -- {q}", path),
    ]  # fmt: skip
    if found.kib <= FOLDER_LIMIT:
        made += [
            _copied(ground, f"{name}/:removed", f"{path} removed (a folder)", path),
            _copied(ground, f"{name}/:file", f"{path} replaced by an empty file", path, f": > {q}"),
        ]  # fmt: skip
    return made


def entries(ground: Ground) -> list[Mutant]:
    """A folder whose names a check listed: each entry removed, or renamed (a folder of at
    most MAX_LINES entries)."""
    folder, facts = ground.name.rstrip("/") or "/", ground.facts
    q = shlex.quote(folder)
    status, out, _ = facts.ask(
        f'for e in {q}/* {q}/.[!.]* {q}/..?*; do {{ [ -e "$e" ] || [ -L "$e" ]; }} || '
        'continue; printf \'%s\\n\' "$(printf %s "${e##*/}" | base64 -w0)"; done; true'
    )
    import base64  # lazy: rarely

    names = []
    for line in out.split("\n") if status == 0 else ():
        try:
            names.append(base64.b64decode(line, validate=True).decode())
        except ValueError:
            continue
    names = [n for n in names if n and "/" not in n and "\n" not in n]
    if not names or len(names) > MAX_LINES:
        return []
    made = []
    for name in names:
        path = f"{folder}/{name}"
        found = facts.stat(path)
        if found is not None and found.kib <= FOLDER_LIMIT:
            made.append(_copied(ground, f"{path}:removed", f"{path} removed (from {folder})", path))
        new = f"{path}.renamed"
        made.append(
            Mutant(f"{path}:renamed", f"{path} renamed {name}.renamed",
                   f"[ ! -e {shlex.quote(new)} ] && mv -- {shlex.quote(path)} {shlex.quote(new)}",
                   f"mv -- {shlex.quote(new)} {shlex.quote(path)}", ground.read_by, path=path,
                   watch=ground.watch)
        )  # fmt: skip
    return made


def command_reads(ground: Ground) -> list[Mutant]:
    """The files another command of a check's read on the reference VM (``strace``, where the
    VM has it): mutants of each as of a file read directly, which are equivalent when the
    command answers as before."""
    command = ground.name
    read = ground.facts.traced(command)
    if not read:
        return []
    chosen = [p for p in read if _THE_LABS.match(p) and not _NOT_THE_LABS.search(p)]
    made: list[Mutant] = []
    for path in chosen[:MAX_READ]:
        text = ground.facts.text(path)
        made += _file_mutants(path, text, ground.read_by, ground.backups, ground.line_kinds,
                              (command,))  # fmt: skip
    return made
