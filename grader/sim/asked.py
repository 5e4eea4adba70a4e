"""What a check asked of the VM, recognised from the commands its grading recorded as
evidence: the commands testinfra's modules run on Linux (``user``, ``group``, ``file``,
``process``, ``socket``, ``package``, ``service``, ``sysctl``, ``interface``,
``mount_point``), the toolkit's (its safe reads, ``listdir``, ``processes``, ``listeners``,
and the reads a check declares with ``reads``), and any other command a check ran, whose
files the prover learns on the reference VM (grader.sim.facts: ``strace``).

Each recognised thing is an ``Asked``: a kind, a name and what of it was asked. The mutants
of each kind are made from it (grader.sim.kinds). Nothing here runs anything.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The kinds asked by name, whose mutants come first; the others (what a listing of every
#: process or socket holds, the files another command read) come for the checks those left
NAMED = ("read", "file", "folder", "user", "group", "package", "service", "sysctl")
LISTED = ("processes", "sockets", "command")
#: How a check declares the files a command of its reads (grader.toolkit.reads)
DECLARED = "the check reads "
#: What testinfra asks to choose a module's implementation, not about the lab
_SETUP = re.compile(
    r"^(?:uname -[srm]|cat /etc/(?:os|redhat|alpine)-release|lsb_release -a|sw_vers"
    r"|command -v \S+|which \S+|realpath /(?:s?bin/\S+|sbin/init)|readlink -f /sbin/init"
    r"|test -[ed] (?:/bin/busybox|/run/systemd/system/?|/etc/init)"
    r"|stat -Lc %i /bin/(?:ps|busybox)|systemctl list-unit-files.*)$"
)
#: A user or group name the prover edits an account database for (none else)
ACCOUNT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")
#: A package's name (dpkg's, rpm's, pacman's), an architecture after a colon allowed
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]{0,99}(?::[a-z0-9_-]+)?$")
#: A service's name
SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@:._-]{0,99}$")
_STAT = {"a": "mode", "A": "mode", "f": "mode", "U": "owner", "u": "owner", "G": "group",
         "g": "group"}  # fmt: skip


@dataclass(frozen=True)
class Asked:
    """One thing of the VM a check asked about.

    ``kind``: "read" (a file's content), "file" (whether it is there, what it is, its mode
    and owners), "folder" (the names in it), "user", "group", "package", "service", "sysctl",
    "processes", "sockets", "command" (another command: its files learned on the VM), and
    "mounts", "interface" (recognised; no mutant of them: the simulator's VMs share the
    machine's kernel and mounts, and an interface is the grader's way in).
    ``name``: the path, the user's name ... ("" for a listing); ``aspect``: what of it
    ("exists", "mode", "owner", "group", "exec"; a package's manager; a service's "enabled" or
    "running"; a read's "toolkit" when read safely by the toolkit, else "command")."""

    kind: str
    name: str = ""
    aspect: str = ""


@dataclass(frozen=True)
class Asking:
    """A command a check ran (its evidence's source), and what it asked by it."""

    check: str
    source: str
    asked: Asked


def _words(source: str) -> list[str] | None:
    """The words of the first simple command of ``source`` (None: it does not parse)."""
    lexer = shlex.shlex(source, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    try:
        for word in lexer:
            if word and all(c in "();<>|&" for c in word):  # a pipe, a list, a redirection
                break
            words.append(word)
    except ValueError:
        return None
    if words and words[-1].isdigit() and not source.rstrip().endswith(words[-1]):
        words.pop()  # "... 2>&1": the descriptor of a redirection
    return words


def _operand(words: Sequence[str]) -> str | None:
    """The last word that is not an option (after ``--`` anything is one)."""
    rest = list(words[1:])
    if "--" in rest:
        after = rest[rest.index("--") + 1 :]
        return after[-1] if after else None
    operands = [w for w in rest if not w.startswith("-")]
    return operands[-1] if operands else None


def _file(words: Sequence[str]) -> list[Asked]:
    program, path = words[0].rsplit("/", 1)[-1], _operand(words)
    if not path or not path.startswith("/"):
        return []
    if program == "test" and len(words) == 3:
        return [Asked("file", path, "exec" if words[1] == "-x" else "exists")]
    if program in ("realpath", "readlink"):
        return [Asked("file", path, "exists")]
    if program == "stat":
        formats = [w for w in words[1:-1] if "%" in w] + [
            w.split("=", 1)[1] for w in words if w.startswith("--format=")
        ]
        found = {_STAT.get(c, "stat") for f in formats for c in re.findall(r"%(\w)", f)}
        return [Asked("file", path, aspect) for aspect in sorted(found or {"stat"})]
    if program in ("cat", "grep", "md5sum", "sha256sum", "sha1sum", "head", "tail", "wc"):
        if program == "grep" and len([w for w in words[1:] if not w.startswith("-")]) < 2:
            return []
        return [Asked("read", path, "command")]
    if program == "ls" and "-d" not in words:
        return [Asked("folder", path)]
    return []


def _accounts(words: Sequence[str]) -> list[Asked]:
    program = words[0]
    if program == "id":
        name = _operand(words)
        return [Asked("user", name)] if name and ACCOUNT_NAME.match(name) else []
    if program == "getent" and len(words) == 3 and ACCOUNT_NAME.match(words[2]):
        database = {"passwd": "user", "shadow": "user", "group": "group", "gshadow": "group"}
        kind = database.get(words[1])
        return [Asked(kind, words[2])] if kind else []
    return []


def _package(words: Sequence[str]) -> list[Asked]:
    program, name = words[0].rsplit("/", 1)[-1], _operand(words)
    if not name or not PACKAGE_NAME.match(name):
        return []
    if program == "dpkg-query" and "-W" in words:
        return [Asked("package", name, "dpkg")]
    if program == "rpm" and any(w.startswith("-q") for w in words):
        return [Asked("package", name, "rpm")]
    if program == "pacman" and "-Q" in words:
        return [Asked("package", name, "pacman")]
    if program == "apk" and "info" in words:
        return [Asked("package", name, "apk")]
    return []


def _service(words: Sequence[str], source: str) -> list[Asked]:
    program = words[0].rsplit("/", 1)[-1]
    if program == "systemctl" and len(words) == 3 and words[1] in ("is-enabled", "is-active"):
        name, aspect = words[2], "enabled" if words[1] == "is-enabled" else "running"
    elif program in ("service", "rc-service") and len(words) == 3 and words[2] == "status":
        name, aspect = words[1], "running"
    elif re.match(r"^/etc/(?:init\.d/|rc\.d/rc\.)", words[0]) and words[1:] == ["status"]:
        name, aspect = re.sub(r"^/etc/(?:init\.d/|rc\.d/rc\.)", "", words[0]), "running"
    elif program == "find" and "/etc/rc?.d/" in words and "-name" in words:
        found = re.search(r"-name S\?\?(\S+)", " ".join(words))
        name, aspect = (found.group(1), "enabled") if found else ("", "")
    else:
        return []
    return [Asked("service", name, aspect)] if SERVICE_NAME.match(name) else []


def recognised(source: str) -> list[Asked]:
    """What the command ``source`` (an evidence's source) asked of the VM; [] for what
    testinfra asks to choose its modules, and for what is not a command (an outside probe)."""
    text = " ".join(source.split())
    if text.startswith("p=") and ";" in text:  # the toolkit's safe read
        path = shlex.split(text[2:].split(";", 1)[0])
        return [Asked("read", path[0], "toolkit")] if path else []
    if text.startswith(DECLARED):
        return [Asked("read", text.removeprefix(DECLARED), "declared")]
    if _SETUP.match(text):
        return []
    words = _words(text)
    if not words:
        return []
    program = words[0].rsplit("/", 1)[-1]
    if program == "ls" and words[1:4] == ["-1", "-A", "--"] and len(words) == 5:
        return [Asked("folder", words[4])]
    if program == "ps":
        return [Asked("processes")]
    if program in ("ss", "netstat"):
        return [Asked("sockets")]
    if program == "sysctl" and len(words) == 3 and words[1] == "-n":
        return [Asked("sysctl", words[2])]
    if text == "cat /proc/mounts" or program in ("findmnt", "mount"):
        return [Asked("mounts")]
    if program == "ip" or text.startswith("cat /sys/class/net/"):
        return [Asked("interface", words[-1] if len(words) > 3 else "")]
    found = _accounts(words) or _package(words) or _service(words, text) or _file(words)
    return found or [Asked("command", source)]


def _outside(piece: Mapping[str, Any]) -> bool:
    """An outside probe's evidence (a port scanned, a conversation), not a command's: its
    output does not start with the exit status the grader records of a command."""
    return not str(piece.get("output", "")).startswith("[exit ")


def asking(checks: Sequence[Mapping[str, Any]], only: Iterable[str] = ()) -> list[Asking]:
    """Every thing each check (of ``only`` those, when given) asked, with the command that
    asked it, in order."""
    wanted = set(only)
    found: list[Asking] = []
    for check in checks:
        if wanted and check["id"] not in wanted:
            continue
        for piece in check.get("evidence", ()):
            source = str(piece["source"])
            if source.startswith(("p=", DECLARED)) or not _outside(piece):
                found += [Asking(str(check["id"]), source, a) for a in recognised(source)]
    return found


def by_thing(found: Sequence[Asking]) -> dict[tuple[str, str], list[Asking]]:
    """What was asked, each thing (kind, name) once, with every asking of it, in order."""
    things: dict[tuple[str, str], list[Asking]] = {}
    for one in found:
        things.setdefault((one.asked.kind, one.asked.name), []).append(one)
    return things
