"""A graded folder's manifest (``.run.json``): what the run was, so that no grade is lost on the
way to the gradebook.

Every folder the grader writes reports to records how it was made: the rubric (its path and
sha256, so ``grade regrade`` uses the rubric the folder was graded with unless told otherwise),
the roster it came from (sha256) and, for a shard, which slice of it (K of N), so that
``grade merge`` can refuse a missing, duplicated or foreign shard by name, and the students it
was to grade. A grading's manifest also names the digest of the checks' code it graded with
(``extra["checks_sha256"]``, see grader.evidence.packcode), so that ``grade book import``
replays its reports with that code, or says the book does not keep it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any

from grader import __version__
from grader.base.clock import now
from grader.base.errors import InputError
from grader.base.files import write_atomic
from grader.evidence.packcode import checks_digest

NAME = ".run.json"  # hidden: no report (a student's <stem>.json) can have this name
FORMAT = "lab-grader-run/1"


@dataclass(frozen=True)
class Manifest:
    rubric_title: str
    rubric_sha256: str
    rubric_path: str  # where the rubric was when the folder was graded (absolute)
    roster_sha256: str | None = None  # the roster file's, for a roster run
    shard: tuple[int, int] | None = None  # (K, N): the Kth of N slices of the roster
    students: tuple[str, ...] = ()  # whom the run was to grade (a roster run's)
    kind: str = "roster"  # roster, host, local, regrade, merge
    made_at: str = ""
    grader_version: str = __version__
    regraded_from: str | None = None  # a regrade's source folder
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        document = {"format": FORMAT, **asdict(self)}
        write_atomic(directory / NAME, json.dumps(document, indent=2) + "\n")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read(directory: Path) -> Manifest | None:
    """The folder's manifest; None when it has none (an older folder, or not a graded one)."""
    path = directory / NAME
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InputError(f"{path}: cannot read the run's manifest: {e.strerror}") from None
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.pop("format", None) != FORMAT:
            raise ValueError(f"not a manifest of this grader ({FORMAT})")
        shard = document.get("shard")
        return Manifest(
            **{
                **document,
                "shard": tuple(shard) if shard is not None else None,
                "students": tuple(document.get("students", ())),
            }
        )
    except (ValueError, TypeError, RecursionError) as e:
        raise InputError(f"{path}: not a run manifest this grader can read ({e})") from None


def run_manifest(rubric: Any, kind: str, **fields: Any) -> Manifest:
    """The manifest of a folder being made now with ``rubric`` (a grader.engine.rubric.Rubric),
    naming the digest of its checks' code."""

    made = now().astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = {"checks_sha256": checks_digest(rubric.checks_dir), **fields.pop("extra", {})}
    return Manifest(
        rubric.title, rubric.sha256, str(rubric.path.resolve()), kind=kind, made_at=made,
        extra=extra, **fields,
    )  # fmt: skip


def checks_claimed(directory: Path) -> str | None:
    """The digest of the checks' code the folder's manifest says it was graded with (None: it
    says none, or it has no manifest a grader can read)."""
    try:
        found = read(directory)
    except InputError:
        return None
    extra = found.extra if found is not None and isinstance(found.extra, dict) else {}
    claimed = extra.get("checks_sha256")
    return claimed if isinstance(claimed, str) and re.fullmatch("[0-9a-f]{64}", claimed) else None
