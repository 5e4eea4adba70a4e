"""What `grade book import` and a regrade believe of a folder, without VMs: a tiny pack graded
on this machine (`grade --local`, whose commands only look at files) gives real reports with real
evidence archives; each test then forges one the way a student (or a careless TA) could.

* a report under an older rubric the book knows is replayed like one under the current rubric:
  its verdicts flipped, it is refused; as graded, it is taken;
* a report's time is its archive's: one re-dated before the due time is refused;
* what a grading inside a course writes is signed (an HMAC-SHA256 with the course's key): an
  edited signed report is refused, by import and by regrade;
* a report the book cannot replay (checks code it never kept) is refused unless staff take it
  on trust with a reason, which the book keeps and the student's row shows.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from grader.cli import main

RUBRIC = """\
title = "Tiny"
checks = "checks"

[[sections]]
id = "s"
title = "S"

[[sections.items]]
id = "hostname_file"
points = 1

[[sections.items]]
id = "nothing_here"
points = {nothing_here}
"""
CHECKS = '''\
def test_hostname_file(host):
    """The machine has a host name."""
    assert host.file("/etc/hostname").exists, "/etc/hostname is missing"


def test_nothing_here(host):
    """A file that no machine has."""
    assert host.file("/nonexistent-lab-grader-file").exists, "it is not there"
'''
COURSE = """\
title = "Tiny course"
roster = "class.csv"

[[labs]]
id = "tiny"
rubric = "tiny/rubric.toml"
due = 2026-12-01T12:00:00+00:00
policy = "last"
late = { per_day = 0.10, max = 0.50 }
"""


def pack(folder: Path, rubric: str, checks: str) -> Path:
    """A pack in ``folder``: its rubric, and one module of checks; the rubric's path."""
    (folder / "checks").mkdir(parents=True, exist_ok=True)
    (folder / "rubric.toml").write_text(rubric)
    (folder / "checks" / "test_lab.py").write_text(checks)
    return folder / "rubric.toml"


def write_pack(folder: Path, nothing_here: int = 2, checks: str = CHECKS) -> Path:
    return pack(folder, RUBRIC.format(nothing_here=nothing_here), checks)


@pytest.fixture
def course(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "course.toml").write_text(COURSE)
    (folder / "class.csv").write_text("student,host\namy,vm1\nben,vm2\n")
    write_pack(folder / "tiny")
    monkeypatch.chdir(folder)
    monkeypatch.setenv("GRADER_NOW", "2026-12-01T10:00:00+00:00")
    monkeypatch.setenv("SUDO_USER", "ta-anna")
    return folder


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]):
    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def graded(run, rubric: Path, out: Path, student: str = "amy") -> Path:
    """``student`` graded on this machine with ``rubric`` into ``out``, as a TA would."""
    code, _, err = run("--local", "--rubric", str(rubric), "--student", student, "--out",
                       str(out), "--instructor-view", "--format", "json")  # fmt: skip
    assert code in (0, 1), err
    return out


