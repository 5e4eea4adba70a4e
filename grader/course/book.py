"""The gradebook: every grading of a course's labs, regrades and overrides, in one database.

SQLite in the course folder by default (nothing to start); the same book on PostgreSQL when a
course outgrows one machine (``--db postgresql://...`` or ``GRADER_DB``), through SQLAlchemy
Core. Reports and evidence archives stay files: the book indexes them (each run's folder, each
report's status, score and checks) and keeps who recorded what, when, with which rubric.

The schema carries its version (table ``meta``); ``MIGRATIONS`` brings a book made by an older
grader up to date when it is opened, in one transaction, under a lock, so two graders opening
one book at once migrate it once. Each recording is one transaction too: two shards recording
into one book at the same time lose nothing.

Times are stored as UTC ISO 8601 text (``2026-12-01T23:59:00Z``), which sorts as time does on
both databases.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from grader.base.clock import now
from grader.base.errors import InputError
from grader.base.results import Report
from grader.course.marks import Graded, Late, Mark, decide
from grader.evidence.archive import archive_path


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
        sa.Column("folder", sa.Text, nullable=False, unique=True),
        sa.Column("rubric_sha256", sa.String(64)),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        *([sa.Column("grader_version", sa.String(40))] if schema >= 2 else []),
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
        sa.Column("report_path", sa.Text, nullable=False),
        sa.Column("evidence_path", sa.Text),
    )
    checks = sa.Table(
        "checks",
        md,
        sa.Column("report_id", sa.Integer, sa.ForeignKey("reports.id"), primary_key=True),
        sa.Column("check_id", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("points", sa.Float, nullable=False),
        sa.Column("max_points", sa.Float, nullable=False),
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
    )
    return meta, runs, reports, checks, overrides


def _schema_1(connection: sa.Connection) -> None:
    """The first book: every table as it was then (runs without grader_version)."""
    first = sa.MetaData()
    _define(first, 1)
    first.create_all(connection)


def _schema_2(connection: sa.Connection) -> None:
    """Each run records the grader's version that made it."""
    connection.execute(sa.text("ALTER TABLE runs ADD COLUMN grader_version VARCHAR(40)"))


#: Schema versions in order: a book at version N is brought to the last by the ones after N
MIGRATIONS: tuple[Callable[[sa.Connection], None], ...] = (_schema_1, _schema_2)
SCHEMA = len(MIGRATIONS)
metadata = sa.MetaData()
meta, runs, reports, checks, overrides = _define(metadata, SCHEMA)


def utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


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


