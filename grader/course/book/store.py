"""The book's store: opening a book (made, or migrated to this grader's schema), recording runs,
the rubrics and code they were graded with, overrides, acceptances, dropped runs, imports taken
on trust, and backups. Each recording is one transaction.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from grader import __version__
from grader.base.acting import who
from grader.base.clock import now
from grader.base.errors import InputError
from grader.base.results import Report
from grader.course.book.schema import (
    MIGRATIONS,
    SCHEMA,
    accepts,
    checks,
    drops,
    identities,
    kept_code,
    meta,
    overrides,
    relative,
    reports,
    rubrics,
    runs,
    trusted_imports,
    utc,
)
from grader.engine.identity import ANSWERED_ELSEWHERE, sighting_of
from grader.evidence import packcode
from grader.evidence.archive import archive_path
from grader.evidence.packcode import checks_digest

_Store = TypeVar("_Store", bound="Store")


class Store:
    """A course's gradebook at ``url`` (sqlite:///path or postgresql://...). ``root``: the
    course folder (paths are kept relative to it); ``by``: who acts (default: who());
    ``create``: make the book if it is not there (only commands that record do); ``private``:
    a new SQLite book is readable by its owner only."""

    def __init__(
        self,
        url: str,
        upto: int = SCHEMA,
        root: Path | None = None,
        by: str | None = None,
        create: bool = True,
        private: bool = True,
    ) -> None:
        self.url = url
        self.root = root.resolve() if root is not None else _sqlite_folder(url)
        self.by = by or who()
        if not url.startswith(("sqlite:///", "postgresql://")):
            raise InputError(
                f"--db {_shown(url)}: not a database the gradebook uses; give "
                "sqlite:///PATH or postgresql://USER@HOST/NAME"
            )
        sqlite_file = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite") else None
        if sqlite_file is not None and not sqlite_file.exists():
            if not create:
                raise InputError(
                    f"no gradebook at {sqlite_file}: nothing has been recorded there (grade "
                    "course run, grade book import). If the course's book is elsewhere, say "
                    "where: course.toml's db, --db or GRADER_DB"
                )
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            sqlite_file.touch(mode=0o600 if private else 0o666)
        try:
            self.engine = _engine(url)
            with self.engine.begin() as connection:
                self._migrate(connection, upto)
        except sa.exc.SQLAlchemyError as e:
            raise InputError(f"gradebook {_shown(url)}: {_first_line(e)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def acting(self: _Store, by: str) -> _Store:
        """This book, recording as done by ``by`` (the same engine: closing either closes
        both)."""
        other = copy.copy(self)
        other.by = by
        return other

    def _migrate(self, connection: sa.Connection, upto: int) -> None:
        if connection.dialect.name == "postgresql":  # one migrator at a time
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7261)"))
        version = 0
        if sa.inspect(connection).has_table("meta"):
            found = connection.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema")
            ).scalar()
            version = int(found or 0)
        if version > SCHEMA:
            raise InputError(
                f"gradebook {_shown(self.url)} was made by a newer grader (schema {version}, "
                f"this grader knows {SCHEMA}): upgrade the grader"
            )
        for step in range(version, upto):
            MIGRATIONS[step](connection, self.root)
        if upto > version:
            connection.execute(sa.delete(meta).where(meta.c.key == "schema"))
            connection.execute(sa.insert(meta).values(key="schema", value=str(upto)))

    @property
    def schema(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(sa.select(meta.c.value).where(meta.c.key == "schema")).scalar()
                or 0
            )

    def relative(self, path: Path | str | None) -> str | None:
        return relative(self.root, str(path) if path is not None else None)

    def absolute(self, stored: str | None) -> Path | None:
        """A path the book keeps, as a path here (relative ones under the course folder)."""
        if stored is None:
            return None
        path = Path(stored)
        return path if path.is_absolute() or self.root is None else self.root / path

    # -- recording ---------------------------------------------------------------------------

    def record(
        self,
        lab: str,
        folder: Path,
        found: Sequence[tuple[Path, Report]],
        kind: str,
        regrade_of: int | None = None,
        rubric: Any = None,
        batch: str | None = None,
        trusted: dict[str, tuple[str, str]] | None = None,
        asked_at: Mapping[str, datetime] | None = None,
        also: Callable[[sa.Connection, int], None] | None = None,
    ) -> int:
        """Record a run's folder (its reports as read), in one transaction; returns its id.
        ``rubric`` (grader.engine.rubric.Rubric): the lab's, kept so its gradings can be
        scored as it scored them (and replayed: its code is kept too). ``trusted``: the reports
        an import takes without a replay, by student: (why not, staff's reason). ``asked_at``:
        when each student asked for this grading (requests from the web), by student.
        ``also``: more to write in the same transaction (given it and the run's id; raising
        undoes it all)."""

        where = self.relative(folder)
        with self._begin() as connection:
            if connection.execute(sa.select(runs.c.id).where(runs.c.folder == where)).first():
                raise InputError(f"{folder}: already recorded in the gradebook")
            if rubric is not None:
                self._keep_rubric(connection, lab, rubric)
            sha = next((r.rubric.sha256 for _, r in found), None)
            run_id = _insert(
                connection,
                runs,
                lab=lab,
                kind=kind,
                regrade_of=regrade_of,
                folder=where,
                rubric_sha256=sha,
                recorded_at=utc(now()),
                recorded_by=self.by,
                grader_version=__version__,
                batch=batch,
            )
            for path, report in found:
                evidence = archive_path(path)
                report_id = _insert(
                    connection,
                    reports,
                    run_id=run_id,
                    student=report.student or report.host,
                    status=report.status,
                    error_kind=report.error_kind,
                    error=report.error,
                    score=report.score,
                    max_score=report.max_score,
                    graded_at=utc(_parse_report_time(report.graded_at)),
                    report_path=self.relative(path),
                    evidence_path=self.relative(evidence) if evidence.exists() else None,
                    rubric_sha256=report.rubric.sha256,
                    evidence_sha256=report.evidence_sha256,
                    host=report.host,
                    asked_at=_asked(asked_at, report.student),
                )
                shown = [
                    {"report_id": report_id, "kind": kind, "value": value}
                    for kind, values in sighting_of(report).values.items()
                    for value in values
                ] + [
                    {"report_id": report_id, "kind": f.kind, "value": f.message}
                    for f in report.flags
                    if f.kind == ANSWERED_ELSEWHERE
                ]
                if shown:
                    connection.execute(sa.insert(identities), shown)
                if trusted and (report.student or report.host) in trusted:
                    why, reason = trusted[report.student or report.host]
                    _insert(connection, trusted_imports, report_id=report_id, why=why,
                            reason=reason, made_at=utc(now()), made_by=self.by)  # fmt: skip
                if report.checks:
                    connection.execute(
                        sa.insert(checks),
                        [
                            {"report_id": report_id, "check_id": c.id, "status": c.status,
                             "points": c.points, "max_points": c.max_points,
                             "error_kind": c.error_kind, "cause": c.cause,
                             "message": c.message}
                            for c in report.checks
                        ],
                    )  # fmt: skip
            if also is not None:
                also(connection, run_id)
            return run_id

    def _keep_rubric(self, connection: sa.Connection, lab: str, rubric: Any) -> None:
        self._keep_code(connection, rubric)
        known = connection.execute(
            sa.select(rubrics.c.sha256).where(
                rubrics.c.lab == lab, rubrics.c.sha256 == rubric.sha256
            )
        ).first()
        if known:
            return
        items = [{"id": i.id, "points": i.points, "depends": list(i.depends)} for i in rubric.items]
        connection.execute(
            sa.insert(rubrics).values(
                lab=lab, sha256=rubric.sha256, title=rubric.title, spec=json.dumps(items),
                recorded_at=utc(now()),
            )
        )  # fmt: skip

    def keep_rubric(self, lab: str, rubric: Any) -> None:
        with self._begin() as connection:
            self._keep_rubric(connection, lab, rubric)

    # -- what a replay needs, and what was taken without one --------------------------------

    def _keep_code(self, connection: sa.Connection, rubric: Any) -> None:
        """Keep the rubric's text and its checks' code (once for each digest of the code)."""
        digest = checks_digest(rubric.checks_dir)
        if self._code(connection, rubric.sha256, digest, kept_code.c.checks_sha256) is not None:
            return
        made = packcode.blob(rubric.path, rubric.sha256, rubric.checks_dir)
        if made is None:
            return  # the rubric file was edited since it was loaded, or the pack is too large
        values = {"rubric_sha256": rubric.sha256, "checks_sha256": made[0], "blob": made[1],
                  "recorded_at": utc(now())}  # fmt: skip
        # two shards of a batch may keep the same code at once: the second keeps nothing
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        connection.execute(dialect.insert(kept_code).values(**values).on_conflict_do_nothing())

    def _code(
        self, connection: sa.Connection, rubric_sha256: str, checks: str, column: Any = None
    ) -> Any:
        """The kept code's blob (or ``column``), None when the book keeps no such code."""
        return connection.execute(
            sa.select(kept_code.c.blob if column is None else column).where(
                kept_code.c.rubric_sha256 == rubric_sha256, kept_code.c.checks_sha256 == checks
            )
        ).scalar()

    def kept_checks(self, rubric_sha256: str) -> list[str]:
        """The digests of the checks' code the book keeps for a rubric, oldest first."""
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    sa.select(kept_code.c.checks_sha256)
                    .where(kept_code.c.rubric_sha256 == rubric_sha256)
                    .order_by(kept_code.c.recorded_at, kept_code.c.checks_sha256)
                ).scalars()
            )

    def kept_pack(self, rubric_sha256: str, checks: str) -> bytes | None:
        """A rubric's text and checks' code as kept (grader.evidence.packcode.unpack)."""
        with self.engine.connect() as connection:
            return self._code(connection, rubric_sha256, checks)

    def trusted_gradings(self, student: str, lab: str) -> list[dict[str, Any]]:
        """The student's reports of a lab that an import took on trust: their run, who, when,
        why they could not be replayed and staff's reason."""
        with self.engine.connect() as connection:
            found = connection.execute(
                sa.select(trusted_imports, runs.c.id.label("run"))
                .join(reports, reports.c.id == trusted_imports.c.report_id)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student, runs.c.lab == lab)
                .order_by(trusted_imports.c.id)
            ).all()
        return [
            {"run": int(r.run), "by": r.made_by, "at": r.made_at, "reason": r.reason, "why": r.why}
            for r in found
        ]

    # -- overrides ---------------------------------------------------------------------------

    def override(
        self, student: str, lab: str, check_id: str | None, value: float, reason: str,
        before: float | None, max_points: float | None = None,
    ) -> int:  # fmt: skip
        """Record an override (validated by the caller, who knows the roster and rubric)."""
        if not reason.strip():
            raise InputError("an override needs a reason (--reason)")
        with self._begin() as connection:
            return _insert(
                connection,
                overrides,
                student=student,
                lab=lab,
                check_id=check_id,
                value=value,
                reason=reason,
                made_at=utc(now()),
                made_by=self.by,
                before=before,
                max_points=max_points,
            )

    def withdraw(self, student: str, lab: str, check_id: str | None, reason: str) -> int:
        """Withdraw the override in force for (student, lab, check); returns its id."""
        with self._begin() as connection:
            active = self._active(connection, student, lab)
            found = active.get(check_id)
            if found is None:
                what = f"check {check_id}" if check_id else "the lab's mark"
                raise InputError(f"no override in force for {student}, {lab}, {what}")
            connection.execute(
                sa.update(overrides)
                .where(overrides.c.id == found.id)
                .values(withdrawn_at=utc(now()), withdrawn_by=self.by, withdrawn_reason=reason)
            )
            return int(found.id)

    def active_overrides(self, student: str, lab: str) -> dict[Any, Any]:
        with self.engine.connect() as connection:
            return self._active(connection, student, lab)

    def _active(self, connection: sa.Connection, student: str, lab: str) -> dict[Any, Any]:
        """The overrides in force: the latest not withdrawn for each check (None: the mark)."""
        rows = connection.execute(
            sa.select(overrides)
            .where(overrides.c.student == student, overrides.c.lab == lab)
            .order_by(overrides.c.id)
        ).all()
        active: dict[Any, Any] = {}
        for row in rows:
            if row.withdrawn_at is None:
                active[row.check_id] = row
            elif active.get(row.check_id) is not None and active[row.check_id].id == row.id:
                del active[row.check_id]
        return active

    # -- checks decided late, accepted as on time --------------------------------------------

    def accept(self, student: str, lab: str, check_id: str, reason: str) -> int:
        """Record that a check decided after the due time counts on time (validated by the
        caller, who knows the roster, the rubric and the mark)."""
        if not reason.strip():
            raise InputError("accepting a check as on time needs a reason (--reason)")
        with self._begin() as connection:
            if check_id in self._accepted(connection, student, lab):
                raise InputError(f"{check_id} of {student}, {lab} is accepted as on time already")
            return _insert(connection, accepts, student=student, lab=lab, check_id=check_id,
                           reason=reason, made_at=utc(now()), made_by=self.by)  # fmt: skip

    def unaccept(self, student: str, lab: str, check_id: str, reason: str) -> int:
        """Take back an acceptance (kept in the history); its id."""
        if not reason.strip():
            raise InputError("taking back an acceptance needs a reason (--reason)")
        with self._begin() as connection:
            found = self._accepted(connection, student, lab).get(check_id)
            if found is None:
                raise InputError(f"{check_id} of {student}, {lab} is not accepted as on time")
            connection.execute(
                sa.update(accepts).where(accepts.c.id == found.id)
                .values(undone_at=utc(now()), undone_by=self.by, undone_reason=reason)
            )  # fmt: skip
            return int(found.id)

    def _accepted(self, connection: sa.Connection, student: str, lab: str) -> dict[str, Any]:
        """The acceptances in force for a student's lab, by check."""
        rows = connection.execute(
            sa.select(accepts).where(
                accepts.c.student == student, accepts.c.lab == lab, accepts.c.undone_at.is_(None)
            )
        ).all()
        return {row.check_id: row for row in rows}

    # -- dropping a run ----------------------------------------------------------------------

    def drop(self, run_id: int, reason: str) -> None:
        """Take a recorded run out of the marks; it stays in the book and its history."""
        if not reason.strip():
            raise InputError("dropping a run needs a reason (--reason)")
        with self._begin() as connection:
            if connection.execute(sa.select(runs.c.id).where(runs.c.id == run_id)).first() is None:
                raise InputError(
                    f"no run {run_id} in the gradebook (grade book history shows runs)"
                )
            if run_id in self._dropped(connection):
                raise InputError(f"run {run_id} is dropped already")
            _insert(connection, drops, run_id=run_id, reason=reason, made_at=utc(now()),
                    made_by=self.by)  # fmt: skip

    def undrop(self, run_id: int, reason: str) -> None:
        """Put a dropped run back into the marks (the drop stays in the history)."""
        with self._begin() as connection:
            row = connection.execute(
                sa.select(drops.c.id).where(drops.c.run_id == run_id, drops.c.undone_at.is_(None))
            ).first()
            if row is None:
                raise InputError(f"run {run_id} is not dropped")
            connection.execute(
                sa.update(drops).where(drops.c.id == row.id)
                .values(undone_at=utc(now()), undone_by=self.by, undone_reason=reason)
            )  # fmt: skip

    def _dropped(self, connection: sa.Connection) -> set[int]:
        return {
            int(r.run_id)
            for r in connection.execute(
                sa.select(drops.c.run_id).where(drops.c.undone_at.is_(None))
            )
        }

    # -- backups -----------------------------------------------------------------------------

    def backup(self, target: Path) -> None:
        """A consistent copy of a SQLite book while it is in use (SQLite's online backup)."""
        if not self.url.startswith("sqlite"):
            raise InputError(
                "grade book backup copies a SQLite book; back up a PostgreSQL book with "
                "pg_dump (the README says how)"
            )

        if target.exists():
            raise InputError(f"{target}: exists already; give a new file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(mode=0o600)
        source = sqlite3.connect(self.url.removeprefix("sqlite:///"))
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)
        finally:
            copy.close()
            source.close()

    @contextlib.contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as e:
            raise InputError(f"gradebook {_shown(self.url)}: {_first_line(e)}") from None


