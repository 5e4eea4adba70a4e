"""The grader's clock: the real time, or GRADER_NOW when it is set.

GRADER_NOW (an ISO 8601 time with its UTC offset, e.g. ``2026-12-01T23:59:00+00:00``) is the
time every grading is stamped with and every course command sees: deadlines can be tested and
rehearsed (a dry run of ``grade course due``) without waiting for them.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from grader.base.errors import InputError


def now() -> datetime:
    given = os.environ.get("GRADER_NOW")
    if not given:
        return datetime.now(timezone.utc)
    try:
        when = datetime.fromisoformat(given.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"GRADER_NOW={given!r}: not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise InputError(f"GRADER_NOW={given!r}: give its UTC offset (e.g. +00:00)")
    return when


def utc_text(when: datetime) -> str:
    """A time as the book and its commands write it: UTC, to the second (``...T12:00:00Z``)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
