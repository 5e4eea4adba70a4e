"""Text from a student's VM, made safe to put in a file someone else opens."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def printable(text: str) -> str:
    """Control characters (NUL, ESC ...) replaced: XML cannot hold them, and in Markdown or a
    terminal they do damage (escape sequences)."""
    return _CONTROL.sub("\ufffd", text)


def escaped(text: str) -> str:
    """Control characters written as escapes (``\\u001b``), for a terminal showing evidence whole:
    nothing the VM sent can move the cursor or recolour the screen, and a NUL is seen."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
