"""The gradebook: every grading of a course's labs, regrades, overrides and dropped runs, in one
database, the course's system of record.

SQLite in the course folder by default (nothing to start); the same book on PostgreSQL when a
course outgrows one machine (course.toml's ``db``, ``--db`` or ``GRADER_DB``), through
SQLAlchemy Core. Reports and evidence archives stay files; the book keeps what a mark is decided
from: each grading's every check outcome (status, error kind, cause, points, out of what), the
rubric it was graded with (its sha256 and its items' points and dependencies), the evidence
archive's checksum, who recorded it and when. Marks are computed from that
(grader.course.marks); no number stored here is the truth on its own. It also keeps what a
replay needs (each rubric's text and its checks' code, so ``book import`` replays a report
under any rubric the book has known) and the reports an import took without a replay, on
staff's word (who, when, why; shown on the student's row).

Paths are kept relative to the course folder, so a course folder copied or restored elsewhere
works as it did. The schema carries its version (table ``meta``); ``MIGRATIONS`` brings a book
made by an older grader up to date when it is opened, in one transaction, under a lock, so two
graders opening one book at once migrate it once. Each recording is one transaction too: two
shards recording into one book at the same time lose nothing.

Times are stored as UTC ISO 8601 text (``2026-12-01T23:59:00Z``), which sorts as time does on
both databases.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from grader import __version__
from grader.base.acting import who
from grader.base.clock import now, utc_text
from grader.base.errors import InputError
from grader.base.results import Report
from grader.course.marks import (
    Accepted,
    CheckOverride,
    Grading,
    ItemSpec,
    Late,
    Mark,
    Outcome,
    mark_of,
)
from grader.engine.identity import ANSWERED_ELSEWHERE, Sighting, sighting_of
from grader.evidence import packcode
from grader.evidence.archive import archive_path
from grader.evidence.packcode import checks_digest


def _define(md: sa.MetaData, schema: int) -> tuple[sa.Table, ...]:
    """The book's tables as schema version ``schema`` has them."""
    meta = sa.Table(
        "meta", md, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text)
    )
    runs = sa.Table(
        "runs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lab", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),  # run | due | regrade | import
        sa.Column("regrade_of", sa.Integer, sa.ForeignKey("runs.id"), nullable=True),
        sa.Column("folder", sa.Text, nullable=False, unique=True),  # relative to the course
        sa.Column("rubric_sha256", sa.String(64)),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        *([sa.Column("grader_version", sa.String(40))] if schema >= 2 else []),
        # the shards of one class grading share a batch (None: a run of its own)
        *([sa.Column("batch", sa.String(100))] if schema >= 3 else []),
    )
    reports = sa.Table(
        "reports",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("student", sa.String(200), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error_kind", sa.String(40)),
        sa.Column("score", sa.Float),
        sa.Column("max_score", sa.Float, nullable=False),
        sa.Column("graded_at", sa.String(32), nullable=False),  # when the VM was seen
        sa.Column("report_path", sa.Text, nullable=False),  # relative to the course folder
        sa.Column("evidence_path", sa.Text),
        *(
            [
                sa.Column("rubric_sha256", sa.String(64)),
                sa.Column("evidence_sha256", sa.String(64)),
                sa.Column("host", sa.String(300)),
                sa.Column("error", sa.Text),
            ]
            if schema >= 3
            else []
        ),
    )
    checks = sa.Table(
        "checks",
        md,
        sa.Column("report_id", sa.Integer, sa.ForeignKey("reports.id"), primary_key=True),
        sa.Column("check_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("points", sa.Float, nullable=False),
        sa.Column("max_points", sa.Float, nullable=False),
        *(
            [
                sa.Column("error_kind", sa.String(40)),
                sa.Column("cause", sa.String(100)),
                sa.Column("message", sa.Text),
            ]
            if schema >= 3
            else []
        ),
    )
    overrides = sa.Table(
        "overrides",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(200), nullable=False, index=True),
        sa.Column("lab", sa.String(100), nullable=False),
        sa.Column("check_id", sa.String(100)),  # None: the lab's final mark
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("made_at", sa.String(32), nullable=False),
        sa.Column("made_by", sa.String(200), nullable=False),
        sa.Column("before", sa.Float),  # the mark (or the check's points) it replaced
        sa.Column("withdrawn_at", sa.String(32)),
        sa.Column("withdrawn_by", sa.String(200)),
        sa.Column("withdrawn_reason", sa.Text),
        # the check's points (or the lab's maximum) when the override was made
        *([sa.Column("max_points", sa.Float)] if schema >= 3 else []),
    )
    tables = [meta, runs, reports, checks, overrides]
    if schema >= 3:
        # each rubric a lab was graded with: its items' points and dependencies, to score a
        # grading as its own rubric did
        tables.append(
            sa.Table(
                "rubrics",
                md,
                sa.Column("lab", sa.String(100), primary_key=True),
                sa.Column("sha256", sa.String(64), primary_key=True),
                sa.Column("title", sa.Text, nullable=False),
                sa.Column("spec", sa.Text, nullable=False),  # JSON: its items' id, points, depends
                sa.Column("recorded_at", sa.String(32), nullable=False),
            )
        )
        # runs taken out of the marks (kept, and put back by undoing the drop)
        tables.append(
            sa.Table(
                "drops",
                md,
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
                sa.Column("reason", sa.Text, nullable=False),
                sa.Column("made_at", sa.String(32), nullable=False),
                sa.Column("made_by", sa.String(200), nullable=False),
                sa.Column("undone_at", sa.String(32)),
                sa.Column("undone_by", sa.String(200)),
                sa.Column("undone_reason", sa.Text),
            )
        )
    if schema >= 4:
        # what each grading showed of the machine that answered (grader.engine.identity):
        # host key, [[unique]] digests, the address graded and the address reached, its own
        # flags; compared across every grading of a lab
        tables.append(
            sa.Table(
                "identities",
                md,
                sa.Column(
                    "report_id", sa.Integer, sa.ForeignKey("reports.id"), index=True, nullable=False
                ),
                sa.Column("kind", sa.String(100), nullable=False),
                sa.Column("value", sa.Text, nullable=False),
            )
        )
    if schema >= 5:
        # checks decided only after the due time that staff accept as on time (the fault was
        # the grader's): one row per acceptance, undone rows kept for the history
        tables.append(
            sa.Table(
                "accepts",
                md,
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column("student", sa.String(200), nullable=False, index=True),
                sa.Column("lab", sa.String(100), nullable=False),
                sa.Column("check_id", sa.String(100), nullable=False),
                sa.Column("reason", sa.Text, nullable=False),
                sa.Column("made_at", sa.String(32), nullable=False),
                sa.Column("made_by", sa.String(200), nullable=False),
                sa.Column("undone_at", sa.String(32)),
                sa.Column("undone_by", sa.String(200)),
                sa.Column("undone_reason", sa.Text),
            )
        )
    if schema >= 6:
        # the code each rubric was graded with (grader.evidence.packcode: its text and its
        # checks' files, gzip'd), so a grading under any rubric the book has known is replayed
        tables.append(
            sa.Table(
                "kept_code",
                md,
                sa.Column("rubric_sha256", sa.String(64), primary_key=True),
                sa.Column("checks_sha256", sa.String(64), primary_key=True),
                sa.Column("blob", sa.LargeBinary, nullable=False),
                sa.Column("recorded_at", sa.String(32), nullable=False),
            )
        )
        # reports an import took without replaying their evidence, on staff's word
        tables.append(
            sa.Table(
                "trusted",
                md,
                sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                sa.Column(
                    "report_id", sa.Integer, sa.ForeignKey("reports.id"), index=True, nullable=False
                ),
                sa.Column("why", sa.Text, nullable=False),  # what could not be replayed
                sa.Column("reason", sa.Text, nullable=False),  # staff's
                sa.Column("made_at", sa.String(32), nullable=False),
                sa.Column("made_by", sa.String(200), nullable=False),
            )
        )
    if schema >= 7:
        # who holds the course's lock on PostgreSQL (grader.course.lock), by the server's pid of
        # the lock's connection: the holder named whole, which application_name (63 bytes) is not
        tables.append(
            sa.Table(
                "lock_holders",
                md,
                sa.Column("pid", sa.Integer, primary_key=True, autoincrement=False),
                sa.Column("holder", sa.Text, nullable=False),
            )
        )
    return tuple(tables)


def _schema_1(connection: sa.Connection, root: Path | None) -> None:
    """The first book: every table as it was then (runs without grader_version)."""
    first = sa.MetaData()
    _define(first, 1)
    first.create_all(connection)


def _schema_2(connection: sa.Connection, root: Path | None) -> None:
    """Each run records the grader's version that made it."""
    connection.execute(sa.text("ALTER TABLE runs ADD COLUMN grader_version VARCHAR(40)"))


def _schema_3(connection: sa.Connection, root: Path | None) -> None:
    """Gradings stored whole (each check's error kind, cause and message; each report's rubric
    and archive checksums), the rubrics graded with, dropped runs, shard batches; paths
    relative to the course folder."""
    for table, column, kind in (
        ("runs", "batch", "VARCHAR(100)"),
        ("reports", "rubric_sha256", "VARCHAR(64)"),
        ("reports", "evidence_sha256", "VARCHAR(64)"),
        ("reports", "host", "VARCHAR(300)"),
        ("reports", "error", "TEXT"),
        ("checks", "error_kind", "VARCHAR(40)"),
        ("checks", "cause", "VARCHAR(100)"),
        ("checks", "message", "TEXT"),
        ("overrides", "max_points", "FLOAT"),
    ):
        connection.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {kind}"))
    third = sa.MetaData()
    rubrics, drops = _define(third, 3)[5:7]
    rubrics.create(connection)
    drops.create(connection)
    connection.execute(
        sa.text(
            "UPDATE reports SET rubric_sha256 = "
            "(SELECT rubric_sha256 FROM runs WHERE runs.id = reports.run_id)"
        )
    )
    if root is None:
        return
    for table, columns in (("runs", ("folder",)), ("reports", ("report_path", "evidence_path"))):
        rows = connection.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table}")).all()
        for row in rows:
            values = {c: relative(root, getattr(row, c)) for c in columns}
            sets = ", ".join(f"{c} = :{c}" for c in columns)
            connection.execute(
                sa.text(f"UPDATE {table} SET {sets} WHERE id = :id"), {**values, "id": row.id}
            )


