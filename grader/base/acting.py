"""Who acts: the person a grading, an override or an import is recorded as done by."""

from __future__ import annotations

import getpass
import os


def who() -> str:
    """The person acting at this terminal: the one who ran sudo, else the login name."""
    if os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
