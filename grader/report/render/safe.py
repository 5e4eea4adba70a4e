"""Text from a student's VM, made safe to put in a file someone else opens or on a terminal.

Everything a VM sends is data: never markup, never a terminal control sequence. A terminal
acts on C0 controls (ESC starts CSI and OSC sequences, CR and backspace overwrite what was
shown), on the C1 controls (U+009B is a one-character CSI on many terminals) and, for what a
reader sees, on the Unicode bidi overrides and isolates, which reorder text on screen.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, TypeVar

#: What a terminal must never receive raw: every C0 control but newline and tab, DEL, the C1
#: controls, bidi marks, embeddings, overrides and isolates, the line and paragraph
#: separators, and non-characters.
_TERMINAL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ufffe\uffff]"
)

T = TypeVar("T")


def printable(text: str) -> str:
    """Control characters replaced (U+FFFD), for files people open (HTML, XML, Markdown): XML
    cannot hold most of them, and a page shown in a terminal or an editor must not act on
    them (escape sequences, a carriage return, reordered text)."""
    return _TERMINAL.sub("\ufffd", text)


def escaped(text: str) -> str:
    """Control characters written as escapes (``\\u001b``), for a terminal: nothing the VM sent
    can move the cursor, recolour the screen, set the clipboard or reorder the text, and a NUL
    is seen."""
    return _TERMINAL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_text(value: Any, indent: int | None = 2) -> str:
    """JSON for people and tools: UTF-8 kept readable, but every character a terminal would act
    on written as a JSON escape (``\\u009b``), so the same document is safe on a screen."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _TERMINAL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escaped_all(value: T) -> T:
    """``value`` with every string in it escaped: a report, a rubric, their parts."""
    return _escape(value)


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, (PurePath, bytes, int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        changes = {f.name: _escape(getattr(value, f.name)) for f in fields if f.init}
        return dataclasses.replace(value, **changes)
    if isinstance(value, tuple):
        return tuple(_escape(v) for v in value)
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, Mapping):
        return {_escape(k): _escape(v) for k, v in value.items()}
    return value