def copied(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit(folder: Path, change, student: str = "amy") -> None:
    path = folder / f"{student}.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def flip(data: dict) -> None:
    """nothing_here passed, as its evidence never says."""
    for c in data["checks"]:
        if c["id"] == "nothing_here":
            c["status"], c["points"] = "pass", c["max_points"]
            data["score"] += c["max_points"]


def rows(run) -> dict[tuple[str, str], dict]:
    code, out, err = run("book", "show", "--format", "json")
    assert code == 0, err
    return {(r["student"], r["lab"]): r for r in json.loads(out)}


def test_a_report_under_an_older_rubric_the_book_knows_is_replayed_too(course, tmp_path, run):
    first = graded(run, course / "tiny" / "rubric.toml", tmp_path / "elsewhere" / "a")
    code, _, err = run("book", "import", str(first), "--lab", "tiny")
    assert code == 0, err  # the book knows rubric A now
    write_pack(course / "tiny", nothing_here=3)  # rubric B: the lab's from now on
    forged = copied(first, tmp_path / "elsewhere" / "flipped")
    edit(forged, flip)
    code, _, err = run("book", "import", str(forged), "--lab", "tiny")
    assert code == 2, err
    assert "nothing_here is pass in the report but fail from its evidence" in err
    assert "nothing was recorded" in err
    honest = copied(first, tmp_path / "elsewhere" / "again")
    code, said, err = run("book", "import", str(honest), "--lab", "tiny")
    assert code == 0, err
    assert "1 replayed from its evidence" in said


def test_a_report_re_dated_before_the_due_time_is_refused(course, tmp_path, run, monkeypatch):
    monkeypatch.setenv("GRADER_NOW", "2026-12-03T12:00:00+00:00")  # two days late
    late = graded(run, course / "tiny" / "rubric.toml", tmp_path / "elsewhere" / "late")
    forged = copied(late, tmp_path / "elsewhere" / "redated")
    edit(forged, lambda data: data.update(graded_at="2026-12-01T11:00:00Z"))
    code, _, err = run("book", "import", str(forged), "--lab", "tiny")
    assert code == 2, err
    assert str(forged / "amy.json") in err
    assert "2026-12-01T11:00:00Z" in err and "2026-12-03T12:00:00Z" in err
    assert rows(run)[("amy", "tiny")]["mark"] is None  # nothing was recorded
    code, _, err = run("book", "import", str(late), "--lab", "tiny")
    assert code == 0, err
    assert rows(run)[("amy", "tiny")]["days_late"] == 2


def test_what_a_grading_inside_a_course_writes_is_signed_and_an_edit_is_refused(
    course, tmp_path, run
):
    inside = graded(run, course / "tiny" / "rubric.toml", course / "by-hand" / "a")
    key = course / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    secret = key.read_text().strip()
    assert (inside / "amy.json.sig").exists()
    assert secret not in (inside / "amy.json.sig").read_text()
    edited = copied(inside, course / "by-hand" / "edited")
    # a change no replay sees: only the signature tells it
    edit(edited, lambda data: data["checks"][0].update(message="looked at by hand"))
    code, out, err = run("book", "import", str(edited), "--lab", "tiny")
    assert code == 2, err
    assert f"{edited / 'amy.json'}: its signature does not verify" in err
    code, out, err = run("regrade", str(edited), "--out", str(tmp_path / "regraded"))
    assert code == 3, err
    again = json.loads((tmp_path / "regraded" / "amy.json").read_text())
    assert again["status"] == "error" and "signature does not verify" in again["error"]
    code, said, err = run("book", "import", str(inside), "--lab", "tiny")
    assert code == 0, err
    assert secret not in said + err + out


def test_a_report_the_book_cannot_replay_needs_staffs_word_and_the_row_says_so(
    course, tmp_path, run
):
    # the same rubric, with checks the book never kept (a docstring changed)
    other = write_pack(tmp_path / "copy", checks=CHECKS.replace("no machine has", "nobody has"))
    assert other.read_text() == (course / "tiny" / "rubric.toml").read_text()
    folder = graded(run, other, tmp_path / "elsewhere" / "other-checks")
    code, _, err = run("book", "import", str(folder), "--lab", "tiny")
    assert code == 2, err
    assert "cannot be replayed" in err and "--trust-unreplayed" in err
    code, _, err = run("book", "import", str(folder), "--lab", "tiny", "--trust-unreplayed")
    assert code == 2 and "--reason" in err
    why = "graded by Ben's section with their own copy; checked by hand"
    code, said, err = run("book", "import", str(folder), "--lab", "tiny", "--trust-unreplayed",
                          "--reason", why)  # fmt: skip
    assert code == 0, err
    assert "on trust" in said
    row = rows(run)[("amy", "tiny")]
    assert [(t["by"], t["reason"]) for t in row["trusted"]] == [("ta-anna", why)]
    assert rows(run)[("ben", "tiny")]["trusted"] == []
    code, shown, _ = run("book", "show")
    assert code == 0 and "~" in shown
    code, explained, _ = run("book", "explain", "amy", "tiny")
    assert code == 0 and "on trust" in explained and why in explained


def test_a_course_key_is_made_once_private_and_never_shown(tmp_path):
    """Eight graders signing at once share one key; it is 0600; a report edited, its archive
    edited, another course's signature, a signature file of junk and a key file of junk are
    each refused by name; a report without a signature is only unsigned."""
    import threading

    from grader.base.errors import InputError
    from grader.evidence import signing

    course = tmp_path / "course"
    (course / "runs").mkdir(parents=True)
    (course / "course.toml").write_text(COURSE)
    reports = []
    for n in range(8):
        path = course / "runs" / f"s{n}.json"
        path.write_text(f'{{"n": {n}}}\n')
        (course / "runs" / f"s{n}.evidence.json.gz").write_bytes(b"archive %d" % n)
        reports.append(path)
    keys = [signing.key_for(course / "runs") for _ in reports]
    threads = [
        threading.Thread(target=key.sign, args=(path,))  # type: ignore[union-attr]
        for key, path in zip(keys, reports)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    key_file = course / signing.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert sorted(p.name for p in course.iterdir()) == ["course.toml", "runs", "signing.key"]
    secret = key_file.read_text().strip()
    verifier = signing.key_for(course)
    assert verifier is not None and secret not in repr(verifier)
    assert all(verifier.verify(path) for path in reports)  # one key signed them all
    reports[0].write_text('{"n": 100}\n')
    (course / "runs" / "s1.evidence.json.gz").write_bytes(b"another archive")
    for path in reports[:2]:
        with pytest.raises(signing.SignatureError, match=f"{path}: its signature does not verify"):
            verifier.verify(path)
    signing.signature_path(reports[2]).unlink()
    assert verifier.verify(reports[2]) is False  # unsigned: nothing to refuse, nothing vouched
    other = tmp_path / "other"
    other.mkdir()
    (other / "course.toml").write_text(COURSE)
    stranger = signing.key_for(other)
    assert stranger is not None
    with pytest.raises(signing.SignatureError, match="signed, but this course has no signing"):
        stranger.verify(reports[3])
    stranger.prepared()
    with pytest.raises(signing.SignatureError, match="signed with another key"):
        stranger.verify(reports[3])
    signing.signature_path(reports[4]).write_text("{" * 10000)
    with pytest.raises(signing.SignatureError, match="not a signature of this grader"):
        verifier.verify(reports[4])
    key_file.write_text("not a key\n")
    with pytest.raises(InputError, match=f"{key_file}: not a signing key") as refused:
        signing.Key(key_file).verify(reports[5])
    assert "not a key" not in str(refused.value)
