"""The gradebook (grader.course.book) on SQLite: recording runs, marks after policy, overrides with
their audit trail, history, migrations and two recorders at once. (PostgreSQL: the course's
end-to-end test runs the same book on a real server.)"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from grader.base.errors import InputError
from grader.base.results import CheckResult, Report, RubricRef
from grader.course.book import SCHEMA, Book, reports, runs
from grader.course.marks import Late
from grader.report.store import ReportStore

DUE = datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc)
LATE = Late(per_day=0.1, max=0.5, grace_minutes=15)


def report(student: str, when: datetime, score: float | None, a: float = 1.0) -> Report:
    """A grading of 20 one-point checks: "a" passed when ``a``, and as many others as make
    ``score``."""
    others = int((score or 0) - a)
    checks = (
        CheckResult("a", "S", "A", "pass" if a else "fail", a, 1, "", "", ()),
        *(CheckResult(f"c{n}", "S", f"C{n}", "pass" if n < others else "fail",
                      1.0 if n < others else 0.0, 1, "", "", ()) for n in range(19)),
    )  # fmt: skip
    return Report(
        host=f"vm-{student}", student=student, status="graded" if score is not None else
        "unreachable", error=None, error_kind=None, score=score, max_score=20,
        graded_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"), duration_s=1.0,
        rubric=RubricRef("Lab", "ab" * 32), host_key=None, address=None,
        checks=checks if score is not None else (),
    )  # fmt: skip


def folder(tmp_path: Path, name: str, *reports: Report) -> tuple[Path, list]:
    store = ReportStore(tmp_path / name)
    for r in reports:
        store.save(r)
    return store.directory, [(store.report_path(r), r) for r in reports]


@pytest.fixture
def book(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_NOW", "2026-11-30T10:00:00+00:00")
    made = Book(f"sqlite:///{tmp_path / 'book.sqlite'}")
    yield made
    made.close()


def test_a_run_is_recorded_once_and_marked_by_policy(book, tmp_path):
    path, found = folder(tmp_path, "r1", report("amy", DUE - timedelta(days=1), 15),
                         report("ben", DUE - timedelta(days=1), None))  # fmt: skip
    run = book.record("lab6", path, found, "run")
    assert book.run_of(path) == (run, "lab6")
    with pytest.raises(InputError, match="already recorded"):
        book.record("lab6", path, found, "run")
    late, more = folder(tmp_path, "r2", report("amy", DUE + timedelta(days=1), 20))
    book.record("lab6", late, more, "run")
    amy = book.mark("amy", "lab6", DUE, LATE, "best")
    assert (amy.mark, amy.score, amy.days_late, amy.penalty) == (18.0, 20, 1, 0.1)
    assert book.mark("amy", "lab6", DUE, LATE, "last_before_due").mark == 15
    ben = book.mark("ben", "lab6", DUE, LATE, "best")
    assert ben.mark is None and "could not be graded" in ben.reason
    assert book.mark("cal", "lab6", DUE, LATE, "best").reason == "never graded"


def test_a_regrade_replaces_its_run_and_keeps_when_the_vm_was_seen(book, tmp_path):
    seen = DUE - timedelta(hours=1)
    path, found = folder(tmp_path, "r1", report("amy", seen, 10))
    run = book.record("lab6", path, found, "run")
    again, refound = folder(tmp_path, "r1-regraded", report("amy", seen, 12))
    book.record("lab6", again, refound, "regrade", regrade_of=run)
    mark = book.mark("amy", "lab6", DUE, LATE, "last_before_due")
    assert mark.mark == 12 and mark.run_at == "2026-12-01T22:59:00Z"
    kinds = [e["kind"] for e in book.history("amy")]
    assert kinds[:2] == ["run", "regrade"]  # the original is kept


def test_overrides_have_an_audit_trail_and_survive_a_regrade(book, tmp_path):
    path, found = folder(tmp_path, "r1", report("amy", DUE, 10, a=0))
    run = book.record("lab6", path, found, "run")
    before = book.check_points("amy", "lab6", "a")
    book.override("amy", "lab6", "a", 1.0, "+1, agreed in the lab", before)
    assert book.mark("amy", "lab6", DUE, LATE, "last").mark == 11
    again, refound = folder(tmp_path, "r1-regraded", report("amy", DUE, 9, a=0))
    book.record("lab6", again, refound, "regrade", regrade_of=run)
    row = book.mark("amy", "lab6", DUE, LATE, "last")
    assert row.mark == 10 and row.overridden and "+1, agreed" in row.reason
    book.override("amy", "lab6", None, 17.5, "resubmitted on paper", row.mark)
    assert book.mark("amy", "lab6", DUE, LATE, "last").mark == 17.5
    book.withdraw("amy", "lab6", None, "paper lost")
    assert book.mark("amy", "lab6", DUE, LATE, "last").mark == 10
    with pytest.raises(InputError, match="no override in force"):
        book.withdraw("amy", "lab6", None, "again")
    with pytest.raises(InputError, match="needs a reason"):
        book.override("amy", "lab6", None, 1, " ", None)
    events = book.history("amy", "lab6")
    overrides = [e for e in events if e["kind"] in ("override", "withdraw")]
    assert [(e["kind"], e["check"], e["value"]) for e in overrides] == [
        ("override", "a", 1.0), ("override", None, 17.5), ("withdraw", None, 17.5)
    ]  # fmt: skip
    assert all(e["by"] and e["at"] for e in overrides)
    assert overrides[1]["before"] == 10
    first = [e for e in events if e["kind"] == "first_passed"]
    assert [e["check"] for e in first] == [f"c{n}" for n in range(10)]  # "a" never passed


def test_a_book_of_the_first_schema_opens_migrated_with_its_data(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_NOW", "2026-11-30T10:00:00+00:00")
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = Book(url, upto=1)
    with old.engine.connect() as connection:
        assert "grader_version" not in {
            c["name"] for c in sa.inspect(connection).get_columns("runs")
        }
    with old.engine.begin() as connection:  # a run as the first grader recorded it
        for folder in ("/old/run", f"{tmp_path}/runs/lab6-run-1"):
            connection.execute(sa.text(
                "INSERT INTO runs (lab, kind, folder, recorded_at, recorded_by, rubric_sha256) "
                "VALUES ('lab6', 'run', :f, '2026-11-01T00:00:00Z', 'ta', 'ab')"
            ), {"f": folder})  # fmt: skip
        connection.execute(sa.text(
            "INSERT INTO reports (run_id, student, status, score, max_score, graded_at, "
            "report_path) VALUES (2, 'amy', 'graded', 1, 1, '2026-11-01T00:00:00Z', "
            f"'{tmp_path}/runs/lab6-run-1/amy.json')"
        ))  # fmt: skip
    old.close()
    new = Book(url)  # the course folder is the book's own folder
    assert new.schema == SCHEMA == 10
    with new.engine.connect() as connection:
        rows = connection.execute(sa.select(runs).order_by(runs.c.id)).all()
        kept = connection.execute(sa.select(reports)).one()
    # paths inside the course folder become relative to it, so a copied course still works
    assert [(r.folder, r.grader_version) for r in rows] == [
        ("/old/run", None), ("runs/lab6-run-1", None)
    ]  # fmt: skip
    assert (kept.report_path, kept.rubric_sha256) == ("runs/lab6-run-1/amy.json", "ab")
    new.close()


def test_a_book_of_schema_9_as_main_made_it_gets_the_lti_tables_and_keeps_its_data(tmp_path):
    """A book made before the LMS (schema 9: the web's queue, reports' asked_at, questions)
    opens migrated: the LTI tables made, what it held kept, the outbox's first look at it
    one of every mark."""
    from grader.course.lti import outbox

    url = f"sqlite:///{tmp_path / 'nine.sqlite'}"
    old = Book(url, upto=9)
    with old.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO runs (lab, kind, folder, recorded_at, recorded_by) "
            "VALUES ('lab6', 'run', 'runs/lab6-web-1', '2026-11-01T00:00:00Z', 'web')"
        ))  # fmt: skip
        connection.execute(sa.text(
            "INSERT INTO reports (run_id, student, status, score, max_score, graded_at, "
            "report_path, asked_at) VALUES (1, 'amy', 'graded', 1, 1, '2026-11-01T00:00:00Z', "
            "'runs/lab6-web-1/amy.json', '2026-10-31T23:59:00Z')"
        ))  # fmt: skip
    old.close()
    new = Book(url)
    assert new.schema == SCHEMA == 10
    with new.engine.connect() as connection:
        names = set(sa.inspect(connection).get_table_names())
        kept = connection.execute(sa.select(reports)).one()
    assert {"lti_logins", "lti_users", "lti_contexts", "lti_lineitems", "lti_outbox",
            "lti_unmatched"} <= names  # fmt: skip
    assert (kept.student, kept.asked_at) == ("amy", "2026-10-31T23:59:00Z")
    marker, touched, _ = outbox.changes(new)
    assert touched is None and marker["runs"] == 1  # nothing seen yet: every mark looked at
    new.close()


def test_a_book_of_schema_4_keeps_code_from_its_migration_on(tmp_path, monkeypatch):
    """The rubrics a book knew before it kept code stay known (their gradings are scored as
    before) but keep no code to replay; a rubric kept after the migration keeps its text and
    its checks' code, once for each digest of the code, and unpacks into a pack that loads."""
    from grader.engine.pack import load_pack
    from grader.engine.rubric import load_rubric
    from grader.evidence import packcode
    from tests.test_imports import write_pack

    monkeypatch.setenv("GRADER_NOW", "2026-11-30T10:00:00+00:00")
    url = f"sqlite:///{tmp_path / 'four.sqlite'}"
    rubric = load_rubric(write_pack(tmp_path / "pack"))
    old = Book(url, upto=4)
    with old.engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO rubrics (lab, sha256, title, spec, recorded_at) VALUES ('tiny', "
            f"'{'cd' * 32}', 'Old', '[]', '2026-11-01T00:00:00Z')"
        ))  # fmt: skip
    old.close()
    book = Book(url)
    assert book.schema == SCHEMA and set(book.rubric_items("tiny")) == {"cd" * 32}
    assert book.kept_checks("cd" * 32) == []
    book.keep_rubric("tiny", rubric)
    book.keep_rubric("tiny", rubric)  # known: kept once
    digest = packcode.checks_digest(rubric.checks_dir)
    assert book.kept_checks(rubric.sha256) == [digest]
    (tmp_path / "pack" / "checks" / "helper.py").write_text("X = 1\n")
    book.keep_rubric("tiny", rubric)  # the same rubric, its checks' code changed
    assert len(book.kept_checks(rubric.sha256)) == 2
    blob = book.kept_pack(rubric.sha256, digest)
    assert blob is not None
    (tmp_path / "unpacked").mkdir()
    again = load_pack(load_rubric(packcode.unpack(blob, tmp_path / "unpacked")))
    assert [i.id for i in again.rubric.items] == [i.id for i in rubric.items]
    assert packcode.checks_digest(again.rubric.checks_dir) == digest
    book.close()


