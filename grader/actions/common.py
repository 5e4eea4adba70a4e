"""What every action takes besides its request: who acts, and where the course is. (Nothing
here imports more than the standard library: the self-check's actions run on a lab VM's
Python.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from grader.base.acting import who
from grader.base.errors import InputError


class NotFound(InputError):
    """What the actor asked for is not there for them (another student's mark is not there
    for a student: whether it exists is not theirs to know)."""


class NotAllowed(InputError):
    """Only staff do this."""


@dataclass(frozen=True)
class Actor:
    """Who acts: a member of staff, or a student (who sees and asks for their own only)."""

    name: str
    role: Literal["staff", "student"] = "staff"
    student: str | None = None  # a student's roster id

    @classmethod
    def here(cls, by: str | None = None) -> Actor:
        """Whoever runs the command line: staff, named ``by`` (--by) or as the system knows
        them (the one who ran sudo, else the login name)."""
        return cls(by or who())

    @property
    def staff(self) -> bool:
        return self.role == "staff"

    def may_see(self, student: str) -> None:
        """NotFound unless the actor may see ``student``'s marks (staff, or that student)."""
        if not self.staff and self.student != student:
            raise NotFound(f"no student {student!r} here")

    def must_be_staff(self, doing: str) -> None:
        if not self.staff:
            raise NotAllowed(f"only staff {doing}")


@dataclass(frozen=True)
class CourseAt:
    """Where a course is: its course.toml or folder (None: GRADER_COURSE, else the nearest
    course.toml from here up), and its book's address (None: GRADER_DB, course.toml's db, or
    the SQLite book in the course folder)."""

    course: Path | None = None
    db: str | None = None