class Book:
    """A course's gradebook at ``url`` (sqlite:///path or postgresql://...)."""

    def __init__(self, url: str, upto: int = SCHEMA) -> None:
        self.url = url
        try:
            self.engine = _engine(url)
            with self.engine.begin() as connection:
                self._migrate(connection, upto)
        except sa.exc.SQLAlchemyError as e:
            raise InputError(f"gradebook {_shown(url)}: {_first_line(e)}") from None

    def close(self) -> None:
        self.engine.dispose()

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
            MIGRATIONS[step](connection)
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

    # -- recording ---------------------------------------------------------------------------

    def record(
        self,
        lab: str,
        folder: Path,
        found: Sequence[tuple[Path, Report]],
        kind: str,
        regrade_of: int | None = None,
    ) -> int:
        """Record a run's folder (its reports as read), in one transaction; returns its id."""
        from grader import __version__

        where = str(folder.resolve())
        with self._begin() as connection:
            if connection.execute(sa.select(runs.c.id).where(runs.c.folder == where)).first():
                raise InputError(f"{folder}: already recorded in the gradebook")
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
                recorded_by=who(),
                grader_version=__version__,
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
                    score=report.score,
                    max_score=report.max_score,
                    graded_at=utc(_parse_report_time(report.graded_at)),
                    report_path=str(path.resolve()),
                    evidence_path=str(evidence.resolve()) if evidence.exists() else None,
                )
                if report.checks:
                    connection.execute(
                        sa.insert(checks),
                        [
                            {"report_id": report_id, "check_id": c.id, "status": c.status,
                             "points": c.points, "max_points": c.max_points}
                            for c in report.checks
                        ],
                    )  # fmt: skip
            return run_id

    def run_of(self, folder: Path) -> tuple[int, str] | None:
        """The recorded run (id, lab) of a folder, if it is one."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(runs.c.id, runs.c.lab).where(runs.c.folder == str(folder.resolve()))
            ).first()
        return (int(row.id), str(row.lab)) if row else None

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

    # -- overrides ---------------------------------------------------------------------------

    def override(
        self, student: str, lab: str, check_id: str | None, value: float, reason: str,
        before: float | None,
    ) -> int:  # fmt: skip
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
                made_by=who(),
                before=before,
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
                .values(withdrawn_at=utc(now()), withdrawn_by=who(), withdrawn_reason=reason)
            )
            return int(found.id)

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

    # -- marks -------------------------------------------------------------------------------

    def mark(self, student: str, lab: str, due: datetime, late: Late, policy: str) -> Row:
        """The student's mark for a lab, as of the recorded gradings, the policy and the
        overrides in force."""
        with self.engine.connect() as connection:
            active = self._active(connection, student, lab)
            gradings = self._gradings(connection, student, lab, active)
        decided: Mark = decide(gradings, due, late, policy)
        final, reason = decided.mark, decided.reason
        overridden = bool(active)
        if None in active:  # the lab's final mark, set by hand
            final = float(active[None].value)
            reason = f"set by {active[None].made_by}: {active[None].reason}"
        elif active:
            reason += "; " + "; ".join(
                f"{c} set to {row.value:g} by {row.made_by}: {row.reason}"
                for c, row in active.items()
            )
        return Row(
            student=student,
            lab=lab,
            mark=final,
            max=decided.max_score,
            score=decided.score,
            penalty=decided.penalty,
            days_late=decided.days_late,
            policy=policy,
            run_at=utc(decided.run_at) if decided.run_at else None,
            overridden=overridden,
            reason=reason,
        )

    def _gradings(
        self, connection: sa.Connection, student: str, lab: str, active: dict[Any, Any]
    ) -> list[Graded]:
        """Each run's grading of the student, as its latest regrade has it (a regrade keeps
        the time the VM was seen), with the check overrides in force applied."""
        rows = connection.execute(
            sa.select(reports, runs.c.kind, runs.c.regrade_of, runs.c.id.label("run"))
            .join(runs, runs.c.id == reports.c.run_id)
            .where(reports.c.student == student, runs.c.lab == lab)
            .order_by(runs.c.id)
        ).all()
        latest: dict[int, Any] = {}
        for row in rows:
            original = row.regrade_of if row.kind == "regrade" and row.regrade_of else row.run
            latest[original] = row  # runs in recording order: the last regrade wins
        gradings = []
        for original, row in latest.items():
            score = row.score
            if score is not None and any(k is not None for k in active):
                points = dict(
                    connection.execute(
                        sa.select(checks.c.check_id, checks.c.points).where(
                            checks.c.report_id == row.id
                        )
                    ).all()
                )
                for check_id, override in active.items():
                    if check_id is not None and check_id in points:
                        score += float(override.value) - float(points[check_id])
            gradings.append(Graded(parse_utc(row.graded_at), score, row.max_score, original))
        return gradings

    def check_points(self, student: str, lab: str, check_id: str) -> float | None:
        """The check's points in the student's latest grading (what an override replaces)."""
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(checks.c.points)
                .join(reports, reports.c.id == checks.c.report_id)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student, runs.c.lab == lab,
                       checks.c.check_id == check_id)
                .order_by(runs.c.id.desc())
            ).scalar()  # fmt: skip

    # -- history -----------------------------------------------------------------------------

    def history(self, student: str, lab: str | None = None) -> list[dict[str, Any]]:
        """Every run, regrade and override of a student, in time order, and when each check
        first passed."""
        events: list[dict[str, Any]] = []
        with self.engine.connect() as connection:
            query = (
                sa.select(reports, runs.c.kind, runs.c.lab, runs.c.recorded_at,
                          runs.c.recorded_by, runs.c.regrade_of, runs.c.folder)
                .join(runs, runs.c.id == reports.c.run_id)
                .where(reports.c.student == student)
            )  # fmt: skip
            if lab:
                query = query.where(runs.c.lab == lab)
            for row in connection.execute(query.order_by(runs.c.id)):
                events.append({
                    "kind": row.kind, "lab": row.lab, "at": row.recorded_at,
                    "by": row.recorded_by, "graded_at": row.graded_at, "status": row.status,
                    "score": row.score, "max": row.max_score, "folder": row.folder,
                    "regrade_of": row.regrade_of,
                })  # fmt: skip
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
        return sorted(events, key=lambda e: e["at"]) + sorted(passed, key=lambda e: e["at"])

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


def book_url(folder: Path, given: str | None = None) -> str:
    """--db, else GRADER_DB, else the SQLite book in the course folder."""
    url = given or os.environ.get("GRADER_DB")
    return url or f"sqlite:///{(folder / 'gradebook.sqlite').resolve()}"


def _shown(url: str) -> str:
    """A database URL without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(a database URL that could not be read)"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