def _asked(asked_at: Mapping[str, datetime] | None, student: str | None) -> str | None:
    """When ``student`` asked for this grading, as the book keeps it (None: nobody asked)."""
    found = (asked_at or {}).get(student or "")
    return utc(found) if found is not None else None


def _insert(connection: sa.Connection, table: sa.Table, **values: Any) -> int:
    """Insert one row; its new id."""
    key = connection.execute(sa.insert(table).values(**values)).inserted_primary_key
    if key is None:  # cannot be for one row of a table with a primary key
        raise RuntimeError(f"no id for the row inserted into {table.name}")
    return int(key[0])


def _parse_report_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _sqlite_folder(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    return Path(url.removeprefix("sqlite:///")).resolve().parent


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        # writers take the lock when their transaction starts (BEGIN IMMEDIATE), so two
        # shards recording at once wait for each other instead of failing half way
        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, pool_pre_ping=True)


def book_url(folder: Path, given: str | None = None, course_db: str | None = None) -> str:
    """--db, else GRADER_DB, else course.toml's db, else the SQLite book in the course folder.
    A password in --db or GRADER_DB is warned of (course.toml refuses one)."""
    url = given or os.environ.get("GRADER_DB") or course_db
    if url and url != course_db and has_password(url):
        where, seen = (
            ("--db", "`ps` shows to every user of this machine")
            if given
            else ("GRADER_DB", "every program and job started from this environment is given")
        )
        sys.stderr.write(
            f"grade: warning: {where} holds the book's password, which {seen}: give it by "
            "~/.pgpass (or PGPASSFILE) or a service file (PGSERVICE) instead\n"
        )
    return url or f"sqlite:///{(folder / 'gradebook.sqlite').resolve()}"


def has_password(url: str) -> bool:
    """Whether a database URL holds a password."""
    try:
        return sa.engine.make_url(url).password is not None
    except sa.exc.ArgumentError:
        return False


def _shown(url: str) -> str:
    """A database URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(a database URL that could not be read)"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
