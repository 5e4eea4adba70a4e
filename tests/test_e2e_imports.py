"""The book believes no forged or re-dated report, on real simulated VMs.

A course grades its lab with rubric A (`grade course run`: its reports signed with the course's
key, A's code kept in the book), then the rubric becomes B. Folders graded outside the course
with A (`grade --roster --out` elsewhere: unsigned) are imported: one whose verdicts were
flipped is refused (its evidence is replayed with A's kept code); the same folder as graded is
taken after that replay; one re-dated before the due time is refused, naming the file and both
times; a signed report edited in the course's own run folder is refused by import and by
`grade course regrade`; a folder graded with checks the book never kept is refused unless staff
take it on trust with a reason, which the student's row then shows. The course's key never
reaches any output.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from scenarios import SCENARIOS
from tests.test_e2e_course import new_database
from tests.test_e2e_course import postgresql as postgresql  # the fixture: a server of its own
from tests.test_imports import copied, edit, pack

pytestmark = pytest.mark.vm

RUBRIC = """\
title = "Lab 1: done or not"
checks = "checks"

[[sections]]
id = "basics"
title = "The basics"

[[sections.items]]
id = "sshd_runs"
points = 1

[[sections.items]]
id = "lab_done"
points = {lab_done}
"""
CHECKS = '''\
from grader.toolkit import processes


def test_sshd_runs(host):
    """sshd runs."""
    assert any(p.comm == "sshd" for p in processes(host).values()), "sshd is not running"


def test_lab_done(host):
    """The student says the lab is done."""
    assert host.file("/root/lab-done").exists, "/root/lab-done is not there"
'''
COURSE = """\
title = "Imports 2026"
roster = "class.csv"

