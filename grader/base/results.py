"""Results as small frozen dataclasses that render to the JSON report as they are.

A check's ``Outcome`` knows nothing about points; ``scoring.settle`` settles outcomes through
the rubric's dependencies and the overrides, ``scoring.score`` turns them and the rubric into
``CheckResult``s; a ``Report`` is one host's grading, or the reason it was not graded.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from grader.base.evidence import Evidence
from grader.base.words import NOT_LOST_SKIPS, ErrorKind, Status, plain

#: A check's status as records keep it (grader.base.words.Status's values)
CheckStatus = str  # one of Status's values (grader.base.words): "pass", "fail", "error", "skipped"
ReportStatus = Literal["graded", "unreachable", "error"]


def _plain(record: object, *names: str) -> None:
    """A record keeps a status's or a kind's plain text, whichever it was given (the JSON
    report, the archive and the book hold text)."""
    for name in names:
        object.__setattr__(record, name, plain(getattr(record, name)))


@dataclass(frozen=True)
class Outcome:
    status: CheckStatus
    message: str = ""
    evidence: tuple[Evidence, ...] = ()
    error_kind: str | None = None  # why "error" (needs_root, timeout ...) or "skipped" (below)
    notes: tuple[str, ...] = ()  # noticed without changing the verdict (e.g. inconsistent views)
    cause: str | None = None  # what the failure comes from: a rubric [causes] id, or an item id

    def __post_init__(self) -> None:
        _plain(self, "status", "error_kind")

    @property
    def lost(self) -> bool:
        """A mark the student lost: a check that failed, or one skipped because a check it
        depends on was lost. A check that could not run (an error, a variable not given, a
        dependency that could not run either) is not checked: no lost mark."""
        return self.status == Status.FAIL or (
            self.status == Status.SKIPPED and self.error_kind == ErrorKind.DEPENDENCY
        )


#: Kinds of "skipped": a dependency was lost (a lost mark), a dependency could not be checked,
#: a variable the check needs was not given, the check skipped itself (none of them lost)
LOST_DEPENDENCY = ErrorKind.DEPENDENCY
SKIP_KINDS = (LOST_DEPENDENCY, *NOT_LOST_SKIPS)


def is_lost(status: str, kind: str | None) -> bool:
    # a skip of unknown kind (a report from before kinds) counts as lost, as it did then
    return status == Status.FAIL or (status == Status.SKIPPED and kind in (LOST_DEPENDENCY, None))


@dataclass(frozen=True)
class CheckResult:
    id: str
    section: str
    title: str
    status: CheckStatus
    points: float
    max_points: float
    message: str
    hint: str
    evidence: tuple[Evidence, ...]
    error_kind: str | None = None  # why a check is "error": needs_root, timeout, unavailable,
    # check_crashed (a bug in the check)
    visibility: str = "visible"  # "hidden": shown to the instructor, only counted to students
    notes: tuple[str, ...] = ()  # noticed without changing the verdict (e.g. inconsistent views)
    cause: str | None = None  # what to fix first for this one: a rubric cause or another item
    cause_title: str = ""  # that cause, as a student reads it (its hint is this check's hint)

    def __post_init__(self) -> None:
        _plain(self, "status", "error_kind")

    @property
    def lost(self) -> bool:
        """A lost mark (see Outcome.lost); else passed, or not checked."""
        return is_lost(self.status, self.error_kind)


@dataclass(frozen=True)
class RubricRef:
    title: str
    sha256: str


@dataclass(frozen=True)
class Flag:
    """Something about a grading an instructor should look at, e.g. two students' VMs sharing
    one SSH host key (a cloned VM, or the same VM submitted twice)."""

    kind: str
    message: str
    students: tuple[str, ...] = ()  # the other students concerned


@dataclass(frozen=True)
class Report:
    host: str
    student: str | None
    status: ReportStatus
    error: str | None  # why the host could not be graded
    error_kind: str | None  # unreachable | timeout | auth_failed | host_key_changed | ...
    score: float | None  # None when not graded: a host we could not reach did not score 0
    max_score: float
    graded_at: str
    duration_s: float
    rubric: RubricRef
    host_key: str | None
    address: str | None
    checks: tuple[CheckResult, ...]
    attempts: int = 1  # connections tried: a transient failure is retried once
    flags: tuple[Flag, ...] = ()
    round_trips: int = 0  # remote executions the grading made (a prefetch batch counts one)
    view: str = "instructor"  # "student": hidden checks left out, score over visible ones
    hidden_checks: int = 0  # in the student view: how many checks were left out
    evidence_sha256: str | None = None  # checksum of the evidence archive of this grading
    regraded_at: str | None = None  # set when re-marked from the evidence archive (grade regrade)
    host_key_replaced: str | None = None  # the stored key a changed one was accepted over
    variant: dict[str, str] = dataclasses.field(default_factory=dict)  # the student's own values
    fingerprints: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # [[unique]]
    system: str | None = (
        None  # what the VM says it is ("Slackware 15.0"), see grader.machine.system
    )
    system_ids: tuple[str, ...] = ()  # its os-release ID and ID_LIKE: which hints were shown
    person: dict[str, str] = dataclasses.field(default_factory=dict)  # the roster's name, email
    # which machine answered, as it says from inside (grader.engine.identity)
    machine: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _plain(self, "error_kind")

    @property
    def all_passed(self) -> bool:
        return self.status == "graded" and all(c.status == Status.PASS for c in self.checks)

    @property
    def unchecked(self) -> tuple[str, ...]:
        """The checks that could not be checked (an error, a variable not given, a dependency
        not checked either): not lost marks, and not marks earned either."""
        return tuple(c.id for c in self.checks if c.status != Status.PASS and not c.lost)

    @property
    def unchecked_points(self) -> float:
        return sum(c.max_points for c in self.checks if c.status != Status.PASS and not c.lost)

    @property
    def checked_max(self) -> float:
        """The points of the checks that were checked: the score is out of these."""
        return self.max_score - self.unchecked_points

    @property
    def complete(self) -> bool:
        """Graded, with every check checked: its score is the student's whole mark."""
        return self.status == "graded" and not self.unchecked

    def to_dict(self) -> dict[str, Any]:
        data = {"format": FORMAT, **_numbers(dataclasses.asdict(self))}
        for check, result in zip(data["checks"], self.checks):
            check["lost"] = result.lost  # for tools: derived, not read back
        if self.status == "graded":  # for tools: derived, not read back
            data["unchecked"] = list(self.unchecked)
            data["unchecked_points"] = _numbers(self.unchecked_points)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        fields = upgraded(data)
        fields["rubric"] = RubricRef(**fields["rubric"])
        fields["checks"] = tuple(
            CheckResult(**{**c, "evidence": tuple(Evidence(**e) for e in c["evidence"])})
            for c in fields["checks"]
        )
        fields["flags"] = tuple(
            Flag(f["kind"], f["message"], f["students"]) for f in fields["flags"]
        )
        return cls(**fields)