def _schema_4(connection: sa.Connection, root: Path | None) -> None:
    """What each grading showed of the machine that answered, for identity across the course
    (gradings recorded before keep none)."""
    fourth = sa.MetaData()
    _define(fourth, 4)[-1].create(connection)


def _schema_5(connection: sa.Connection, root: Path | None) -> None:
    """Checks decided after the due time that staff accepted as on time."""
    fifth = sa.MetaData()
    _define(fifth, 5)[-1].create(connection)


def _schema_6(connection: sa.Connection, root: Path | None) -> None:
    """The code each rubric was graded with, and the reports imported on trust (rubrics the
    book knew before keep no code: a report under one is replayed no more)."""
    sixth = sa.MetaData()
    _define(sixth, 6)
    for name in ("kept_code", "trusted"):
        sixth.tables[name].create(connection)


def _schema_7(connection: sa.Connection, root: Path | None) -> None:
    """Who holds the course's lock, named whole (PostgreSQL's application_name is cut at 63
    bytes)."""
    seventh = sa.MetaData()
    _define(seventh, 7)[-1].create(connection)


#: Schema versions in order: a book at version N is brought to the last by the ones after N
MIGRATIONS: tuple[Callable[[sa.Connection, Path | None], None], ...] = (
    _schema_1, _schema_2, _schema_3, _schema_4, _schema_5, _schema_6, _schema_7,
)  # fmt: skip
SCHEMA = len(MIGRATIONS)
metadata = sa.MetaData()
meta, runs, reports, checks, overrides, rubrics, drops, identities = _define(metadata, SCHEMA)[:8]
accepts, kept_code, trusted_imports, lock_holders = (
    metadata.tables[name] for name in ("accepts", "kept_code", "trusted", "lock_holders")
)


