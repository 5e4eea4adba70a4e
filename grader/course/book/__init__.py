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

from grader.course.book.query import Book, Explained, Row
from grader.course.book.schema import (
    MIGRATIONS,
    SCHEMA,
    accepts,
    checks,
    drops,
    identities,
    kept_code,
    lock_holders,
    meta,
    metadata,
    overrides,
    parse_utc,
    questions,
    relative,
    releases,
    reports,
    requests,
    rubrics,
    runs,
    sign_ins,
    trusted_imports,
    utc,
    web_sessions,
)
from grader.course.book.store import Store, book_url, has_password, who

__all__ = [
    "MIGRATIONS",
    "SCHEMA",
    "Book",
    "Explained",
    "Row",
    "Store",
    "accepts",
    "book_url",
    "checks",
    "drops",
    "has_password",
    "identities",
    "kept_code",
    "lock_holders",
    "meta",
    "metadata",
    "overrides",
    "parse_utc",
    "questions",
    "relative",
    "releases",
    "reports",
    "requests",
    "rubrics",
    "runs",
    "sign_ins",
    "trusted_imports",
    "utc",
    "web_sessions",
    "who",
]
