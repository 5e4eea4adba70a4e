"""A course, not a run: two labs, five students and a semester's events on simulated VMs,
recorded in the gradebook (SQLite, and PostgreSQL on a real server this test starts), with
every mark of `grade book show --format json` checked against the rules.

amy does everything on time, but at the deadline her sendmail turns the grader away (421): her
mark is incomplete, not short, and the next `course due` completes it; ben has an extension
for lab6; cal's VM never answers; dot's VM is down until two days after the basics lab's
deadline (graded late); eve gets an override and is graded alone once. lab6's secret (bob's
password) comes from course.toml, read from the environment. Mid-semester lab6's rubric changes
and `grade course regrade` marks every grading again. Everything an instructor could get wrong
(an import that is not the lab's, an edited report, a score of Infinity, an override past the
rubric, a student not on the roster) is refused and leaves the book as it was. The clock the
commands see is set with GRADER_NOW."""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit

from grader.cli import main
from grader.engine.catalog import built_in_rubric
from grader.sim import GATEWAY
from scenarios import SCENARIOS, student
from tests.hostile import NOBODY

pytestmark = pytest.mark.vm

COURSE = """\
title = "Computer Systems 2026"
roster = "class.csv"

[[labs]]
id = "lab6"
rubric = "lab6/rubric.toml"
due = 2026-12-01T12:00:00+00:00
policy = "last_before_due"
late = { per_day = 0.10, max = 0.50, grace_minutes = 15 }
vars = { bob_password = { env = "LAB6_BOB_PW" } }

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


def new_database(server: str, name: str) -> str:
    """A fresh database on the test's PostgreSQL server (one book per test)."""
    import sqlalchemy as sa

    engine = sa.create_engine(server.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
    with engine.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"


def grade(*args: str) -> tuple[int, str, str]:
    """The CLI in-process; its exit status and what it printed (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def report(folder: Path, student: str) -> dict:
    return json.loads((folder / f"{student}.json").read_text())


def newest(course: Path, prefix: str) -> Path:
    return max((p for p in (course / "runs").glob(f"{prefix}*") if p.is_dir()),
               key=lambda p: p.stat().st_mtime_ns)  # fmt: skip


def marks() -> dict[tuple[str, str], dict]:
    code, shown, err = grade("book", "show", "--format", "json")
    assert code == 0, err
    return {(m["student"], m["lab"]): m for m in json.loads(shown)}


def lab6_rubric(course: Path, smtp_not_in_inetd: float = 0.5) -> None:
    """The course's own copy of Lab 6's rubric (its checks where they are)."""
    document = tomlkit.parse(built_in_rubric().read_text())
    document["checks"] = str(built_in_rubric().parent / "checks")
    for section in document["sections"]:
        for item in section["items"]:
            if item["id"] == "smtp_not_in_inetd":
                item["points"] = smtp_not_in_inetd
    (course / "lab6").mkdir(exist_ok=True)
    (course / "lab6" / "rubric.toml").write_text(tomlkit.dumps(document))


def make_course(root: Path, fleet, vms) -> Path:
    course = root / "course"
    (course / "basics" / "checks").mkdir(parents=True)
    (course / "course.toml").write_text(COURSE)
    (course / "basics" / "rubric.toml").write_text(BASICS)
    (course / "basics" / "checks" / "test_basics.py").write_text(BASICS_CHECKS)
    lab6_rubric(course)
    hosts = {name.removeprefix("c-"): vm.address for name, vm in vms.items()}
    hosts["cal"] = NOBODY  # nothing there: never answers
    rows = [f"{s},{hosts[s]},{fleet.identity}" for s in sorted(hosts)]
    (course / "class.csv").write_text("student,host,identity\n" + "\n".join(rows) + "\n")
    return course


def expect(rows: dict, student: str, lab: str, mark: float | None, **fields: object) -> None:
    row = rows[(student, lab)]
    assert row["mark"] == pytest.approx(mark) if mark is not None else row["mark"] is None, row
    for key, value in fields.items():
        assert row[key] == value, (key, row)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_semester_in_the_gradebook(
    database, vms, fleet, tmp_path, monkeypatch, request, plan_cache
):
    url = None
    if database == "postgresql":
        url = new_database(request.getfixturevalue("postgresql"), "semester")
        monkeypatch.setenv("GRADER_DB", url)
    monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(plan_cache))
    monkeypatch.setenv("LAB6_BOB_PW", fleet.password)
    monkeypatch.setenv("SUDO_USER", "ta-anna")  # who acts, as the book records it
    course = make_course(tmp_path, fleet, vms)
    monkeypatch.chdir(course)  # the commands find course.toml here
    amy, dot = vms["c-amy"], vms["c-dot"]
    dot.sh("pkill -x sshd; while pgrep -x sshd >/dev/null; do sleep 0.1; done")
    fast = ["--connect-timeout", "2"]

    def at(when: str) -> None:
        monkeypatch.setenv("GRADER_NOW", when)

    try:
        at("2026-12-01T11:00:00+00:00")
        # a grading that would skip a check for want of its secret does not start
        monkeypatch.delenv("LAB6_BOB_PW")
        code, _, err = grade("course", "run", "lab6", *fast)
        assert code == 2 and "LAB6_BOB_PW is not set" in err
        (course / "course.toml").write_text(COURSE.replace(
            'vars = { bob_password = { env = "LAB6_BOB_PW" } }\n', ""))  # fmt: skip
        code, _, err = grade("course", "run", "lab6", "--student", "amy", *fast)
        assert code == 2 and "bob_password for amy" in err and "nothing was recorded" in err
        (course / "course.toml").write_text(COURSE)
        monkeypatch.setenv("LAB6_BOB_PW", fleet.password)
        assert not (course / "runs").exists() or not list((course / "runs").iterdir())
        code, _, _ = grade("course", "run", "lab6", *fast)
        assert code == 3  # cal and dot not graded
        s1 = newest(course, "lab6-run")
        assert report(s1, "cal")["status"] == "unreachable"
        assert report(s1, "amy")["score"] == 20  # the lab done right: full marks, secret included
        if database == "sqlite":  # the book and the runs are their owner's only
            assert stat.S_IMODE((course / "gradebook.sqlite").stat().st_mode) == 0o600
        assert stat.S_IMODE((course / "runs").stat().st_mode) == 0o700
        # from here amy's sendmail takes one connection from the grader in its window: the
        # one above was it, so the deadline's grading is turned away (421)
        student.sendmail_client_rate(amy, GATEWAY, 1)
        # the deadline command, around lab6's due time (12:00): once before, twice after
        at("2026-12-01T11:55:00+00:00")
        _, said, _ = grade("course", "due", *fast)
        assert "lab6: nobody to grade" in said and "basics: nobody to grade" in said
        at("2026-12-01T12:05:00+00:00")
        _, said, _ = grade("course", "due", *fast)
        assert "lab6: grading 4 student(s) whose due time has passed: amy, cal, dot, eve" in said
        s2 = newest(course, "lab6-due")
        away = report(s2, "amy")
        assert away["unchecked"] == ["smtp_greets"] and away["score"] == 19
        rows = marks()
        expect(rows, "amy", "lab6", 19, incomplete=["smtp_greets"])  # not 19/20 as if lost
        code, _, err = grade("book", "export", "--lms", "moodle")
        assert code == 2 and "amy lab6 (smtp_greets)" in err
        student.sendmail_client_rate(amy, GATEWAY, 0)  # the VM answers again
        at("2026-12-01T12:20:00+00:00")  # past the grace: the 12:05 grading still counts
        _, said, _ = grade("course", "due", *fast)  # those it could not reach, and amy's gap
        assert "lab6: grading 3 student(s) whose due time has passed: amy, cal, dot" in said
        assert "amy: again, incomplete: smtp_greets not checked" in said
        s3 = newest(course, "lab6-due")
        rows = marks()
        expect(rows, "amy", "lab6", 20, incomplete=[], run_at="2026-12-01T12:05:00Z")
        assert rows[("amy", "lab6")]["filled"][0]["at"] == "2026-12-01T12:20:00Z"
        code, explained, _ = grade("book", "explain", "amy", "lab6")
        assert code == 0
        assert "Counts: run" in explained and "the VM as seen 2026-12-01T12:05:00Z" in explained
        assert "from the grading of 2026-12-01T12:20:00Z" in explained
        assert str(s2 / "amy.json") in explained
        at("2026-12-02T11:00:00+00:00")
        grade("course", "run", "basics", *fast)
        s4 = newest(course, "basics-run")
        # two deadline runs at once (two cron hosts): each student is graded once
        at("2026-12-02T12:05:00+00:00")
        twice = [due_in_a_process(course, url) for _ in range(2)]
        said = [p.communicate(timeout=600) for p in twice]
        assert all(p.returncode in (0, 3) for p in twice), said
        assert sum("basics: grading 5 student(s)" in out for out, _ in said) == 1, said
        assert sum("basics: nobody to grade" in out or "basics: grading 2 student(s)" in out
                   for out, _ in said) == 1, said  # fmt: skip
        # dot's VM is back two days after the basics deadline; ben's extension has passed
        dot.sh("/usr/sbin/sshd")
        at("2026-12-03T12:05:00+00:00")
        _, said, _ = grade("course", "due", *fast)
        assert "lab6: grading 3 student(s) whose due time has passed: ben, cal, dot" in said
        assert "basics: grading 2 student(s) whose due time has passed: cal, dot" in said
        s5_lab6, s5_basics = newest(course, "lab6-due"), newest(course, "basics-due")
        # eve alone, later: nobody else's grading changes
        at("2026-12-04T08:00:00+00:00")
        before = marks()
        code, _, _ = grade("course", "run", "lab6", "--student", "eve", *fast)
        alone = newest(course, "lab6-run")
        assert sorted(p.name for p in alone.glob("[!.]*.json")) == ["eve.json"]
        after = marks()
        assert {k: v for k, v in after.items() if k[0] != "eve"} == {
            k: v for k, v in before.items() if k[0] != "eve"
        }
        # a dispute settled by a TA
        at("2026-12-04T09:00:00+00:00")
        why = "+1, agreed: sendmail ran in the demo"
        code, _, err = grade("book", "override", "eve", "lab6", "--check", "smtp_daemon",
                             "--points", "1", "--reason", why)  # fmt: skip
        assert code == 0, err
        refused_inputs_leave_the_book_as_it_was(course, s2, tmp_path)
        # the rubric changes mid-semester: the marks say so until they are marked again
        lab6_rubric(course, smtp_not_in_inetd=2.5)
        rows = marks()
        assert not rows[("amy", "lab6")]["rubric_current"]
        code, said, err = grade("course", "regrade", "lab6")
        assert code == 0, err
        lab6_runs = len(list((course / "runs").glob("lab6-run-*"))) + len(
            list((course / "runs").glob("lab6-due-*")))  # fmt: skip
        assert lab6_runs == 7  # 11:00, 12:05, 12:20, two at 12-02, 12-03, eve's alone
        assert said.count("regraded with lab6's current rubric") == lab6_runs, said
        code, said, _ = grade("course", "regrade", "lab6")
        assert "every recorded grading is on the lab's current rubric already" in said
        # a course folder restored elsewhere: its regrades are recorded in its book
        moved = tmp_path / "restored" / "course"
        shutil.copytree(course, moved)
        monkeypatch.chdir(moved)
        copied_run = moved / "runs" / s3.name
        code, said, err = grade("regrade", str(copied_run), "--out", str(moved / "runs" / "again"),
                                "--rubric", str(moved / "lab6" / "rubric.toml"),
                                "--var-env", "bob_password=LAB6_BOB_PW")  # fmt: skip
        assert "a regrade of run" in said, (said, err)
        monkeypatch.chdir(course)
        rows = marks()
    finally:
        dot.sh("pgrep -x sshd >/dev/null || /usr/sbin/sshd")
        student.sendmail_client_rate(amy, GATEWAY, 0)

    # lab6, last_before_due (due 12-01 12:00 + 15 min grace): the last grading by then, as its
    # regrade with the changed rubric has it (smtp_not_in_inetd 0.5 -> 2.5)
    expect(rows, "amy", "lab6", 22, days_late=0, penalty=0, run_at="2026-12-01T12:05:00Z",
           overridden=False, rubric_current=True, incomplete=[], max=22)  # fmt: skip
    ben = report(s5_lab6, "ben")  # his extension: on time; smtp_not_in_inetd passed: +2
    expect(rows, "ben", "lab6", ben["score"] + 2, run_at="2026-12-03T12:05:00Z", days_late=0)
    expect(rows, "cal", "lab6", None)
    assert "could not be graded" in rows[("cal", "lab6")]["reason"]
    expect(rows, "dot", "lab6", None)  # graded only after the due time: nothing counts
    assert "no grading at or before the due time" in rows[("dot", "lab6")]["reason"]
    eve = report(s2, "eve")
    smtp_daemon = next(c for c in eve["checks"] if c["id"] == "smtp_daemon")["points"]
    assert smtp_daemon == 0
    expect(rows, "eve", "lab6", eve["score"] + 2 + 1, overridden=True)  # rubric +2, override +1
    assert "+1, agreed" in rows[("eve", "lab6")]["reason"]
    # basics, best with 10 % a day (due 12-02 12:00, no grace): dot's one grading is 2 days late
    expect(rows, "amy", "basics", report(s4, "amy")["score"], days_late=0)
    expect(rows, "dot", "basics", report(s5_basics, "dot")["score"] * 0.8, days_late=2,
           penalty=0.2)  # fmt: skip
    expect(rows, "cal", "basics", None)
    assert report(s4, "dot")["status"] == "unreachable"
    # the history of a student: who acted, which grading counts
    _, text, _ = grade("book", "history", "eve", "--format", "json")
    events = json.loads(text)
    kinds = [e["kind"] for e in events]
    for kind in ("run", "due", "regrade", "override", "first_passed"):
        assert kind in kinds, kinds
    assert {e["by"] for e in events if e["kind"] in ("run", "override")} == {"ta-anna"}
    assert sum(bool(e.get("counts")) for e in events if e["lab"] == "lab6") == 2  # + its regrade
    grade("book", "withdraw", "eve", "lab6", "--check", "smtp_daemon", "--reason", "re-checked")
    expect(marks(), "eve", "lab6", eve["score"] + 2)
    # a run taken out of the marks, and put back
    recorded = [e for e in events if e["kind"] == "run" and e["lab"] == "lab6"]
    last_run = recorded[-1]["run"]  # eve graded alone on 12-04: not the one that counts
    assert grade("book", "drop", str(last_run), "--reason", "wrong VM")[0] == 0
    assert grade("book", "drop", str(last_run), "--undo", "--reason", "right VM")[0] == 0
    # the LMS export: names the points possible; no mark is empty, never 0
    code, exported, _ = grade("book", "export", "--lms", "moodle")
    assert code == 0
    rows_out = list(csv.reader(io.StringIO(exported)))
    assert rows_out[0] == ["ID number", "lab6 (out of 22)", "lab6 feedback",
                           "basics (out of 3)", "basics feedback"]  # fmt: skip
    by_id = {r[0]: r for r in rows_out[1:]}
    assert by_id["cal"][1] == "" and by_id["cal"][3] == ""  # no mark: empty, never 0
    assert float(by_id["dot"][3]) == pytest.approx(report(s5_basics, "dot")["score"] * 0.8)
    assert "2 day(s) late, 20% off" in by_id["dot"][4]
    # a backup, and how a pipe that closes early ends
    code, said, err = grade("book", "backup", str(tmp_path / "backup.sqlite"))
    if database == "sqlite":
        assert code == 0 and (tmp_path / "backup.sqlite").exists()
    else:
        assert code == 2 and "pg_dump" in err
    piped = subprocess.run(
        f"set -o pipefail; {sys.executable} -m grader book history amy | head -n 1",
        shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=course,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    assert piped.returncode == 0 and "error" not in piped.stderr, piped.stderr
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


def due_in_a_process(course: Path, url: str | None) -> subprocess.Popen[str]:
    """`grade course due` in a process of its own, as a second cron host would run it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    if url:
        env["GRADER_DB"] = url
    return subprocess.Popen(
        [sys.executable, "-m", "grader", "course", "due", "--connect-timeout", "2"],
        cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def refused_inputs_leave_the_book_as_it_was(course: Path, graded: Path, tmp_path: Path) -> None:
    """Each input the book must not believe exits 2, and `book show` is as it was."""
    before = marks()
    fakes = tmp_path / "fakes"

    def fake(name: str, change) -> Path:
        folder = fakes / name
        folder.mkdir(parents=True)
        shutil.copy(graded / "amy.json", folder / "amy.json")
        shutil.copy(graded / "amy.evidence.json.gz", folder / "amy.evidence.json.gz")
        data = json.loads((folder / "amy.json").read_text())
        change(folder, data)
        (folder / "amy.json").write_text(json.dumps(data))  # a float('inf') is written Infinity
        return folder

    def edited(folder: Path, data: dict) -> None:  # amy's marks, copied as dot's, no archive
        data["student"] = "dot"
        (folder / "amy.evidence.json.gz").unlink()

    def infinite(folder: Path, data: dict) -> None:
        data["score"] = 1e999

    def flipped(folder: Path, data: dict) -> None:  # a verdict its evidence does not give
        for c in data["checks"]:
            if c["id"] == "queue_empty":
                c["status"], c["points"] = "fail", 0
        data["score"] -= 1

    cases = [
        (["book", "import", str(graded), "--lab", "basics"], "graded with another rubric"),
        (["book", "import", str(fake("edited", edited)), "--lab", "lab6"],
         "its evidence does not hold"),
        (["book", "import", str(fake("infinite", infinite)), "--lab", "lab6"], "score inf"),
        (["book", "import", str(fake("flipped", flipped)), "--lab", "lab6"],
         "queue_empty is fail in the report but pass from its evidence"),
        (["book", "import", str(tmp_path / "nowhere"), "--lab", "lab6"], "no such folder"),
        (["book", "override", "amy", "lab6", "--mark", "25", "--reason", "x"], "out of 20"),
        (["book", "override", "amy", "lab6", "--mark", "-3", "--reason", "x"], "out of 20"),
        (["book", "override", "amy", "lab6", "--check", "smtp_daemon", "--points", "5",
          "--reason", "x"], "worth 1 point"),
        (["book", "override", "zed", "lab6", "--mark", "1", "--reason", "x"], "not a student"),
        (["book", "override", "amy", "lab6", "--check", "nope", "--points", "0", "--reason",
          "x"], "no check 'nope'"),
        (["book", "show", "--db", "mysql://x/y"], "not a database the gradebook uses"),
    ]  # fmt: skip
    for args, why in cases:
        code, _, err = grade(*args)
        assert code == 2 and why in err, (args, err)
        assert "Traceback" not in err and "internal error" not in err
    assert not (tmp_path / "nowhere").exists()
    text = (course / "course.toml").read_text()
    (course / "course.toml").write_text(text + "amyy = { lab6 = 2026-12-05T00:00:00+00:00 }\n")
    code, _, err = grade("book", "show")
    assert code == 2 and "extensions.amyy" in err and "did you mean 'amy'" in err
    (course / "course.toml").write_text(text)
    assert marks() == before