def relative(root: Path | None, path: str | None) -> str | None:
    """A path as the book keeps it: relative to the course folder when it lies inside it."""
    if path is None or root is None:
        return path
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


utc = utc_text  # the book's times are written so


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Row:
    """One student's mark for one lab, as ``book show`` gives it (its JSON is a contract)."""

    student: str
    lab: str
    mark: float | None
    max: float | None
    score: float | None
    penalty: float
    days_late: int
    policy: str
    run_at: str | None
    overridden: bool
    reason: str
    run: int | None = None  # the book's run whose grading counts
    incomplete: list[str] = field(default_factory=list)  # checks still not checked
    filled: list[dict[str, Any]] = field(default_factory=list)  # from a later grading
    rubric_sha256: str | None = None  # the rubric the counting grading was scored with
    rubric_current: bool = True  # False: an older rubric than the lab's (grade course regrade)
    notes: list[str] = field(default_factory=list)  # e.g. an override made on older points
    flags: list[dict[str, Any]] = field(default_factory=list)  # identity: questions for staff
    # gradings that count here which an import took without a replay, on staff's word (run,
    # by, at, reason, why)
    trusted: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Explained:
    """Everything ``book explain`` shows of one mark."""

    row: Row
    decided: Mark
    due: datetime
    overrides: list[dict[str, Any]]
    gradings: list[Grading]


