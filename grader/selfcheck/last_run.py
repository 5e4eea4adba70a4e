"""Between a student's self-checks: what was fixed, what is newly lost, what still is.

The last self-check of each lab and machine is kept on the student's own machine (a small JSON
file in the user's cache folder), and the next one is compared with it, mark by mark and section
by section. Nothing here decides a mark: it only compares two reports.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from grader.base.files import write_atomic
from grader.base.results import Report
from grader.base.words import Status


def history_dir() -> Path:
    """GRADER_CACHE_DIR, else the XDG cache folder (a lab VM has no platformdirs)."""
    if os.environ.get("GRADER_CACHE_DIR"):
        return Path(os.environ["GRADER_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lab-grader"


@dataclass(frozen=True)
class Since:
    when: str  # the last self-check's time
    fixed: tuple[str, ...]  # lost then, passed now
    newly_lost: tuple[str, ...]
    still_lost: tuple[str, ...]
    sections: tuple[tuple[str, float, float, float], ...]  # title, points then, now, out of
    newly_checked: tuple[str, ...] = ()  # not checked then, passed now
    unchecked_now: tuple[str, ...] = ()  # checked then, not checked now (no lost mark)

    def lines(self) -> list[str]:
        out = [f"Since your last self-check ({self.when}):"]
        for word, ids in (
            ("fixed", self.fixed),
            ("newly lost", self.newly_lost),
            ("still lost", self.still_lost),
            ("checked now, and passed", self.newly_checked),
            ("not checked this time (not counted against you)", self.unchecked_now),
        ):
            if ids:
                out.append(f"  {word}: {', '.join(ids)}")
        changed = [
            f"  {title}: {then:g} -> {now:g} of {most:g}"
            for title, then, now, most in self.sections
            if now != then
        ]
        if len(out) == 1 and not changed:
            out.append("  nothing changed")
        return out + changed


def _checked(state: str) -> bool:
    """A check's state as kept ("lost", or its status): was it checked?"""
    return state in ("lost", "pass", "fail")


class History:
    """The last self-check of one lab on one machine."""

    def __init__(self, report: Report, folder: Path | None = None) -> None:
        key = hashlib.sha256(f"{report.rubric.title}\0{report.host}".encode()).hexdigest()[:16]
        self.path = (folder or history_dir()) / f"selfcheck-{key}.json"
        self.last = self._read()

    def _read(self) -> tuple[str, dict[str, str], dict[str, float]] | None:
        """The last self-check kept: (when, check -> lost or status, check -> points); None
        when there is none or it cannot be read (a history is a convenience, never a reason to
        fail)."""
        try:
            last = json.loads(self.path.read_text())
            return (
                str(last["graded_at"]),
                {str(k): str(v) for k, v in last["checks"].items()},
                {str(k): float(v) for k, v in last["points"].items()},
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def compare(self, report: Report) -> Since | None:
        """``report`` against the last self-check kept; None when there is none."""
        if self.last is None:
            return None
        when, before, points_then = self.last
        now = {c.id: c for c in report.checks}
        ids = [c.id for c in report.checks if c.id in before]
        state = {c.id: "lost" if c.lost else c.status for c in report.checks}
        both = {i for i in ids if _checked(before[i]) and _checked(state[i])}
        sections = []  # over the checks checked both times: not checking is never a drop
        for title in dict.fromkeys(c.section for c in report.checks):
            mine = [c for c in report.checks if c.section == title and c.id in both]
            if mine:
                then = sum(points_then.get(c.id, 0.0) for c in mine)
                most = sum(c.max_points for c in mine)
                sections.append((title, then, sum(c.points for c in mine), most))
        return Since(
            when,
            tuple(i for i in ids if before[i] == "lost" and now[i].status == Status.PASS),
            tuple(i for i in ids if before[i] != "lost" and now[i].lost),
            tuple(i for i in ids if before[i] == "lost" and now[i].lost),
            tuple(sections),
            tuple(i for i in ids if not _checked(before[i]) and now[i].status == Status.PASS),
            tuple(i for i in ids if _checked(before[i]) and not _checked(state[i])),
        )

    def keep(self, report: Report) -> None:
        """Keep ``report`` as the last self-check; a run of some checks (--only) updates theirs."""
        _, checks, points = self.last or ("", {}, {})
        record = {
            "graded_at": report.graded_at,
            "checks": {**checks, **{c.id: "lost" if c.lost else c.status for c in report.checks}},
            "points": {**points, **{c.id: c.points for c in report.checks}},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(record, indent=1), private=True)
        except OSError:
            pass  # a read-only home: the next self-check just has nothing to compare with
