"""The book's tables as each schema version has them, and the migrations that bring a book
made by an older grader up to date (grader.course.book.store runs them when a book is opened).

Times are stored as UTC ISO 8601 text (``2026-12-01T23:59:00Z``), which sorts as time does on
both databases; paths relative to the course folder.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from grader.base.clock import utc_text


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
        # a student's request from the web: when they asked (lateness is judged by it)
        *([sa.Column("asked_at", sa.String(32))] if schema >= 8 else []),
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
    if schema >= 8:
        tables += _web(md)
    if schema >= 9:
        tables.append(_questions(md))
    if schema >= 10:
        tables += _lti(md)
    return tuple(tables)


def _lti(md: sa.MetaData) -> list[sa.Table]:
    """The course as an LTI 1.3 tool (schema 10): logins under way (their state and nonce,
    used once), the LMS users bound to students, the LMS courses seen at launches (their
    services' addresses), each lab's line item there, the outbox of scores, and the launches
    of people the roster does not have."""
    return [
        sa.Table(
            "lti_logins",  # an OIDC login initiated: its state (hashed) and nonce, used once
            md,
            sa.Column("state_sha256", sa.String(64), primary_key=True),
            sa.Column("nonce", sa.String(100), nullable=False, unique=True),
            sa.Column("issuer", sa.String(300), nullable=False),
            sa.Column("client_id", sa.String(300), nullable=False),
            sa.Column("made_at", sa.String(32), nullable=False),
            sa.Column("expires_at", sa.String(32), nullable=False, index=True),
            sa.Column("used_at", sa.String(32)),
        ),
        sa.Table(
            "lti_users",  # an LMS user (issuer, sub) bound to a student at their first launch
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("issuer", sa.String(300), nullable=False),
            sa.Column("sub", sa.String(300), nullable=False),
            sa.Column("student", sa.String(200), nullable=False, index=True),
            sa.Column("matched_by", sa.Text, nullable=False),  # the claim and its value
            sa.Column("bound_at", sa.String(32), nullable=False),
            sa.Column("context", sa.Integer),  # the LMS course of their latest launch
            sa.UniqueConstraint("issuer", "sub"),
            sa.UniqueConstraint("issuer", "student"),
        ),
        sa.Table(
            "lti_contexts",  # an LMS course the tool was launched from, and its services
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("issuer", sa.String(300), nullable=False),
            sa.Column("client_id", sa.String(300), nullable=False),
            sa.Column("deployment_id", sa.String(300), nullable=False),
            sa.Column("context_id", sa.String(300), nullable=False),
            sa.Column("title", sa.Text),
            sa.Column("lineitems_url", sa.Text),
            sa.Column("memberships_url", sa.Text),
            sa.Column("scopes", sa.Text, nullable=False),  # JSON: the AGS scopes offered
            sa.Column("seen_at", sa.String(32), nullable=False),
            sa.UniqueConstraint("issuer", "client_id", "deployment_id", "context_id"),
        ),
        sa.Table(
            "lti_lineitems",  # a lab's line item in an LMS course, bound once
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("context", sa.Integer, sa.ForeignKey("lti_contexts.id"), nullable=False),
            sa.Column("lab", sa.String(100), nullable=False),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("how", sa.String(20), nullable=False),  # launch | found | created
            sa.Column("bound_at", sa.String(32), nullable=False),
            sa.UniqueConstraint("context", "lab"),
        ),
        sa.Table(
            "lti_outbox",  # each score for the LMS, kept until it is there (or refused)
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("student", sa.String(200), nullable=False, index=True),
            sa.Column("lab", sa.String(100), nullable=False),
            sa.Column("score", sa.Text, nullable=False),  # JSON: what the book says
            sa.Column("digest", sa.String(64), nullable=False),
            # pending | sending | sent | refused | superseded
            sa.Column("state", sa.String(20), nullable=False, index=True),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("next_try_at", sa.String(32), nullable=False),
            sa.Column("lease_until", sa.String(32)),
            sa.Column("made_at", sa.String(32), nullable=False),
            sa.Column("sent_at", sa.String(32)),
            sa.Column("waiting", sa.Text),  # why it is not sent yet (what staff read)
            sa.Column("answer", sa.Text),  # the LMS's answer to a refused score
        ),
        sa.Table(
            "lti_unmatched",  # launches of people the roster (or course.toml's staff) lacks
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("issuer", sa.String(300), nullable=False),
            sa.Column("sub", sa.String(300), nullable=False),
            sa.Column("name", sa.Text),
            sa.Column("role", sa.String(10), nullable=False),
            sa.Column("claim", sa.Text, nullable=False),  # what did not match, and its value
            sa.Column("at", sa.String(32), nullable=False),
            sa.Column("count", sa.Integer, nullable=False),
            sa.UniqueConstraint("issuer", "sub"),
        ),
    ]


def _questions(md: sa.MetaData) -> sa.Table:
    """Questions a student asks staff about a check of one of their gradings (schema 9), each
    answered with what staff did about it."""
    return sa.Table(
        "questions",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("student", sa.String(200), nullable=False, index=True),
        sa.Column("lab", sa.String(100), nullable=False),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("check_id", sa.String(100), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("asked_at", sa.String(32), nullable=False),
        sa.Column("answer", sa.Text),
        sa.Column("answered_by", sa.String(200)),
        sa.Column("answered_at", sa.String(32)),
        # what staff did: none | regrade (its grading marked again) | grade (the VM graded
        # again: a request) | override; and what it made (a run, a request, an override)
        sa.Column("action", sa.String(20)),
        sa.Column("made", sa.Integer),
    )


def _web(md: sa.MetaData) -> list[sa.Table]:
    """The course on the web (schema 8): sign-in links and sessions, kept hashed; the queue of
    gradings asked for (one waiting at a time per student and lab: a unique index over the
    waiting ones); labs whose feedback staff released."""
    tables = [
        sa.Table(
            "sign_ins",  # single-use sign-in links (grade serve link): their token's sha256
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
            sa.Column("role", sa.String(10), nullable=False),  # student | staff
            sa.Column("name", sa.String(200), nullable=False),  # the student's id, staff's name
            sa.Column("made_at", sa.String(32), nullable=False),
            sa.Column("made_by", sa.String(200), nullable=False),
            sa.Column("expires_at", sa.String(32), nullable=False),
            sa.Column("used_at", sa.String(32)),
        ),
        sa.Table(
            "web_sessions",  # by the sha256 of the session id the browser's cookie holds
            md,
            sa.Column("id_sha256", sa.String(64), primary_key=True),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Column("expires_at", sa.String(32), nullable=False, index=True),
        ),
        sa.Table(
            "requests",  # gradings asked for (a student's own VM, or staff's), in asking order
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("lab", sa.String(100), nullable=False),
            sa.Column("student", sa.String(200), nullable=False, index=True),
            sa.Column("asked_by", sa.String(200), nullable=False),
            sa.Column("asked_at", sa.String(32), nullable=False),
            sa.Column("counts", sa.Boolean, nullable=False),  # False: practice
            # queued | grading | done | not_graded | refused
            sa.Column("state", sa.String(20), nullable=False, index=True),
            sa.Column("phases", sa.Text, nullable=False),  # JSON: [[phase, at], ...]
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("worker", sa.String(200)),  # who is grading it
            sa.Column("lease_until", sa.String(32)),  # a grading not done by then is taken again
            sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id")),
            sa.Column("reason", sa.Text),  # why not graded, or refused: what the student reads
            sa.Column("detail", sa.Text),  # what went wrong on our side: staff's only
            sa.Column("finished_at", sa.String(32)),
        ),
        sa.Table(
            "releases",  # a lab's feedback released to its students (feedback = on_release)
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("lab", sa.String(100), nullable=False),
            sa.Column("made_at", sa.String(32), nullable=False),
            sa.Column("made_by", sa.String(200), nullable=False),
        ),
    ]
    waiting = tables[2].c.state.in_(["queued", "grading"])
    sa.Index(
        "requests_one_waiting", tables[2].c.student, tables[2].c.lab, unique=True,
        sqlite_where=waiting, postgresql_where=waiting,
    )  # fmt: skip
    return tables


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


def _schema_8(connection: sa.Connection, root: Path | None) -> None:
    """The course on the web: sign-in links, sessions, the queue of gradings asked for, labs
    released; when a request's student asked."""
    connection.execute(sa.text("ALTER TABLE reports ADD COLUMN asked_at VARCHAR(32)"))
    eighth = sa.MetaData()
    _define(eighth, 8)
    for name in ("sign_ins", "web_sessions", "requests", "releases"):
        eighth.tables[name].create(connection)


def _schema_9(connection: sa.Connection, root: Path | None) -> None:
    """Students' questions on a check, and staff's answers."""
    ninth = sa.MetaData()
    _define(ninth, 9)
    ninth.tables["questions"].create(connection)


def _schema_10(connection: sa.Connection, root: Path | None) -> None:
    """The course as an LTI 1.3 tool: logins, LMS users bound to students, LMS courses, line
    items, the outbox of scores, launches the roster could not match."""
    tenth = sa.MetaData()
    _define(tenth, 10)
    for table in _lti(sa.MetaData()):
        tenth.tables[table.name].create(connection)


#: Schema versions in order: a book at version N is brought to the last by the ones after N
MIGRATIONS: tuple[Callable[[sa.Connection, Path | None], None], ...] = (
    _schema_1, _schema_2, _schema_3, _schema_4, _schema_5, _schema_6, _schema_7, _schema_8,
    _schema_9, _schema_10,
)  # fmt: skip
SCHEMA = len(MIGRATIONS)
metadata = sa.MetaData()
meta, runs, reports, checks, overrides, rubrics, drops, identities = _define(metadata, SCHEMA)[:8]
accepts, kept_code, trusted_imports, lock_holders = (
    metadata.tables[name] for name in ("accepts", "kept_code", "trusted", "lock_holders")
)
sign_ins, web_sessions, requests, releases, questions = (
    metadata.tables[name]
    for name in ("sign_ins", "web_sessions", "requests", "releases", "questions")
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
