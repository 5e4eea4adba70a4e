"""The grader's vocabulary: a check's statuses and the kinds of error and of skip, as enums,
with their words for people in one table that every renderer uses (text, HTML, Markdown, JUnit,
Gradescope, the LMS exports).

A status or a kind is compared as the enum (``check.error_kind == ErrorKind.NEEDS_ROOT``); each
is a ``str`` too, whose value is what the JSON report, the evidence archive and the book keep
(``"needs_root"``), so a report written by any grader reads the same. Records keep the plain
value (grader.base.results turns an enum given to them into it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class _Word(str, Enum):
    """An enum whose members are their values wherever text is made of them."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Status(_Word):
    """How a check ended."""

    PASS = "pass"
    FAIL = "fail"  # the student's VM is wrong: a lost mark
    ERROR = "error"  # the check could not run: the grader's problem, never a lost mark
    SKIPPED = "skipped"  # not run: see its kind (a lost dependency is a lost mark)


class ErrorKind(_Word):
    """Why a check ended ``error`` or ``skipped``, or why a host was not graded."""

    # a check could not run (status error)
    NEEDS_ROOT = "needs_root"
    TIMEOUT = "timeout"  # a command (or, for a host, its connection) took too long
    DEADLINE = "deadline"  # the grading's own time limit, or an interruption
    NEEDS_LIVE_VM = "needs_live_vm"  # a regrade asked what the archive never recorded
    NEEDS_SECRET = "needs_secret"  # a regrade lacks a secret the grading was given
    CHECK_CRASHED = "check_crashed"  # a bug in the check
    UNAVAILABLE = "unavailable"  # a tool missing on the VM, or a command that failed
    UNREADABLE = "unreadable"  # what the VM answered does not read
    BUSY = "busy"  # a daemon refusing work under load
    TURNED_AWAY = "turned_away"  # a service refused the grader (a rate limit)
    OUTPUT_LIMIT = "output_limit"  # one command's answer past the grader's bound
    EVIDENCE_LIMIT = "evidence_limit"  # the grading's budget for a VM's answers spent
    NOT_RECORDED = "not_recorded"  # a rubric's item a recorded grading has no outcome of
    # a check not run (status skipped)
    DEPENDENCY = "dependency"  # a check it depends on was lost: a lost mark too
    DEPENDENCY_NOT_CHECKED = "dependency_not_checked"  # one it depends on could not run
    DEPENDENCY_OVERRIDDEN = "dependency_overridden"  # an override passed one; its own not kept
    NEEDS_VARIABLE = "needs_variable"  # a rubric variable it needs was not given
    NOT_APPLICABLE = "not_applicable"  # the check skipped itself
    # a host not graded (a report's error kind)
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    HOST_KEY_CHANGED = "host_key_changed"
    CONNECTION_LOST = "connection_lost"
    INTERNAL = "internal"  # a bug of the grader's while grading that host
    EVIDENCE_REFUSED = "evidence_refused"  # a regrade's archive (or signature) did not hold


#: The kinds of skip that are no lost mark (a lost dependency is one)
NOT_LOST_SKIPS = (
    ErrorKind.DEPENDENCY_NOT_CHECKED,
    ErrorKind.DEPENDENCY_OVERRIDDEN,
    ErrorKind.NEEDS_VARIABLE,
    ErrorKind.NOT_APPLICABLE,
)


@dataclass(frozen=True)
class StatusWords:
    label: str  # a report's column: PASS, FAIL, ERROR, SKIP
    style: str  # its colour on a terminal
    counted: str  # in a count: "3 passed", "1 not checked"
    said: str  # in a sentence: "it could not be checked"


#: Every status's words, for every renderer
STATUS_WORDS: dict[str, StatusWords] = {
    Status.PASS: StatusWords("PASS", "green", "passed", "passed"),
    Status.FAIL: StatusWords("FAIL", "red", "failed", "failed"),
    # the grader's problem, not the student's
    Status.ERROR: StatusWords("ERROR", "yellow", "not checked", "could not be checked"),
    Status.SKIPPED: StatusWords("SKIP", "dim", "skipped", "skipped"),
}

#: What a student does to have a check not checked this time checked (the other kinds say so
#: in their message)
AGAIN: dict[str, str] = {
    ErrorKind.NEEDS_ROOT: "run the self-check as root",
    ErrorKind.TURNED_AWAY: "run the self-check again in a few minutes",
    ErrorKind.BUSY: "run the self-check again in a few minutes",
    ErrorKind.TIMEOUT: "run the self-check again",
    ErrorKind.DEADLINE: "run the self-check again",
}


def plain(value: object) -> object:
    """A status or kind as records keep it: its plain text (anything else as it is)."""
    return value.value if isinstance(value, _Word) else value
