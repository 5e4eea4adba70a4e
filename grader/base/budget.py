"""The time one grading may still take, shared by everything that waits on the VM; and what
it may hold of the VM's answers.

A grading has a deadline (``--host-timeout``) and can be cancelled (Ctrl-C of a class run).
Every wait on the VM (a command over SSH, a prefetch batch, a probe's conversation, a port
scan) asks ``bound()`` for how long it may wait, and waits in short slices, so the host's
deadline holds while a command or a probe is under way, and a cancel is seen within a moment.

A grading also holds at most ``--evidence-limit`` of the VM's answers (``EVIDENCE_LIMIT`` by
default) and at most ``COMMAND_OUTPUT_LIMIT`` of one command's (grader.machine.execution): a check
that needs more is an error (``EvidenceLimit``, ``OutputLimit``), never a verdict on part of it.
"""

from __future__ import annotations

import threading
import time

from grader.base.errors import CheckError

#: The longest single wait: how soon a cancel or the deadline is noticed.
SLICE = 0.25


class DeadlinePassed(CheckError):
    """The host's time limit (or a cancel) ended a wait: the check is ``error``, kind deadline."""


class Deadline:
    def __init__(self, seconds: float | None = None, cancel: threading.Event | None = None) -> None:
        self.at = None if seconds is None else time.monotonic() + seconds
        self.seconds = seconds
        self.cancel = cancel or threading.Event()

    def remaining(self) -> float:
        if self.cancel.is_set():
            return 0.0
        if self.at is None:
            return float("inf")
        return max(0.0, self.at - time.monotonic())

    @property
    def passed(self) -> bool:
        return self.remaining() <= 0

    def bound(self, timeout: float) -> float:
        """How long a wait of ``timeout`` seconds may last: no longer than what is left."""
        return min(timeout, self.remaining())

    def check(self) -> None:
        """Raise DeadlinePassed when no time is left."""
        if self.cancel.is_set():
            raise DeadlinePassed("not checked: the grading was interrupted")
        if self.passed:
            raise DeadlinePassed(
                f"not checked: grading this host took longer than its time limit "
                f"(--host-timeout {self.seconds:g} s)"
            )


#: For waits that belong to no grading (tests, a plain pytest run).
NEVER = Deadline()


# ----- what one grading may hold of a VM's answers -----

MIB = 1024 * 1024
#: What one VM's answers may hold in the grader's memory by default (--evidence-limit)
EVIDENCE_LIMIT = 32 * MIB


class OutputLimit(CheckError):
    """A command's answer was more than the grader keeps of one command: the check that asked
    for it is ``error`` (kind ``output_limit``), never decided on part of the answer."""

    kind = "output_limit"


class EvidenceLimit(OutputLimit):
    """The VM's answers reached the grading's evidence limit (``--evidence-limit``) before
    this one was kept whole: the check that asked for it is ``error`` (kind
    ``evidence_limit``), not a lost mark."""

    kind = "evidence_limit"
