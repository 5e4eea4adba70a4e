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

import contextlib
import ctypes
import threading
import time

from grader.base.errors import CheckError
from grader.base.words import ErrorKind

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

    def extend(self, seconds: float) -> None:
        """Move the deadline on by ``seconds`` (a wait that was the class's, not the VM's)."""
        if self.at is not None:
            self.at += seconds

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
#: What a grading of a class may hold of its VM's answers without asking the class for room
FREE = 1 * MIB
#: What a class run's gradings may hold at once past FREE each: a few evidence limits
CLASS_ROOM = 384 * MIB


#: Blocks at least this large are mapped and unmapped on their own (glibc's malloc)
MAPPED = 256 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)


def give_back_freed_memory() -> None:
    """Have glibc's malloc map each block of MAPPED bytes or more on its own, and unmap it when
    it is freed. By default it raises that threshold to the largest block freed so far (up to
    32 MiB), so once a VM's 7 MiB answer is freed the next ones come from per-thread arenas that
    keep what was freed: a class of 24 VMs that say too much held 743 MB to use some 270. A
    process whose C library is not glibc keeps its own ways."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, MAPPED)


class Room:
    """The room a class run's gradings share for their VMs' answers. A grading holds up to
    FREE without asking (an honest VM answers in kilobytes); to hold more it takes its whole
    evidence limit at once, waiting while the class has no room (its deadline moved on by the
    wait: the VM is not late), and gives it back when it ends. A grading never waits holding
    room another waits for, so the wait ends: a class of hostile VMs is graded a few at a
    time past FREE, not all at once, and the class's memory stays bounded."""

    def __init__(self, total: int = CLASS_ROOM) -> None:
        self.total = total
        self._free = total
        self._changed = threading.Condition()
        #: held by a grading that took room while it makes its evidence archive (a copy of
        #: what it holds, and its JSON): one at a time, as the GIL would have them anyway
        self.archiving = threading.Lock()

    def take(self, wanted: int, cancel: threading.Event) -> tuple[int, float]:
        """Take ``wanted`` bytes (at most the whole room); (bytes taken, seconds waited)."""
        wanted = min(wanted, self.total)
        started = time.monotonic()
        with self._changed:
            while self._free < wanted:
                if cancel.is_set():
                    raise DeadlinePassed("not checked: the grading was interrupted")
                self._changed.wait(SLICE)
            self._free -= wanted
        return wanted, time.monotonic() - started

    def give(self, taken: int) -> None:
        with self._changed:
            self._free += taken
            self._changed.notify_all()


class OutputLimit(CheckError):
    """A command's answer was more than the grader keeps of one command: the check that asked
    for it is ``error`` (kind ``output_limit``), never decided on part of the answer."""

    kind = ErrorKind.OUTPUT_LIMIT


class EvidenceLimit(OutputLimit):
    """The VM's answers reached the grading's evidence limit (``--evidence-limit``) before
    this one was kept whole: the check that asked for it is ``error`` (kind
    ``evidence_limit``), not a lost mark."""

    kind = ErrorKind.EVIDENCE_LIMIT
