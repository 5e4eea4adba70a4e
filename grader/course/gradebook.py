"""A course and its book together: what the ``grade book`` commands ask of a course, validated
at the door and computed in one place. The CLI parses, calls this, and prints.

Everything that enters the book is checked against the roster, the course's labs and their
rubrics before anything is written, and refused by name: an override outside its check's points
or the lab's maximum, for a student not on the roster or a check not in the rubric; an import
whose reports do not follow from their evidence, or whose signature does not verify (see
grader.course.imports).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.base.closest import closest
from grader.base.errors import InputError
from grader.classrun.roster import load_roster, roster_ids
from grader.course.book import Book, Explained, Row, book_url
from grader.course.config import Course, find_course, load_course
from grader.course.imports import Imported, check_import
from grader.engine.catalog import find
from grader.engine.identity import names, shared
from grader.engine.pack import load_pack
from grader.engine.rubric import load_rubric
from grader.engine.runner import digest
from grader.machine.execution import Target
from grader.report.store import ReportStore


@dataclasses.dataclass(eq=False)
class Gradebook:
    course: Course
    book: Book
    _memo: dict[tuple[str, str], Any] = dataclasses.field(default_factory=dict, repr=False)

    def _once(self, kind: str, key: str, make: Any) -> Any:
        """What ``make()`` gives, made once per (kind, key) for this command."""
        if (kind, key) not in self._memo:
            self._memo[(kind, key)] = make()
        return self._memo[(kind, key)]

    def forget(self) -> None:
        """After recording: what was computed from the book is computed again."""
        self._memo = {k: v for k, v in self._memo.items() if k[0] in ("rubric", "pack")}

    def close(self) -> None:
        self.book.close()

    def fresh(self) -> Gradebook:
        """This course and book with nothing computed from the book remembered (its rubrics
        and packs are): a long-lived process's view for one request."""
        kept = {k: v for k, v in self._memo.items() if k[0] in ("rubric", "pack")}
        return dataclasses.replace(self, _memo=kept)

    def acting(self, by: str) -> Gradebook:
        """This course and book, with what is recorded recorded as done by ``by`` (the same
        database connection)."""
        if by == self.book.by:
            return self
        return dataclasses.replace(self, book=self.book.acting(by))

    # -- the course's parts ------------------------------------------------------------------

    def rubric_path(self, lab_id: str) -> Path:
        lab = self.course.lab(lab_id)
        return lab.rubric if lab.rubric is not None else find(lab.lab or "")

    def rubric(self, lab_id: str) -> Any:
        return self._once("rubric", lab_id, lambda: load_rubric(self.rubric_path(lab_id)))

    def pack(self, lab_id: str) -> Any:
        return self._once("pack", lab_id, lambda: load_pack(self.rubric(lab_id)))

    @property
    def roster(self) -> dict[str, int]:
        """The roster's students and their lines."""

        return self._once("roster", "", lambda: roster_ids(self.course.roster))

    def people(self) -> dict[str, dict[str, str]]:
        """Who each student is, as the roster says (name, email, section ...)."""

        first = next(iter(self.course.labs))
        students = load_roster(
            self.course.roster,
            self.rubric(first),
            Target(host=""),
            keys=False,
            ignore=self.others_columns(first),
        )
        return {s.student: dict(s.person) for s in students}

    def others_columns(self, lab_id: str) -> list[str]:
        """The roster columns that are variables of the course's other labs, not of this one:
        one roster serves every lab, and a lab leaves the others' variables alone."""
        mine = set(self.rubric(lab_id).vars)
        others = {v for lab in self.course.labs if lab != lab_id for v in self.rubric(lab).vars}
        return sorted(others - mine)

    def on_roster(self, student: str) -> None:
        if student not in self.roster:
            raise InputError(
                f"{student!r} is not a student of the roster {self.course.roster}"
                f"{closest(student, self.roster)}"
            )

    # -- marks -------------------------------------------------------------------------------

    def explain(self, student: str, lab_id: str) -> Explained:
        lab = self.course.lab(lab_id)
        explained = self.book.explain(
            student,
            lab.id,
            self.course.due_for(student, lab.id),
            lab.late,
            lab.policy,
            self.rubric(lab.id).sha256,
        )
        flags = [dataclasses.asdict(f) for f in self.identity(lab.id)[0].get(student, [])]
        for flag in flags:
            flag["students"] = list(flag["students"])
        row = dataclasses.replace(explained.row, flags=flags)
        return dataclasses.replace(explained, row=row)

    def identity(self, lab_id: str) -> tuple[dict[str, list[Any]], list[str]]:
        """Every grading of the lab compared with every other (grader.engine.identity): each
        student's flags, and the notes on what the whole class shares."""

        lab = self.course.lab(lab_id)
        rubric = self.rubric(lab.id)
        image = set(lab.image) | {digest(u.id, value) for u in rubric.unique for value in lab.image}
        return self._once(
            "identity",
            lab.id,
            lambda: shared(self.book.sightings(lab.id), names(rubric.unique), image),
        )

    def class_notes(self) -> list[str]:
        return [f"{lab}: {note}" for lab in self.course.labs for note in self.identity(lab)[1]]

    def rows(self, lab: str | None = None) -> list[Row]:
        """Every student's mark for every lab (or one): the roster's students, and any other
        the book has gradings of."""
        labs = [self.course.lab(lab)] if lab else list(self.course.labs.values())
        students = list(self.roster)
        for each in labs:
            students += sorted(self.book.students(each.id) - set(students))
        return [self.explain(s, each.id).row for s in dict.fromkeys(students) for each in labs]

    # -- what enters the book ----------------------------------------------------------------

    def override(
        self, student: str, lab_id: str, check: str | None, points: float | None,
        mark: float | None, reason: str,
    ) -> int:  # fmt: skip
        """A TA's points for one check, or the lab's final mark, validated first."""
        lab = self.course.lab(lab_id)
        self.on_roster(student)
        rubric = self.rubric(lab.id)
        value = points if check is not None else mark
        if value is None or not math.isfinite(value):
            raise InputError(f"the override's value must be a number, not {value}")
        if check is not None:
            items = {i.id: i for i in rubric.items}
            if check not in items:
                raise InputError(
                    f"{rubric.path}: no check {check!r} in {lab.id}'s rubric{closest(check, items)}"
                )
            worth = items[check].points
            if not 0 <= value <= worth:
                raise InputError(
                    f"--points {value:g}: {check} is worth {worth:g} point(s) in {lab.id}; give "
                    f"0 to {worth:g}"
                )
            counting = self.explain(student, lab.id).decided
            before = next((o.points for o in counting.outcomes if o.id == check), None)
            return self.book.override(student, lab.id, check, value, reason, before, worth)
        if not 0 <= value <= rubric.max_score:
            raise InputError(
                f"--mark {value:g}: {lab.id} is out of {rubric.max_score:g}; give 0 to "
                f"{rubric.max_score:g}"
            )
        before_mark = self.explain(student, lab.id).row.mark
        return self.book.override(
            student, lab.id, None, value, reason, before_mark, rubric.max_score
        )

    def accept(self, student: str, lab_id: str, check: str, reason: str, undo: bool = False) -> int:
        """Staff's word that a check decided only after the due time counts on time (or, with
        ``undo``, that word taken back): the check must be one the mark now takes late."""
        lab = self.course.lab(lab_id)
        self.on_roster(student)
        items = {i.id for i in self.rubric(lab.id).items}
        if check not in items:
            raise InputError(
                f"{self.rubric(lab.id).path}: no check {check!r} in {lab.id}'s rubric"
                f"{closest(check, items)}"
            )
        if undo:
            return self.book.unaccept(student, lab.id, check, reason)
        filled = {f.check: f for f in self.explain(student, lab.id).decided.filled}
        if check not in filled or not filled[check].days_late:
            raise InputError(
                f"{check} of {student}, {lab.id} is not decided late: only a check that the "
                "grading that counts could not decide, decided by a grading after the due time, "
                "can be accepted as on time (`grade book explain` says which)"
            )
        return self.book.accept(student, lab.id, check, reason)

    def withdraw(self, student: str, lab_id: str, check: str | None, reason: str) -> int:
        lab = self.course.lab(lab_id)
        return self.book.withdraw(student, lab.id, check, reason)

    def import_folder(
        self, lab_id: str, folder: Path, trust: str | None = None
    ) -> tuple[int, int, Imported]:
        """Record a folder graded elsewhere, every report checked first (nothing is recorded
        when one is refused); ``trust``: staff's reason to take the reports the book cannot
        replay. (Its run id, the reports recorded, what was replayed, signed and trusted.)"""

        lab = self.course.lab(lab_id)
        if trust is not None and not trust.strip():
            raise InputError("--trust-unreplayed needs a reason (--reason)")
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
        read = ReportStore(folder, create=False).read_all()
        if read.unreadable:
            raise InputError("; ".join(read.complaints()) + ": nothing was recorded")
        if not read.found:
            raise InputError(f"{folder}: no reports to record")
        checked = check_import(self, lab.id, folder, read.found, trust)
        taken = {student: (why, trust or "") for student, why in checked.trusted.items()}
        run = self.book.record(
            lab.id, folder, read.found, "import", rubric=self.rubric(lab.id), trusted=taken
        )
        return run, len(read.found), checked

    def students_named(self, given: Sequence[str]) -> list[str]:
        for student in given:
            self.on_roster(student)
        return list(dict.fromkeys(given))


def open_gradebook(
    course: Path | None = None, db: str | None = None, by: str | None = None,
    create: bool = False,
) -> Gradebook:  # fmt: skip
    """The course (``course``, GRADER_COURSE or the nearest course.toml) and its book (``db``,
    GRADER_DB, course.toml's db, or gradebook.sqlite in the course folder). Only a command
    that records makes a SQLite book that is not there yet."""
    loaded = load_course(find_course(course))
    url = book_url(loaded.folder, db, loaded.db)
    book = Book(url, root=loaded.folder, by=by, create=create, private=loaded.private)
    return Gradebook(loaded, book)
