"""What system a VM says it is: os-release's ID and ID_LIKE words, and Slackware's own file.

A rubric can write a hint per system (``hints = { debian = "..." }``); the report records what
the VM said, and the evidence archive keeps the answer, so a regrade picks the same hints.
Only names are taken from the answer, as words; nothing else of it is shown or trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from grader.base.errors import CheckError, HostError

#: Bounded reads: a student's os-release is theirs to make as big as they like
COMMAND = (
    "head -c 8192 /etc/os-release 2>/dev/null | grep -E '^(ID|ID_LIKE|PRETTY_NAME)='; "
    "head -c 200 /etc/slackware-version 2>/dev/null | head -n 1 | sed 's/^/SLACKWARE=/'"
)
_WORD = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")


@dataclass(frozen=True)
class System:
    ids: tuple[str, ...]  # most specific first: ("ubuntu", "debian"), ("slackware",)
    name: str | None  # as it names itself ("Slackware 15.0"), for people


def parse(text: str) -> System:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE", "PRETTY_NAME", "SLACKWARE") and key not in fields:
            fields[key] = value.strip().strip("\"'")
    words = [fields.get("ID", ""), *fields.get("ID_LIKE", "").split()]
    if "SLACKWARE" in fields:
        words.append("slackware")
    ids = tuple(dict.fromkeys(w.lower() for w in words if _WORD.match(w.lower())))
    name = "".join(
        c for c in fields.get("PRETTY_NAME") or fields.get("SLACKWARE") or "" if c.isprintable()
    )
    return System(ids, name[:80] or None)


def detect(host: Any) -> System:
    """Asked through ``host`` as the checks ask (recorded, replayed by a regrade); a VM that
    cannot say (or an archive from before this was asked) is no system: the default hints."""
    try:
        return parse(host.run(COMMAND).stdout)
    except (CheckError, HostError):
        return System((), None)
