"""Library logging (paramiko's above all) through the grader's own: one escaped line per event.

The grader reports a host it could not grade itself ("NOT GRADED (timeout): ..."), so
paramiko's own account of the same failure, a message and a traceback logged line by line, is
left out; any other warning from a library is one line on stderr, with control characters
shown as escapes (a message may quote what a VM sent).
"""

from __future__ import annotations

import logging
import sys

from grader.report.render.safe import escaped

#: paramiko's report of a failed connection: the grader reports the failure itself
_PARAMIKO_FAILURE = ("paramiko.transport",)


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        first = record.getMessage().strip().splitlines()[:1]
        return f"grade: {record.name}: {escaped(first[0] if first else '')}"


def _wanted(record: logging.LogRecord) -> bool:
    if record.name.startswith(_PARAMIKO_FAILURE) and record.levelno >= logging.ERROR:
        return False  # a failed connection, which the grader reports as the host's error
    return bool(record.getMessage().strip())


class _Stderr(logging.Handler):
    """Writes to whatever sys.stderr is when the event happens."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


def configure_logging() -> None:
    """Once per process: warnings and errors of libraries, one line each, on stderr."""
    root = logging.getLogger()
    if any(isinstance(h, _Stderr) for h in root.handlers):
        return
    handler = _Stderr()
    handler.setFormatter(_OneLine())
    handler.addFilter(_wanted)
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)