#: The shape of a report's JSON, written as its "format": 2 before the field was written (its
#: older shapes are read too), 3 since. upgraded() is the one place older ones are read.
FORMAT = 3
#: A report's JSON fields that are derived from the others: written for tools, not read back
DERIVED = ("format", "unchecked", "unchecked_points")


class ReportFormatError(ValueError):
    """A report's JSON of a format this grader does not read."""


def upgraded(data: Mapping[str, Any]) -> dict[str, Any]:
    """A report's JSON fields, of any format this grader reads, in today's shape (derived
    fields left out); a report of a newer format is refused, never half-read."""
    version = data.get("format", 2)
    if not isinstance(version, int) or not 2 <= version <= FORMAT:
        raise ReportFormatError(
            f"a report of format {version!r}: this grader reads formats 2 to {FORMAT} "
            "(a newer grader wrote it?)"
        )
    fields = {k: v for k, v in data.items() if k not in DERIVED}
    # before format 3, a check could lack its notes; a report its system ids and flags' students
    fields["checks"] = [
        {**{k: v for k, v in c.items() if k != "lost"}, "notes": tuple(c.get("notes", ()))}
        for c in data["checks"]
    ]
    fields["system_ids"] = tuple(data.get("system_ids", ()))
    fields["flags"] = [
        {**f, "students": tuple(f.get("students", ()))} for f in data.get("flags", ())
    ]
    return fields


def _numbers(value: Any) -> Any:
    """Whole points render as 1, not 1.0, as people write them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers(v) for v in value]
    return value


#: A private key's PEM or OpenSSH block (or its start, when the output was cut off).
PRIVATE_KEY = (
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)"
)
PRIVATE_KEY_LEFT_OUT = "-----\\1PRIVATE KEY (left out by the grader)-----"
PRIVATE_KEY_SHOWN = (
    "a private key block is left out of what is shown; the evidence archive keeps it, "
    "as the VM had it, for regrading"
)
_PRIVATE_KEY = re.compile(PRIVATE_KEY, re.DOTALL)


def cut_private_keys(text: str) -> tuple[str, bool]:
    """``text`` with private-key blocks cut out for people to read, and whether there were."""
    cut = _PRIVATE_KEY.sub(PRIVATE_KEY_LEFT_OUT, text)
    return cut, cut != text


class Redactor:
    """For what people read (reports, pages, the terminal): masks secrets (passwords, secret
    variables) and cuts out private keys (a student's mail or file may hold one) in whatever
    came back from a VM. Applied before anything is clipped, so no part of a secret survives at
    a cut, and idempotent, so masked text masks the same. Never applied to what a regrade
    decides on (the evidence archive): see grader.evidence.holes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "****")
        return cut_private_keys(text)[0]


def redact(outcome: Outcome, mask: Redactor) -> Outcome:
    """The outcome with everything that came back from the VM masked."""
    return dataclasses.replace(
        outcome,
        message=mask(outcome.message),
        evidence=tuple(Evidence(mask(e.source), mask(e.output)) for e in outcome.evidence),
        notes=tuple(mask(n) for n in outcome.notes),
    )
