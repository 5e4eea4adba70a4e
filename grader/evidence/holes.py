"""Secrets kept out of a record without changing what a regrade decides on.

The evidence archive keeps what a VM answered, byte for byte: a regrade decides on it, and any
change (masking a password inside a configuration line, cutting out what looks like a key)
could change a verdict. The one exception is the grading's own secrets (the SSH password, the
rubric's secret variables): where one occurs, the archive holds ``****`` and a *hole* that
records which secret stood there and where. Replaying the answer puts the secret back, when the
regrade is given it again (checked against a salted digest of it); without it, the answer is
not used at all (the check is an error saying which secret it needs), never a different text.

A check-built command or a probe's question holds a secret only because the check put the
variable's value there; there, a hole is filled with whatever value the variable has in the
replay, so the replayed check finds its question.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Union

from grader.base.errors import CheckError

MARK = "****"
_MARK_BYTES = MARK.encode()

#: Where a secret stood in a JSON value: the path to its string, and the offset in it.
JsonHole = tuple[list[Union[str, int]], int, str]


class NeedsSecret(CheckError):
    """A recorded answer held a secret the regrade was not given again."""

    def __init__(self, name: str, where: str) -> None:
        given = (
            "--password-env VAR"
            if name == "ssh_password"
            else f"--var-env {name}=ENVVAR (or --var {name}=...)"
        )
        what = "the SSH password" if name == "ssh_password" else f"the value of {name}"
        super().__init__(
            f"needs a secret given at grading: {where} held {what}, which the evidence archive "
            f"keeps out; give it again to regrade this check ({given})"
        )
        self.name = name


def _pattern(secrets: Mapping[str, str]) -> re.Pattern[str] | None:
    values = sorted({v for v in secrets.values() if v}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, values))) if values else None


def _names(secrets: Mapping[str, str]) -> dict[str, str]:
    """value -> name (the first name, when two secrets share a value)."""
    found: dict[str, str] = {}
    for name, value in secrets.items():
        if value:
            found.setdefault(value, name)
    return found


def cut(data: bytes, secrets: Mapping[str, str]) -> tuple[bytes, list[tuple[int, str]]]:
    """``data`` with each secret's value replaced by ``****``, and the holes: (offset of the
    ``****`` in the result, name of the secret)."""
    if not any(secrets.values()):
        return data, []
    values = sorted({v.encode() for v in secrets.values() if v}, key=len, reverse=True)
    pattern = re.compile(b"|".join(map(re.escape, values)))
    names = {v.encode(): n for v, n in _names(secrets).items()}
    out, holes, last = bytearray(), [], 0
    for match in pattern.finditer(data):
        out += data[last : match.start()]
        holes.append((len(out), names[match.group()]))
        out += _MARK_BYTES
        last = match.end()
    out += data[last:]
    return bytes(out), holes


def fill(
    data: bytes, holes: list[tuple[int, str]], values: Mapping[str, str | None], where: str
) -> bytes:
    """``data`` with each hole's secret put back; NeedsSecret when one is not known."""
    if not holes:
        return data
    out, last = bytearray(), 0
    for offset, name in sorted(holes):
        value = values.get(name)
        if value is None:
            raise NeedsSecret(name, where)
        out += data[last:offset] + value.encode()
        last = offset + len(_MARK_BYTES)
    out += data[last:]
    return bytes(out)


def cut_text(text: str, secrets: Mapping[str, str]) -> tuple[str, list[tuple[int, str]]]:
    pattern = _pattern(secrets)
    if pattern is None:
        return text, []
    names = _names(secrets)
    out: list[str] = []
    holes, length, last = [], 0, 0
    for match in pattern.finditer(text):
        out.append(text[last : match.start()])
        length += match.start() - last
        holes.append((length, names[match.group()]))
        out.append(MARK)
        length += len(MARK)
        last = match.end()
    out.append(text[last:])
    return "".join(out), holes


def fill_text(
    text: str, holes: list[tuple[int, str]], values: Mapping[str, str | None], where: str
) -> str:
    out, last = [], 0
    for offset, name in sorted(holes):
        value = values.get(name)
        if value is None:
            raise NeedsSecret(name, where)
        out += [text[last:offset], value]
        last = offset + len(MARK)
    out.append(text[last:])
    return "".join(out)


def cut_json(value: Any, secrets: Mapping[str, str]) -> tuple[Any, list[JsonHole]]:
    """A JSON value with every secret in its strings cut out, and the holes by path."""
    holes: list[JsonHole] = []

    def walk(node: Any, path: list[str | int]) -> Any:
        if isinstance(node, str):
            text, found = cut_text(node, secrets)
            holes.extend((list(path), offset, name) for offset, name in found)
            return text
        if isinstance(node, list):
            return [walk(item, [*path, n]) for n, item in enumerate(node)]
        if isinstance(node, dict):
            return {key: walk(item, [*path, key]) for key, item in node.items()}
        return node

    return walk(value, []), holes


def fill_json(
    value: Any, holes: list[JsonHole], values: Mapping[str, str | None], where: str
) -> Any:
    """The JSON value with its holes filled (a copy); NeedsSecret when a secret is unknown."""
    if not holes:
        return value
    by_path: dict[tuple[Any, ...], list[tuple[int, str]]] = {}
    for path, offset, name in holes:
        by_path.setdefault(tuple(path), []).append((offset, name))

    def walk(node: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(node, str):
            found = by_path.get(path)
            return fill_text(node, found, values, where) if found else node
        if isinstance(node, list):
            return [walk(item, (*path, n)) for n, item in enumerate(node)]
        if isinstance(node, dict):
            return {key: walk(item, (*path, key)) for key, item in node.items()}
        return node

    return walk(value, ())
