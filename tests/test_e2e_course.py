"""A course, not a run: two labs, five students and a semester's events on simulated VMs,
recorded in the gradebook (SQLite, and PostgreSQL on a real server this test starts), with
every mark of `grade book show --format json` checked against the rules of issue 13.

amy does everything on time; ben has an extension for lab6; cal's VM never answers; dot's VM is
down until two days after the basics lab's deadline (graded late); eve gets an override and is
regraded after a rubric change. The clock the commands see is set with GRADER_NOW."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit

from grader.cli import main
from grader.engine.rubric import default_rubric_path
from tests.labsim.scenarios import SCENARIOS

pytestmark = pytest.mark.vm

COURSE = """\
title = "Computer Systems 2026"
roster = "class.csv"

[[labs]]
id = "lab6"
lab = "lab6"
due = 2026-12-01T12:00:00+00:00
policy = "last_before_due"
late = { per_day = 0.10, max = 0.50, grace_minutes = 15 }

[[labs]]
id = "basics"
rubric = "basics/rubric.toml"
due = 2026-12-02T12:00:00+00:00
policy = "best"
late = { per_day = 0.10, max = 0.50 }

[extensions]
ben = { lab6 = 2026-12-03T12:00:00+00:00 }
"""
BASICS = """\
title = "Lab 1: the basics"

[[sections]]
id = "basics"
title = "The basics"

[[sections.items]]
id = "sshd_runs"
points = 2

[[sections.items]]
id = "hostname_file"
points = 1
"""
BASICS_CHECKS = '''\
from grader.toolkit import processes


def test_sshd_runs(host):
    """sshd runs."""
    assert any(p.comm == "sshd" for p in processes(host).values()), "sshd is not running"


def test_hostname_file(host):
    """The VM has a host name."""
    assert host.file("/etc/hostname").exists, "/etc/hostname is missing"
'''


@pytest.fixture(scope="module")
def vms(fleet):
    return fleet.boot([
        ("c-amy", SCENARIOS["complete"]), ("c-ben", SCENARIOS["untouched"]),
        ("c-dot", SCENARIOS["complete"]), ("c-eve", SCENARIOS["sendmail_never_started"]),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def postgresql() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's package), started here and stopped after."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        message = "PostgreSQL is not installed (scripts/setup installs it)"
        if os.environ.get("LABSIM_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    bindir = Path(found[-1]).parent
    data = Path(tempfile.mkdtemp(prefix="labgrader-pg-"))
    shutil.chown(data, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    as_postgres(f"{bindir}/initdb", "-D", f"{data}/db", "-A", "trust", "-U", "postgres",
                "--no-sync")  # fmt: skip
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
    as_postgres(f"{bindir}/pg_ctl", "-D", f"{data}/db", "-o", options, "-l", f"{data}/log",
                "-w", "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{bindir}/pg_ctl", "-D", f"{data}/db", "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


def grade(*args: str) -> tuple[int, str]:
    """The CLI in-process; returns its exit status and what it printed."""
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def changed_rubric(folder: Path) -> Path:
    """Lab 6's rubric with smtp_not_in_inetd worth 2.5 instead of 0.5."""
    document = tomlkit.parse(default_rubric_path().read_text())
    document["checks"] = str(default_rubric_path().parent / "checks")
    for section in document["sections"]:
        for item in section["items"]:
            if item["id"] == "smtp_not_in_inetd":
                item["points"] = 2.5
    path = folder / "rubric-changed.toml"
    path.write_text(tomlkit.dumps(document))
    return path


def report(folder: Path, student: str) -> dict:
    return json.loads((folder / f"{student}.json").read_text())


