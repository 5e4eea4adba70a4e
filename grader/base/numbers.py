"""Numbers in what a VM wrote: ASCII digits only, and never past a bound.

``str.isdigit()`` is true of '²' and '٣' (and ``\\d`` in a ``str`` pattern matches '٣');
``int()`` refuses '²' with a ValueError, reads '٣' as 3, and refuses more than 4300 digits. A
VM's output read that way crashes a check (an internal error where the student's VM is
wrong), or reads digits no tool on a Linux VM writes. Here a number is 1 to 20 ASCII digits
(0-9: no sign, no blank, no underscore) and at most ``most``; anything else is no number
(None), and the caller names the line it could not read.
"""

from __future__ import annotations

#: The most digits read: 2**64 has 20; a tool on a VM never pads a number with zeros past it
DIGITS = 20
#: The default bound: a size, a count or an inode fits
LARGEST = 2**63 - 1


def number(text: str | bytes, most: int = LARGEST) -> int | None:
    """The number ``text`` is, written in ASCII digits, when it is at most ``most``; else None."""
    if not 0 < len(text) <= DIGITS:
        return None
    if isinstance(text, str):
        if not (text.isascii() and text.isdigit()):
            return None
    elif not text.isdigit():  # bytes.isdigit() is true of b"0"-b"9" only
        return None
    value = int(text)
    return value if value <= most else None
