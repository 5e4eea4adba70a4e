"""The two families of problems the grader tells apart, and the exit status of each.

* ``InputError``: something the user gave us is wrong (rubric, roster, option, key file).
  Exit status 2, a message naming the file and the line or key, never a traceback.
* ``HostError``: a host could not be graded (unreachable, authentication refused, host key
  changed, ...). It is reported as "not graded", never as a score of zero. Exit status 3.

``CheckError`` is the third kind of trouble: one check could not run (a command timed out, a
tool is missing on the VM). It ends as that check's ``error`` status and the grading goes on.
"""

from __future__ import annotations

from enum import IntEnum

from grader.base.words import ErrorKind


class ExitStatus(IntEnum):
    OK = 0  # graded, every check passed
    NOT_ALL_PASSED = 1  # graded, some checks did not pass
    BAD_INPUT = 2  # bad usage, rubric, roster or other input
    NOT_GRADED = 3  # a host could not be graded
    INTERNAL_ERROR = 4  # a bug in the grader (run with --traceback to see it)
    BUSY = 5  # another grading of the course holds its lock (with --no-wait)
    INTERRUPTED = 130  # Ctrl-C (SIGINT), or SIGTERM in a class run: what finished is kept


class InputError(Exception):
    """Bad input from the user: the message names the file and the line or key."""


class HostError(Exception):
    """A host could not be graded.

    ``kind`` is one of ``unreachable``, ``timeout``, ``auth_failed``, ``host_key_changed``,
    ``connection_lost``. ``unreachable`` and ``timeout`` make a report's status ``unreachable``;
    the others make it ``error``.
    """

    UNREACHABLE_KINDS = frozenset({"unreachable", "timeout"})

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.host_key: str | None = None  # known when the failure came after the SSH handshake
        self.address: str | None = None

    @property
    def report_status(self) -> str:
        return "unreachable" if self.kind in self.UNREACHABLE_KINDS else "error"


class CourseBusy(Exception):
    """Another grading of the course holds its lock, and this one was not to wait (or waited
    as long as it was told to). Exit status 5."""


class CheckError(Exception):
    """A check could not run; the check's status becomes ``error`` (the grader's problem), with
    ``kind`` as its error kind."""

    kind: str = ErrorKind.UNAVAILABLE


class CommandTimeout(CheckError):
    """A remote command did not finish within the per-command timeout."""