def newest(course: Path, prefix: str) -> Path:
    return max((p for p in (course / "runs").glob(f"{prefix}*") if p.is_dir()),
               key=lambda p: p.stat().st_mtime_ns)  # fmt: skip


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_semester_in_the_gradebook(database, vms, fleet, tmp_path, monkeypatch, request):
    url = request.getfixturevalue("postgresql") if database == "postgresql" else None
    if url:
        monkeypatch.setenv("GRADER_DB", url)
    monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    course = tmp_path / "course"
    (course / "basics" / "checks").mkdir(parents=True)
    (course / "course.toml").write_text(COURSE)
    (course / "basics" / "rubric.toml").write_text(BASICS)
    (course / "basics" / "checks" / "test_basics.py").write_text(BASICS_CHECKS)
    hosts = {name.removeprefix("c-"): vm.address for name, vm in vms.items()}
    hosts["cal"] = "198.18.0.250"  # nothing there: never answers
    rows = [f"{s},{hosts[s]},{fleet.identity},{fleet.password}" for s in sorted(hosts)]
    (course / "class.csv").write_text("student,host,identity,bob_password\n" + "\n".join(rows))
    monkeypatch.chdir(course)  # the commands find course.toml here
    dot = vms["c-dot"]
    dot.sh("pkill -x sshd; while pgrep -x sshd >/dev/null; do sleep 0.1; done")
    fast = ["--connect-timeout", "2"]

    def at(when: str) -> None:
        monkeypatch.setenv("GRADER_NOW", when)

    try:
        at("2026-12-01T11:00:00+00:00")
        code, _ = grade("course", "run", "lab6", *fast)
        assert code == 3  # cal and dot not graded
        s1 = newest(course, "lab6-run")
        assert report(s1, "cal")["status"] == "unreachable"
        # the deadline command, around lab6's due time (12:00): once before, twice after
        at("2026-12-01T11:55:00+00:00")
        _, said = grade("course", "due", *fast)
        assert "lab6: nobody to grade" in said and "basics: nobody to grade" in said
        at("2026-12-01T12:05:00+00:00")
        _, said = grade("course", "due", *fast)
        assert "lab6: grading 4 student(s) whose due time has passed: amy, cal, dot, eve" in said
        s2 = newest(course, "lab6-due")
        at("2026-12-01T12:10:00+00:00")
        _, said = grade("course", "due", *fast)  # only those it could not reach
        assert "lab6: grading 2 student(s) whose due time has passed: cal, dot" in said
        at("2026-12-02T11:00:00+00:00")
        grade("course", "run", "basics", *fast)
        s4 = newest(course, "basics-run")
        # dot's VM is back two days after the basics deadline; ben's extension has passed
        dot.sh("/usr/sbin/sshd")
        at("2026-12-03T12:05:00+00:00")
        _, said = grade("course", "due", *fast)
        assert "lab6: grading 3 student(s) whose due time has passed: ben, cal, dot" in said
        assert "basics: grading 5 student(s)" in said
        s5_lab6, s5_basics = newest(course, "lab6-due"), newest(course, "basics-due")
        # a dispute settled by a TA, then a regrade after a rubric fix
        at("2026-12-04T09:00:00+00:00")
        why = "+1, agreed: sendmail ran in the demo"
        code, _ = grade("book", "override", "eve", "lab6", "--check", "smtp_daemon",
                        "--points", "1", "--reason", why)  # fmt: skip
        assert code == 0
        s7 = tmp_path / "s2-regraded"
        code, said = grade("regrade", str(s2), "--rubric", str(changed_rubric(tmp_path)),
                           "--roster", str(course / "class.csv"), "--out", str(s7))  # fmt: skip
        assert "a regrade of run" in said
        code, shown = grade("book", "show", "--format", "json")
        marks = {(m["student"], m["lab"]): m for m in json.loads(shown)}
    finally:
        dot.sh("pgrep -x sshd >/dev/null || /usr/sbin/sshd")

    def expect(student: str, lab: str, mark: float | None, **fields: object) -> None:
        row = marks[(student, lab)]
        assert row["mark"] == pytest.approx(mark) if mark is not None else row["mark"] is None, row
        for key, value in fields.items():
            assert row[key] == value, (key, row)

    # lab6, last_before_due (due 12-01 12:00 + 15 min grace): the last grading by then, as
    # its regrade has it (the regrade keeps when the VM was seen)
    expect("amy", "lab6", report(s7, "amy")["score"], days_late=0, penalty=0,
           run_at="2026-12-01T12:05:00Z", overridden=False)  # fmt: skip
    assert report(s7, "amy")["score"] == report(s2, "amy")["score"] + 2  # the rubric change
    expect("ben", "lab6", report(s5_lab6, "ben")["score"], run_at="2026-12-03T12:05:00Z",
           days_late=0)  # his extension: on time  # fmt: skip
    expect("cal", "lab6", None)
    assert "could not be graded" in marks[("cal", "lab6")]["reason"]
    expect("dot", "lab6", None)  # graded only after the due time: nothing counts
    assert "no grading at or before the due time" in marks[("dot", "lab6")]["reason"]
    eve = report(s7, "eve")
    smtp_daemon = next(c for c in eve["checks"] if c["id"] == "smtp_daemon")["points"]
    assert smtp_daemon == 0
    expect("eve", "lab6", eve["score"] + 1, overridden=True)  # the override survives
    assert "+1, agreed" in marks[("eve", "lab6")]["reason"]
    # basics, best with 10 % a day (due 12-02 12:00, no grace): dot's one grading is 2 days late
    expect("amy", "basics", report(s4, "amy")["score"], days_late=0)
    expect("dot", "basics", report(s5_basics, "dot")["score"] * 0.8, days_late=2, penalty=0.2)
    expect("cal", "basics", None)
    assert report(s4, "dot")["status"] == "unreachable"
    # the history of a student, and the LMS export
    _, text = grade("book", "history", "eve", "--format", "json")
    kinds = [e["kind"] for e in json.loads(text)]
    for kind in ("run", "due", "regrade", "override", "first_passed"):
        assert kind in kinds, kinds
    grade("book", "withdraw", "eve", "lab6", "--check", "smtp_daemon", "--reason", "re-checked")
    _, shown = grade("book", "show", "--format", "json")
    after = {(m["student"], m["lab"]): m for m in json.loads(shown)}
    assert after[("eve", "lab6")]["mark"] == pytest.approx(eve["score"])
    _, exported = grade("book", "export", "--lms", "moodle")
    rows = list(csv.reader(io.StringIO(exported)))
    assert rows[0] == ["ID number", "lab6", "basics"]
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id["cal"][1:] == ["", ""]  # no mark: empty, never 0
    assert float(by_id["dot"][2]) == pytest.approx(report(s5_basics, "dot")["score"] * 0.8)
    # the course page, in a real browser: nothing fetched, no error, every student and lab
    assert grade("book", "page")[0] == 0
    from playwright.sync_api import sync_playwright

    from tests.test_e2e_roster import CHROMIUM, CHROMIUM_ARGS

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                else problems.append(f"fetch: {r.url}"))  # fmt: skip
        page.goto((course / "course.html").as_uri())
        assert page.locator("#marks tbody tr").count() == 5
        assert "dot: 2 day(s) late, 20% off" in page.locator("#lab-basics .late").inner_text()
        assert "cal" in page.locator("#lab-lab6 .missing").inner_text()
        page.goto((course / "students" / "eve.html").as_uri())
        assert "an override is in force" not in page.locator("#labs").inner_text()  # withdrawn
        page.goto((course / "students" / "dot.html").as_uri())
        assert "2 day(s), 20% off" in page.locator("#labs").inner_text()
        browser.close()
    assert not problems, problems


def test_shards_recording_into_one_postgresql_book_at_once_lose_nothing(
    postgresql, tmp_path, monkeypatch
):
    import sqlalchemy as sa

    from grader.course.book import Book
    from tests.test_book import record_at_once, shards

    engine = sa.create_engine(postgresql.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
    with engine.connect() as connection:
        connection.execute(sa.text("CREATE DATABASE shards"))
    engine.dispose()
    url = postgresql.rsplit("/", 1)[0] + "/shards"
    monkeypatch.setenv("GRADER_NOW", "2026-12-01T00:00:00+00:00")
    errors = record_at_once(url, shards(tmp_path, 4, 25))  # a new book: opened by all at once
    assert not errors, errors
    book = Book(url)
    assert len(book.graded_students("lab6", ["run"])) == 100 and book.schema == 2
    book.close()