class Book:
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

    def acting(self, by: str) -> Book:
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
    ) -> int:
        """Record a run's folder (its reports as read), in one transaction; returns its id.
        ``rubric`` (grader.engine.rubric.Rubric): the lab's, kept so its gradings can be
        scored as it scored them (and replayed: its code is kept too). ``trusted``: the reports
        an import takes without a replay, by student: (why not, staff's reason)."""

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

    def rubric_items(self, lab: str) -> dict[str, tuple[ItemSpec, ...]]:
        """Each rubric the book knows for a lab: sha256 -> its items."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(rubrics.c.sha256, rubrics.c.spec).where(rubrics.c.lab == lab)
            ).all()
        return {
            row.sha256: tuple(
                ItemSpec(i["id"], float(i["points"]), tuple(i["depends"]))
                for i in json.loads(row.spec)
            )
            for row in rows
        }

    def run_of(self, folder: Path) -> tuple[int, str] | None:
        """The recorded run (id, lab) of a folder, if it is one."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(runs.c.id, runs.c.lab).where(runs.c.folder == self.relative(folder))
            ).first()
        return (int(row.id), str(row.lab)) if row else None

    def run(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        return dict(row._mapping) if row else None

    def runs_of(self, lab: str) -> list[dict[str, Any]]:
        """Every run of a lab that is not a regrade, in recording order."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(runs).where(runs.c.lab == lab, runs.c.kind != "regrade")
                .order_by(runs.c.id)
            ).all()  # fmt: skip
        return [dict(r._mapping) for r in rows]

    def latest_version(self, run_id: int) -> dict[str, Any]:
        """A run as its latest regrade (not dropped) has it: that run's row."""
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(runs).where(sa.or_(runs.c.id == run_id, runs.c.regrade_of == run_id))
                .order_by(runs.c.id)
            ).all()  # fmt: skip
        kept = [r for r in rows if r.id not in dropped] or rows[:1]
        return dict(kept[-1]._mapping)

    def graded_students(
        self, lab: str, kinds: Sequence[str], graded_only: bool = False
    ) -> set[str]:
        """The students a run of these kinds recorded for a lab (only those it could grade,
        with ``graded_only``)."""
        query = (
            sa.select(reports.c.student)
            .join(runs, runs.c.id == reports.c.run_id)
            .where(runs.c.lab == lab, runs.c.kind.in_(list(kinds)))
        )
        if graded_only:
            query = query.where(reports.c.status == "graded")
        with self.engine.connect() as connection:
            return {r.student for r in connection.execute(query)}

    # -- what a mark is decided from ---------------------------------------------------------

    def gradings(self, student: str, lab: str) -> list[Grading]:
        """Each run's grading of the student, as its latest regrade has it (a regrade keeps
        the time the VM was seen); dropped runs left out."""
        items = self.rubric_items(lab)
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(reports, runs.c.kind, runs.c.regrade_of, runs.c.id.label("run"))
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student, runs.c.lab == lab)
                .order_by(runs.c.id)
            ).all()
            latest: dict[int, Any] = {}
            for row in rows:
                if row.run in dropped:
                    continue
                original = row.regrade_of if row.kind == "regrade" and row.regrade_of else row.run
                if original in dropped:
                    continue
                latest[original] = row  # runs in recording order: the last regrade wins
            ids = [row.id for row in latest.values()]
            originals = {
                row.id: row
                for row in connection.execute(
                    sa.select(runs.c.id, runs.c.batch, runs.c.kind).where(
                        runs.c.id.in_(list(latest))
                    )
                )
            }
            found: dict[int, list[Outcome]] = {}
            if ids:
                for c in connection.execute(sa.select(checks).where(checks.c.report_id.in_(ids))):
                    found.setdefault(c.report_id, []).append(
                        Outcome(
                            c.check_id,
                            c.status,
                            c.points,
                            c.max_points,
                            c.error_kind,
                            c.cause,
                            c.message or "",
                        )
                    )
        gradings = []
        for original, row in latest.items():
            sha = row.rubric_sha256
            spec = items.get(sha) if sha else None
            outcomes = found.get(row.id, [])
            if spec is not None:
                order = {i.id: n for n, i in enumerate(spec)}
                outcomes.sort(key=lambda o: order.get(o.id, len(order)))
            grading = Grading(
                original, parse_utc(row.graded_at), row.status, row.max_score,
                tuple(outcomes), spec, sha, row.run, row.report_path, originals[original].batch,
                originals[original].kind,
            )  # fmt: skip
            gradings.append(grading)
        return gradings

    def last_graded(self, lab: str) -> dict[str, datetime]:
        """Each student's latest grading of a lab that graded their VM (dropped runs left
        out): when the VM was seen."""
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(reports.c.student, reports.c.graded_at, runs.c.id, runs.c.regrade_of)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(runs.c.lab == lab, reports.c.status == "graded")
            ).all()
        found: dict[str, datetime] = {}
        for row in rows:
            if row.id in dropped or (row.regrade_of is not None and row.regrade_of in dropped):
                continue
            at = parse_utc(row.graded_at)
            if row.student not in found or at > found[row.student]:
                found[row.student] = at
        return found

    def sightings(self, lab: str) -> list[Sighting]:
        """What every grading of a lab (dropped runs left out) showed of the machine that
        answered, each with where it was seen; and each grading's own answered_elsewhere."""
        with self.engine.connect() as connection:
            dropped = self._dropped(connection)
            rows = connection.execute(
                sa.select(identities.c.kind, identities.c.value, reports.c.id,
                          reports.c.student, reports.c.graded_at, runs.c.id.label("run"),
                          runs.c.regrade_of, runs.c.kind.label("run_kind"))
                .join(reports, reports.c.id == identities.c.report_id)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(runs.c.lab == lab)
            ).all()  # fmt: skip
        found: dict[int, tuple[str, str, dict[str, list[str]]]] = {}
        for row in rows:
            original = row.regrade_of if row.run_kind == "regrade" and row.regrade_of else row.run
            if row.run in dropped or original in dropped:
                continue
            where = f"run {original}, the VM as seen {row.graded_at}"
            entry = found.setdefault(row.id, (row.student, where, {}))
            entry[2].setdefault(row.kind, []).append(row.value)
        return [Sighting(student, values, where) for student, where, values in found.values()]

    def students(self, lab: str) -> set[str]:
        """Every student the book has a report of for a lab."""
        with self.engine.connect() as connection:
            return {
                r.student
                for r in connection.execute(
                    sa.select(reports.c.student)
                    .join(runs, runs.c.id == reports.c.run_id)
                    .where(runs.c.lab == lab)
                )
            }

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

    # -- marks -------------------------------------------------------------------------------

    def mark(
        self, student: str, lab: str, due: datetime, late: Late, policy: str,
        current_sha: str | None = None,
    ) -> Row:  # fmt: skip
        """The student's mark for a lab, as of the recorded gradings, the policy and the
        overrides in force."""
        return self.explain(student, lab, due, late, policy, current_sha).row

    def explain(
        self, student: str, lab: str, due: datetime, late: Late, policy: str,
        current_sha: str | None = None,
    ) -> Explained:  # fmt: skip
        with self.engine.connect() as connection:
            active = self._active(connection, student, lab)
            accepted = {
                c: Accepted(c, row.made_by, row.reason)
                for c, row in self._accepted(connection, student, lab).items()
            }
        gradings = self.gradings(student, lab)
        by_check = {
            c: CheckOverride(c, float(row.value), row.made_by, row.reason, row.max_points)
            for c, row in active.items()
            if c is not None
        }
        decided = mark_of(gradings, due, late, policy, by_check, accepted)
        final, reason = decided.mark, decided.reason
        incomplete = list(decided.incomplete)
        if None in active:  # the lab's final mark, set by hand
            final = float(active[None].value)
            reason = f"set by {active[None].made_by}: {active[None].reason}"
            incomplete = []
        elif by_check:
            reason += "; " + "; ".join(
                f"{o.check} set to {o.value:g} by {o.by}: {o.reason}" for o in by_check.values()
            )
        sha = decided.grading.rubric_sha256 if decided.grading else None
        versions = {g.version for g in gradings}  # the reports the marks are made from
        row = Row(
            student=student,
            lab=lab,
            mark=final,
            max=decided.max_score,
            score=decided.score,
            penalty=decided.penalty,
            days_late=decided.days_late,
            policy=policy,
            run_at=utc(decided.run_at) if decided.run_at else None,
            overridden=bool(active),
            reason=reason,
            run=decided.run,
            incomplete=incomplete,
            filled=[
                {
                    "check": f.check,
                    "run": f.run,
                    "at": utc(f.at),
                    "status": f.status,
                    "days_late": f.days_late,
                    "penalty": f.penalty,
                    "taken": f.taken,
                    "accepted_by": f.accepted.by if f.accepted else None,
                    "accepted_reason": f.accepted.reason if f.accepted else None,
                }
                for f in decided.filled
            ],
            rubric_sha256=sha,
            rubric_current=current_sha is None or sha is None or sha == current_sha,
            notes=list(decided.notes),
            trusted=[t for t in self.trusted_gradings(student, lab) if t["run"] in versions],
        )
        made = [
            {"check": c, "value": float(r.value), "by": r.made_by, "at": r.made_at,
             "reason": r.reason, "before": r.before}
            for c, r in active.items()
        ]  # fmt: skip
        return Explained(row, decided, due, made, gradings)

    def check_points(
        self, student: str, lab: str, check_id: str, run: int | None = None
    ) -> float | None:
        """The check's points in a run's grading of the student (the latest, by default)."""
        query = (
            sa.select(checks.c.points)
            .join(reports, reports.c.id == checks.c.report_id)
            .join(runs, runs.c.id == reports.c.run_id)
            .where(reports.c.student == student, runs.c.lab == lab, checks.c.check_id == check_id)
        )
        if run is not None:
            query = query.where(runs.c.id == run)
        with self.engine.connect() as connection:
            return connection.execute(query.order_by(runs.c.id.desc())).scalar()

    # -- history -----------------------------------------------------------------------------

    def history(self, student: str, lab: str | None = None) -> list[dict[str, Any]]:
        """Every run, regrade, drop and override of a student, in time order, and when each
        check first passed."""
        events: list[dict[str, Any]] = []
        with self.engine.connect() as connection:
            query = (
                sa.select(reports, runs.c.kind, runs.c.lab, runs.c.recorded_at,
                          runs.c.recorded_by, runs.c.regrade_of, runs.c.folder,
                          runs.c.id.label("run"), runs.c.batch)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student)
            )  # fmt: skip
            if lab:
                query = query.where(runs.c.lab == lab)
            mine = set()
            for row in connection.execute(query.order_by(runs.c.id)):
                mine.add(row.run)
                events.append({
                    "kind": row.kind, "lab": row.lab, "at": row.recorded_at,
                    "by": row.recorded_by, "graded_at": row.graded_at, "status": row.status,
                    "score": row.score, "max": row.max_score, "folder": row.folder,
                    "regrade_of": row.regrade_of, "run": row.run, "batch": row.batch,
                    "error_kind": row.error_kind,
                })  # fmt: skip
            for row in connection.execute(sa.select(drops).order_by(drops.c.id)):
                if row.run_id not in mine:
                    continue
                about = {"run": row.run_id, "lab": next(e["lab"] for e in events
                                                        if e.get("run") == row.run_id)}  # fmt: skip
                events.append({"kind": "drop", "at": row.made_at, "by": row.made_by,
                               "reason": row.reason, **about})  # fmt: skip
                if row.undone_at:
                    events.append({"kind": "undrop", "at": row.undone_at, "by": row.undone_by,
                                   "reason": row.undone_reason, **about})  # fmt: skip
            query = sa.select(overrides).where(overrides.c.student == student)
            if lab:
                query = query.where(overrides.c.lab == lab)
            for row in connection.execute(query.order_by(overrides.c.id)):
                about = {"lab": row.lab, "check": row.check_id, "value": row.value,
                         "before": row.before}  # fmt: skip
                events.append({"kind": "override", "at": row.made_at, "by": row.made_by,
                               "reason": row.reason, **about})  # fmt: skip
                if row.withdrawn_at:
                    events.append({"kind": "withdraw", "at": row.withdrawn_at,
                                   "by": row.withdrawn_by, "reason": row.withdrawn_reason,
                                   **about})  # fmt: skip
            query = sa.select(accepts).where(accepts.c.student == student)
            if lab:
                query = query.where(accepts.c.lab == lab)
            for row in connection.execute(query.order_by(accepts.c.id)):
                about = {"lab": row.lab, "check": row.check_id}
                events.append({"kind": "accept", "at": row.made_at, "by": row.made_by,
                               "reason": row.reason, **about})  # fmt: skip
                if row.undone_at:
                    events.append({"kind": "unaccept", "at": row.undone_at, "by": row.undone_by,
                                   "reason": row.undone_reason, **about})  # fmt: skip
            first = (
                sa.select(runs.c.lab, checks.c.check_id, sa.func.min(reports.c.graded_at))
                .join(reports, reports.c.id == checks.c.report_id)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student, checks.c.status == "pass")
                .group_by(runs.c.lab, checks.c.check_id)
            )
            if lab:
                first = first.where(runs.c.lab == lab)
            passed = [
                {"kind": "first_passed", "lab": row[0], "check": row[1], "at": row[2], "by": None}
                for row in connection.execute(first)
            ]
        return sorted(events, key=lambda e: e["at"]) + sorted(
            passed, key=lambda e: (e["at"], e["check"])
        )

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
