"""Text from a student's VM, made safe to put in a file someone else opens."""

from __future__ import annotations

import re

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def printable(text: str) -> str:
    """Control characters (NUL, ESC ...) replaced: XML cannot hold them, and in Markdown or a
    terminal they do damage (escape sequences)."""
    return _CONTROL.sub("\ufffd", text)
