"""Lab 6's own kinds of line mutant (`grade prove --mutants`): the syntax of its files, which
the grader's generic mutants (a file removed, a line commented out ...) do not know.

- vsftpd.conf's settings are NAME=YES or NAME=NO, and vsftpd reads the last one of a name:
  each such line is set the other way, and (the line left as it is) the other value is said
  again at the end of the file;
- a commented-out setting (``#local_enable=YES``) or inetd.conf service line (``#pop3 stream
  tcp ...``, and ``#<off># time dgram udp ...`` as update-inetd disables one) is uncommented:
  what a check found absent, made present.

``KINDS`` is what the scenarios module gives the grader (its ``LINE_KINDS``).
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Sequence

from grader.sim import MAX_LINES, Line, LineChange, described
from grader.sim import derive as derived

_FLIP = {"YES": "NO", "NO": "YES", "yes": "no", "no": "yes"}
_SETTING = re.compile(r"^(\s*[\w.-]+\s*=\s*)(YES|NO|yes|no)(\s*)$")
#: A line commented out that reads as a setting or a service when uncommented ("#pop3 stream
#: tcp ...", "#<off># time dgram udp ...", "#anonymous_enable=YES"), not as prose
_COMMENTED = re.compile(r"^#(?:<off>#)?\s*([\w.-]+(?:\s*=\s*\S+|\s+(?:stream|dgram)\s.*))$")


def uncommented(lines: Sequence[Line]) -> list[LineChange]:
    """Each commented-out setting or service line uncommented (none in a file of more such
    lines than MAX_LINES: a file of examples, left as it is)."""
    dormant = [(line.number, found.group(1)) for line in lines
               if (found := _COMMENTED.match(line.text))]  # fmt: skip
    if len(dormant) > MAX_LINES:
        return []
    return [
        LineChange(
            number,
            "uncommented",
            f"uncommented ({described(setting)})",
            lambda q, n=number: f"sed -i -E '{n}s/^#(<off>#)?[[:space:]]*//' -- {q}",
        )
        for number, setting in dormant
    ]


def flipped(lines: Sequence[Line]) -> list[LineChange]:
    """Each active NAME=YES/NO line set the other way; and, the line left as it is, the other
    value said again at the end (for a program that reads the last one, the line no longer
    decides)."""
    made = []
    for line in lines:
        setting = _SETTING.match(line.text)
        if not line.active or not setting:
            continue
        other = setting.group(1) + _FLIP[setting.group(2)] + setting.group(3)
        again = "".join(other.split())
        made += [
            LineChange(
                line.number,
                "flipped",
                f"set the other way ({' '.join(other.split())})",
                lambda q, n=line.number, other=other: f"sed -i '{n}s/.*/{other}/' -- {q}",
            ),
            LineChange(
                line.number,
                "overridden",
                f"left, {again} added at the end",
                lambda q, again=again: f"printf '%s\\n' {shlex.quote(again)} >> {q}",
            ),
        ]
    return made


KINDS = (uncommented, flipped)
#: The mutants of a grading of Lab 6's checks: the grader's, with Lab 6's own kinds
derive = functools.partial(derived, kinds=KINDS)
