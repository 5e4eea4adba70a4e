"""vsftpd.conf, read as vsftpd 3 reads it (parseconf.c).

* A line is skipped when it is empty, all blanks, or its very first character is ``#``
  (an indented ``#`` is not a comment: vsftpd refuses the line).
* Leading blanks are skipped; the name runs to the first ``=``, exactly: ``anonymous_enable =NO``
  names a variable ``anonymous_enable `` that vsftpd does not know, and it refuses to start.
* Boolean values are YES/TRUE/1 or NO/FALSE/0 in any case; anything else stops vsftpd.
* Every line sets its variable again, so the last setting wins; an absent one keeps the
  built-in default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TRUE = frozenset({"YES", "TRUE", "1"})
FALSE = frozenset({"NO", "FALSE", "0"})

#: vsftpd 3.0's built-in defaults (tunables.c) for the settings Lab 6 asks about.
DEFAULTS = {"anonymous_enable": True, "local_enable": False, "write_enable": False}


@dataclass(frozen=True)
class Setting:
    line: int
    name: str
    value: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.name}={self.value}"


@dataclass(frozen=True)
class Boolean:
    """The effective value of a boolean setting, and where it came from."""

    value: bool
    source: Setting | None  # None: the built-in default
    problem: str | None  # a line about this setting that makes vsftpd refuse the whole file

    def describe(self, name: str) -> str:
        word = "YES" if self.value else "NO"
        if self.source is None:
            return f"{name} is not set, so vsftpd's built-in default {word} applies"
        return f"{name} is {word} ({self.source}; the last setting in the file wins)"


def parse_vsftpd_conf(text: str) -> list[Setting]:
    return parse_vsftpd_lines(enumerate(text.split("\n"), start=1))


def parse_vsftpd_lines(numbered: Iterable[tuple[int, str]]) -> list[Setting]:
    """The settings among (line number, line) pairs: a whole file's, or the lines picked."""
    settings = []
    for number, line in numbered:
        if not line or line[0] == "#" or line.isspace():
            continue
        name, _, value = line.lstrip(" \t\r\n\v\f").partition("=")
        settings.append(Setting(number, name, value))
    return settings


def boolean(settings: list[Setting], name: str) -> Boolean:
    """The effective value of boolean ``name``, as vsftpd would compute it."""
    value, source, problem = DEFAULTS.get(name, False), None, None
    for setting in settings:
        if setting.name == name:
            upper = setting.value.upper()
            if upper in TRUE or upper in FALSE:
                value, source = upper in TRUE, setting
            elif problem is None:
                problem = (
                    f"{setting}: {setting.value!r} is not YES or NO, so vsftpd refuses to start"
                )
        elif setting.name.strip() == name and problem is None:
            problem = (
                f"{setting}: no spaces are allowed around '=' in vsftpd.conf; vsftpd "
                f"does not recognise {setting.name!r} and refuses to start"
            )
        elif setting.name.lstrip().startswith("#") and name in setting.name and problem is None:
            problem = (
                f"{setting}: a comment must start in the first column; vsftpd reads "
                "this indented line as a setting and refuses to start"
            )
    return Boolean(value, source, problem)