[[labs]]
id = "lab1"
rubric = "lab1/rubric.toml"
due = 2026-12-01T12:00:00+00:00
policy = "last"
late = { per_day = 0.10, max = 0.50 }
"""
FAST = ("--connect-timeout", "5")


@pytest.fixture(scope="module")
def vms(fleet):
    booted = fleet.boot([("i-amy", SCENARIOS["complete"]), ("i-ben", SCENARIOS["untouched"])])
    booted["i-amy"].sh("touch /root/lab-done")  # amy did the lab; ben did not
    return booted


def write_pack(folder: Path, lab_done: int = 2, checks: str = CHECKS) -> Path:
    return pack(folder, RUBRIC.format(lab_done=lab_done), checks)


def done_after_all(data: dict) -> None:
    """lab_done passed, as ben's VM never said."""
    for c in data["checks"]:
        if c["id"] == "lab_done" and c["status"] != "pass":
            c["status"], c["points"] = "pass", c["max_points"]
            data["score"] += c["max_points"]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_book_believes_only_what_it_can_replay_or_verify(
    database, grade, fleet, vms, tmp_path, monkeypatch, request
):
    if database == "postgresql":  # the kept code and the trust, in a book on a real server
        url = new_database(request.getfixturevalue("postgresql"), "imports")
        monkeypatch.setenv("GRADER_DB", url)
    course = tmp_path / "course"
    course.mkdir()
    (course / "course.toml").write_text(COURSE)
    rows = [f"{name.removeprefix('i-')},{vm.address},{fleet.identity}" for name, vm in vms.items()]
    (course / "class.csv").write_text("student,host,identity\n" + "\n".join(rows) + "\n")
    rubric_a = write_pack(course / "lab1")
    monkeypatch.chdir(course)
    monkeypatch.setenv("SUDO_USER", "ta-anna")
    said: list[str] = []

    def run(*args: str):
        result = grade(*args)
        said.extend([result.stdout, result.stderr])
        return result

    def marks() -> dict[str, dict]:
        shown = run("book", "show", "--format", "json")
        assert shown.exit == 0, shown.stderr
        return {r["student"]: r for r in json.loads(shown.stdout)}

    def outside(name: str, rubric: Path) -> Path:
        """The class graded with ``rubric`` outside the course: unsigned."""
        out = tmp_path / "outside" / name
        done = run("--roster", str(course / "class.csv"), "--rubric", str(rubric), "--out",
                   str(out), *FAST)  # fmt: skip
        assert done.exit == 0, done.stderr  # each student graded (ben has not done the lab)
        assert not list(out.glob("*.sig"))
        return out

    # rubric A: the course grades the class (signed), and folders are graded outside it
    monkeypatch.setenv("GRADER_NOW", "2026-12-01T10:00:00+00:00")
    graded = run("course", "run", "lab1", *FAST)
    assert graded.exit == 0, graded.stderr
    in_course = next((course / "runs").glob("lab1-run-*"))
    monkeypatch.setenv("GRADER_NOW", "2026-12-01T11:00:00+00:00")
    on_time = outside("on-time", rubric_a)
    monkeypatch.setenv("GRADER_NOW", "2026-12-03T12:00:00+00:00")  # two days late
    late = outside("late", rubric_a)
    other_checks = write_pack(tmp_path / "their-copy", checks=CHECKS.replace("says", "said"))
    unreplayable = outside("their-checks", other_checks)

    # rubric B from now on; the book knows A (and keeps its code)
    write_pack(course / "lab1", lab_done=3)
    monkeypatch.setenv("GRADER_NOW", "2026-12-05T09:00:00+00:00")

    flipped = copied(on_time, tmp_path / "forged" / "flipped")
    edit(flipped, done_after_all, "ben")
    refused = run("book", "import", str(flipped), "--lab", "lab1")
    assert refused.exit == 2, refused.stderr
    assert "lab_done is pass in the report but fail from its evidence" in refused.stderr
    assert "nothing was recorded" in refused.stderr

    redated = copied(late, tmp_path / "forged" / "redated")
    edit(redated, lambda data: data.update(graded_at="2026-12-01T11:30:00Z"), "ben")
    refused = run("book", "import", str(redated), "--lab", "lab1")
    assert refused.exit == 2, refused.stderr
    assert str(redated / "ben.json") in refused.stderr
    assert "2026-12-01T11:30:00Z" in refused.stderr and "2026-12-03T12:00:00Z" in refused.stderr

    # what the course's grading wrote is signed, with a key only its owner can read
    assert sorted(p.name for p in in_course.glob("*.sig")) == ["amy.json.sig", "ben.json.sig"]
    key = course / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    signed_edit = copied(in_course, tmp_path / "forged" / "signed-edit")
    edit(signed_edit, lambda data: data["checks"][0].update(message="seen by a TA"), "ben")
    refused = run("book", "import", str(signed_edit), "--lab", "lab1")
    assert refused.exit == 2, refused.stderr
    assert f"{signed_edit / 'ben.json'}: its signature does not verify" in refused.stderr

    before = marks()
    assert before["ben"]["mark"] == 1 and before["ben"]["days_late"] == 0

    taken = run("book", "import", str(on_time), "--lab", "lab1")
    assert taken.exit == 0, taken.stderr
    assert "2 replayed from its evidence, 0 signed" in taken.stdout

    # a signed report in the course's own folder, edited there: the regrade refuses it
    edit(in_course, lambda data: data.update(person={"name": "someone else"}))
    regraded = run("course", "regrade", "lab1")
    assert regraded.exit == 3, regraded.stderr
    assert "amy: not regraded:" in regraded.stdout
    assert f"{in_course / 'amy.json'}: its signature does not verify" in regraded.stdout
    newest = max((course / "runs").glob("lab1-regrade-*"), key=lambda p: p.stat().st_mtime_ns)
    assert (newest / "ben.json.sig").exists()  # what the regrade wrote is signed too

    refused = run("book", "import", str(unreplayable), "--lab", "lab1")
    assert refused.exit == 2, refused.stderr
    assert "cannot be replayed" in refused.stderr and "--trust-unreplayed" in refused.stderr
    why = "graded by the second marker with their own copy of lab 1; checked by hand"
    trusted = run("book", "import", str(unreplayable), "--lab", "lab1", "--trust-unreplayed",
                  "--reason", why)  # fmt: skip
    assert trusted.exit == 0, trusted.stderr
    assert "taken on trust" in trusted.stdout
    after = marks()
    assert [(t["by"], t["reason"]) for t in after["ben"]["trusted"]] == [("ta-anna", why)]
    assert "the book does not keep" in after["ben"]["trusted"][0]["why"]
    assert after["ben"]["days_late"] == 2  # the trusted grading counts (policy "last")
    shown = run("book", "show")
    assert shown.exit == 0 and "~" in shown.stdout
    explained = run("book", "explain", "ben", "lab1")
    assert "Taken on trust" in explained.stdout and why in explained.stdout

    secret = key.read_text().strip()
    assert secret and not any(secret in text for text in said)