def test_a_book_of_a_newer_grader_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    Book(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE meta SET value = '99' WHERE key = 'schema'"))
    engine.dispose()
    with pytest.raises(InputError, match="made by a newer grader"):
        Book(url)


def shards(tmp_path: Path, count: int, size: int) -> list[tuple[Path, list]]:
    """``count`` folders of ``size`` graded students each, as shards of one class."""
    return [
        folder(tmp_path, f"shard{k}", *(report(f"s{k}-{n}", DUE, n) for n in range(size)))
        for k in range(count)
    ]


def record_at_once(url: str, folders: list[tuple[Path, list]]) -> list[Exception]:
    """Each folder recorded into the book at ``url`` by its own thread and Book, all at once
    (each opening, and maybe migrating, the book as it starts); what went wrong."""
    errors: list[Exception] = []

    def record(shard: tuple[Path, list]) -> None:
        book = Book(url)
        try:
            book.record("lab6", *shard, "run")
        except Exception as e:
            errors.append(e)
        finally:
            book.close()

    threads = [threading.Thread(target=record, args=(shard,)) for shard in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_recorders_at_once_lose_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_NOW", "2026-11-30T10:00:00+00:00")
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    Book(url).close()
    assert not record_at_once(url, shards(tmp_path, 4, 30))
    book = Book(url)
    students = book.graded_students("lab6", ["run"])
    assert len(students) == 120
    book.close()


def test_the_book_commands_refuse_what_does_not_hold(tmp_path, monkeypatch, capsys):
    """grade book without a VM: an import without its evidence, overrides outside the rubric's
    points, a student not on the roster: each refused by name (exit 2), nothing recorded; what
    holds is recorded and exported; course.toml mistakes named by line."""
    from grader.cli import main

    course = tmp_path / "course"
    course.mkdir()
    (course / "class.csv").write_text("student,host\namy,vm1\nben,vm2\n")
    (course / "course.toml").write_text(
        'title = "CS"\nroster = "class.csv"\n\n[[labs]]\nid = "lab6"\nlab = "lab6"\n'
        'due = 2026-12-01T23:59:00+00:00\npolicy = "best"\n'
    )
    monkeypatch.chdir(course)
    monkeypatch.setenv("GRADER_NOW", "2026-12-05T00:00:00+00:00")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    assert run("book", "show")[0] == 2  # nothing recorded yet: no book is made by reading
    assert not (course / "gradebook.sqlite").exists()
    graded, _ = folder(tmp_path, "elsewhere", report("amy", DUE - timedelta(hours=2), 17))
    code, _, err = run("book", "import", str(graded), "--lab", "lab6")
    assert code == 2 and "nothing was recorded" in err
    assert "graded with another rubric" in err  # a report that is not lab6's
    code, _, err = run("book", "import", str(tmp_path / "nowhere"), "--lab", "lab6")
    assert code == 2 and "no such folder" in err and not (tmp_path / "nowhere").exists()
    code, out, _ = run("book", "show", "--format", "json")
    rows = {r["student"]: r for r in json.loads(out)}
    assert rows["amy"]["mark"] is None and rows["amy"]["incomplete"] == []
    contract = {"student", "lab", "mark", "max", "score", "penalty", "days_late", "policy",
                "run_at", "overridden", "reason", "incomplete", "flags"}  # fmt: skip
    assert set(rows["amy"]) >= contract
    for refused, why in (
        (["--mark", "25"], "out of 20"), (["--mark", "-3"], "out of 20"),
        (["--check", "smtp_daemon", "--points", "5"], "worth 1 point"),
        (["--check", "smtp_deamon", "--points", "1"], "did you mean 'smtp_daemon'"),
    ):  # fmt: skip
        code, _, err = run("book", "override", "ben", "lab6", *refused, "--reason", "x")
        assert code == 2 and why in err, (refused, err)
    code, _, err = run("book", "override", "bne", "lab6", "--mark", "12", "--reason", "x")
    assert code == 2 and "not a student of the roster" in err and "'ben'" in err
    code, _, err = run("book", "override", "ben", "lab7", "--mark", "1", "--reason", "x")
    assert code == 2 and "no lab 'lab7'" in err
    assert run("book", "override", "ben", "lab6", "--mark", "12", "--reason", "oral exam")[0] == 0
    code, out, _ = run("book", "export", "--lms", "moodle")
    assert code == 0
    exported = list(csv.reader(io.StringIO(out)))
    assert exported[0] == ["ID number", "lab6 (out of 20)", "Feedback"]
    assert [r[:2] for r in exported[1:]] == [["amy", ""], ["ben", "12"]]
    assert run("book", "override", "ben", "lab6", "--points", "1", "--reason", "x")[0] == 2
    code, out, _ = run("book", "history", "ben")
    assert "override of the mark (12)" in out
    (course / "course.toml").write_text(
        'title = "CS"\nroster = "class.csv"\n\n[[labs]]\nid = "lab6"\nlab = "lab6"\n'
        "due = 2026-12-01T23:59:00\npolicey = 1\n"
    )
    code, _, err = run("book", "show")
    assert code == 2
    assert "course.toml:8: labs[0].policey: unknown key (did you mean 'policy'?)" in err


def test_course_toml_refuses_extensions_that_would_be_lost_or_take_time_away(tmp_path):
    from grader.course.config import load_course

    (tmp_path / "class.csv").write_text("student,host\namy,vm1\nben,vm2\n")
    head = (
        'title = "CS"\nroster = "class.csv"\n\n[[labs]]\nid = "lab6"\nlab = "lab6"\n'
        "due = 2026-12-01T23:59:00+00:00\n\n[extensions]\n"
    )
    for line, why in (
        ("bne = { lab6 = 2026-12-03T00:00:00+00:00 }", "course.toml:10: extensions.bne: 'bne' "
         "is not a student of the roster"),
        ("ben = { lab7 = 2026-12-03T00:00:00+00:00 }", "no lab 'lab7'"),
        ("ben = { lab6 = 2026-11-30T00:00:00+00:00 }", "earlier than the lab's due time"),
    ):  # fmt: skip
        (tmp_path / "course.toml").write_text(head + line + "\n")
        with pytest.raises(InputError, match=re.escape(why)):
            load_course(tmp_path / "course.toml")
    (tmp_path / "course.toml").write_text('db = "mysql://x"\n' + head)
    with pytest.raises(InputError, match="not a database the gradebook uses"):
        load_course(tmp_path / "course.toml")


COURSE = """title = "CS{title}"
roster = "class.csv{roster}"
db = "sqlite:///book.sqlite{db}"

[[labs]]
id = "lab6{id}"
lab = "lab6{lab}"
due = 2026-12-01T23:59:00+00:00
vars = {{ user = "alice{value}", "pw{name}" = {{ env = "PW{env}" }} }}
image = ["4c4c{image}"]

[[labs]]
id = "lab7"
rubric = "lab7/rubric.toml{rubric}"
due = 2026-12-01T23:59:00+00:00

[extensions]
"amy{student}" = {{ "lab6{lab_key}" = 2026-12-03T23:59:00+00:00 }}
"""


@pytest.mark.parametrize(
    ("at", "line", "key", "suggested"),
    [
        ("title", 1, "title", None), ("roster", 2, "roster", None), ("db", 3, "db", None),
        ("id", 6, "labs[0].id", "lab6"), ("lab", 7, "labs[0].lab", "lab6"),
        ("value", 9, "labs[0].vars.user", None), ("name", 9, "labs[0].vars.{pw}", "pw"),
        ("env", 9, "labs[0].vars.pw.env", "PW"), ("image", 10, "labs[0].image[0]", None),
        ("rubric", 14, "labs[1].rubric", None), ("student", 18, "extensions.{amy}", "amy"),
        ("lab_key", 18, "extensions.amy.{lab6}", "lab6"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    ("written", "character"),
    [(r"\n", "\n"), (r"\r", "\r"), (r"\t", "\t"), (r"\u0000", "\x00"), (r"\u001b", "\x1b"),
     (r"\u007f", "\x7f"), (r"\u0085", "\x85"), (r"\u009b", "\x9b"), ("\u2028", "\u2028"),
     ("\u2029", "\u2029"), (r"\u202e", "\u202e")],
)  # fmt: skip
def test_course_toml_refuses_control_characters_in_every_text(
    tmp_path, at, line, key, suggested, written, character
):
    """A control character in any text of course.toml (a line break in the title once put a
    command into the Slurm script) is refused by line and key, with the name it was meant to be;
    written as TOML's escape, or as itself where TOML lets it stand (U+2028, U+2029)."""
    from grader.course.config import load_course

    (tmp_path / "class.csv").write_text("student,host\namy,vm1\n")
    blanks = dict.fromkeys(("title", "roster", "db", "id", "lab", "value", "name", "env", "image",
                            "rubric", "student", "lab_key"), "")  # fmt: skip
    (tmp_path / "course.toml").write_text(COURSE.format(**{**blanks, at: written}))
    with pytest.raises(InputError) as refused:
        load_course(tmp_path / "course.toml")
    # a key that holds the character is shown quoted, the character escaped
    shown = key.format(**{name: repr(name + character) for name in ("pw", "amy", "lab6")})
    message = str(refused.value)
    assert message.startswith(
        f"{tmp_path / 'course.toml'}:{line}: {shown}: holds a control character "
        f"(U+{ord(character):04X})"
    ), message
    if suggested:
        assert message.endswith(f" (did you mean {suggested!r}?)"), message
    assert character not in message


def test_an_sqlite_book_is_private_and_can_be_backed_up_while_open(book, tmp_path):
    import stat

    path = Path(book.url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    found = folder(tmp_path, "r1", report("amy", DUE, 15))
    book.record("lab6", *found, "run")
    book.backup(tmp_path / "copy.sqlite")
    copy = Book(f"sqlite:///{tmp_path / 'copy.sqlite'}", create=False)
    assert copy.mark("amy", "lab6", DUE, LATE, "last").mark == 15
    assert stat.S_IMODE((tmp_path / "copy.sqlite").stat().st_mode) == 0o600
    copy.close()
    with pytest.raises(InputError, match="exists already"):
        book.backup(tmp_path / "copy.sqlite")


def test_a_dropped_run_leaves_the_marks_and_comes_back(book, tmp_path):
    first = book.record("lab6", *folder(tmp_path, "r1", report("amy", DUE, 15)), "run")
    later = book.record("lab6", *folder(tmp_path, "r2", report("amy", DUE, 9)), "run")
    assert book.mark("amy", "lab6", DUE, LATE, "last").mark == 9
    book.drop(later, "graded the wrong VM")
    assert book.mark("amy", "lab6", DUE, LATE, "last").mark == 15
    with pytest.raises(InputError, match="dropped already"):
        book.drop(later, "again")
    book.undrop(later, "it was the right one")
    assert book.mark("amy", "lab6", DUE, LATE, "last").mark == 9
    kinds = [e["kind"] for e in book.history("amy")]
    assert "drop" in kinds and "undrop" in kinds
    assert first != later


def batch_lock_rules(book: Book) -> None:
    """The shards of one batch hold the course lock together; a grading of its own, or a
    shard of another batch, is kept out until every shard is done."""
    from grader.base.errors import CourseBusy
    from grader.course.lock import course_lock

    with (
        course_lock(book, "shard 1/2", wait=0, batch="slurm-7"),
        course_lock(book, "shard 2/2", wait=0, batch="slurm-7"),  # joins: no wait
    ):
        with pytest.raises(CourseBusy, match="shard 1/2") as busy, course_lock(book, "x", wait=0):
            pass
        assert "shard 2/2" in str(busy.value) and "slurm-7" in str(busy.value)
        with pytest.raises(CourseBusy), course_lock(book, "another", wait=0, batch="slurm-8"):
            pass
    with (
        course_lock(book, "after the batch", wait=0),  # every shard done: free again
        pytest.raises(CourseBusy, match="after the batch"),
        course_lock(book, "shard 1/2", wait=0, batch="slurm-9"),
    ):
        pass
    # a batch of the longest name --batch takes: its shards join, and it is named whole
    long = "nightly-" + "x" * 91 + "1"
    assert len(long) == 100
    with (
        course_lock(book, "grade course run lab6 --shard 1/2", wait=0, batch=long),
        course_lock(book, "grade course run lab6 --shard 2/2", wait=0, batch=long),
    ):
        with pytest.raises(CourseBusy) as busy, course_lock(book, "x", wait=0):
            pass
        said = str(busy.value)
        assert said.count(f", batch {long};") == 2, said  # "...; ...; run again when ..."
        assert "--shard 1/2 by " in said and "--shard 2/2 by " in said, said
        with pytest.raises(CourseBusy), course_lock(book, "y", wait=0, batch=long[:-1] + "2"):
            pass  # a batch whose name differs only in its last character is another


def test_the_shards_of_one_batch_share_the_course_lock_and_keep_any_other_grading_out(tmp_path):
    book = Book(f"sqlite:///{tmp_path / 'book.sqlite'}", by="ta")
    batch_lock_rules(book)  # PostgreSQL's advisory lock: test_e2e_slurm.py
    book.close()


def test_a_check_decided_late_carries_its_lateness_until_staff_accept_it(tmp_path, book):
    """The due-time grading could not decide "a" (its command timed out); a grading two days
    late did: "a" carries that grading's 20 %, unless staff accept it as on time; the history
    says who accepted it and why, and who took it back."""
    undecided = report("amy", DUE - timedelta(hours=1), 10, a=0)
    checks = list(undecided.checks)
    checks[0] = dataclasses.replace(checks[0], status="error", error_kind="timeout")
    undecided = dataclasses.replace(undecided, checks=tuple(checks))
    late = report("amy", DUE + timedelta(days=1, hours=3), 5)
    for name, graded in (("due", undecided), ("late", late)):
        where, found = folder(tmp_path, name, graded)
        book.record("lab6", where, found, "run")
    row = book.mark("amy", "lab6", DUE, LATE, "best")
    # the due-time grading counts (10 against 5 less 20 %); "a" is filled in two days late
    assert (row.score, row.mark, row.days_late) == (11, 10.8, 0)
    assert [(f["check"], f["days_late"], f["penalty"], f["taken"]) for f in row.filled] == [
        ("a", 2, 0.2, True)
    ]  # fmt: skip
    no_late_work = book.mark("amy", "lab6", DUE, LATE, "last_before_due")
    assert no_late_work.mark == 10 and no_late_work.filled[0]["taken"] is False
    with pytest.raises(InputError, match="needs a reason"):
        book.accept("amy", "lab6", "a", "  ")
    book.accept("amy", "lab6", "a", "our ps hung at the due time")
    with pytest.raises(InputError, match="accepted as on time already"):
        book.accept("amy", "lab6", "a", "again")
    accepted = book.mark("amy", "lab6", DUE, LATE, "last_before_due")
    assert accepted.mark == 11 and accepted.filled[0]["accepted_by"] == book.by
    book.unaccept("amy", "lab6", "a", "it was the student's fake ps")
    assert book.mark("amy", "lab6", DUE, LATE, "last_before_due").mark == 10
    events = [e for e in book.history("amy", "lab6") if e["kind"] in ("accept", "unaccept")]
    assert [(e["kind"], e["check"], e["reason"]) for e in events] == [
        ("accept", "a", "our ps hung at the due time"),
        ("unaccept", "a", "it was the student's fake ps"),
    ]
