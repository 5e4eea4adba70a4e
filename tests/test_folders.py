"""No grade lost between the grader and the gradebook: folders of reports made by real roster
runs (of hosts on loopback that refuse or never speak, so no VM is needed), then merged,
exported and regraded; everything that cannot be used is named, and the exit status says so."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from grader.evidence.manifest import read

PROJECT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def roster(tmp_path) -> Path:
    path = tmp_path / "class.csv"
    rows = [f"s{n},127.0.0.1,{closed_port()}" for n in range(1, 5)]
    path.write_text("student,host,port\n" + "\n".join(rows) + "\n")
    return path


def run_shard(grade, roster: Path, out: Path, shard: str | None = None):
    args = ["--roster", str(roster), "--out", str(out), "--connect-timeout", "1"]
    return grade(*args, *(["--shard", shard] if shard else []))


def test_a_roster_run_records_its_manifest(grade, roster, tmp_path):
    run = run_shard(grade, roster, tmp_path / "k1", "1/2")
    assert run.exit == ExitStatus.NOT_GRADED  # nobody reachable: not graded, never zero
    manifest = read(tmp_path / "k1")
    assert manifest is not None and manifest.shard == (1, 2) and manifest.kind == "roster"
    assert manifest.students == ("s1", "s3")
    assert manifest.rubric_path == str((PROJECT / "rubric.toml").resolve())


def test_merge_refuses_a_missing_duplicated_or_foreign_shard(grade, roster, tmp_path):
    one, two = tmp_path / "k1", tmp_path / "k2"
    run_shard(grade, roster, one, "1/2")
    run_shard(grade, roster, two, "2/2")
    alone = grade("merge", str(one), "--out", str(tmp_path / "m"))
    assert alone.exit == ExitStatus.BAD_INPUT and "shard 2/2 is missing" in alone.stderr
    twice = grade("merge", str(one), str(one), "--out", str(tmp_path / "m"))
    assert twice.exit == ExitStatus.BAD_INPUT and "shard 1/2 is given twice" in twice.stderr
    (tmp_path / "empty").mkdir()
    empty = grade("merge", str(one), str(tmp_path / "empty"), "--out", str(tmp_path / "m"))
    assert empty.exit == ExitStatus.BAD_INPUT
    assert f"{tmp_path / 'empty'}: not the folder of a roster run" in empty.stderr
    other = tmp_path / "other.csv"
    other.write_text(roster.read_text() + "s5,127.0.0.1,1\n")
    foreign = tmp_path / "foreign"
    run_shard(grade, other, foreign, "2/2")
    mixed = grade("merge", str(one), str(foreign), "--out", str(tmp_path / "m"))
    assert mixed.exit == ExitStatus.BAD_INPUT and "graded from another roster" in mixed.stderr
    whole = grade("merge", str(one), str(two), "--out", str(tmp_path / "m"))
    assert whole.exit == ExitStatus.NOT_GRADED  # merged; nobody could be graded
    assert "0 of 4 students graded" in whole.stdout
    assert sorted(p.stem for p in (tmp_path / "m").glob("s*.json")) == ["s1", "s2", "s3", "s4"]


def test_a_report_that_cannot_be_read_is_named_and_the_exit_status_says_so(grade, roster, tmp_path):
    folder = tmp_path / "run"
    run_shard(grade, roster, folder)
    (folder / "mallory.json").write_text("{not json")
    (folder / "trudy.json").write_text(json.dumps({"student": "trudy"}))
    export = grade("export", "--lms", "moodle", str(folder))
    assert export.exit == ExitStatus.NOT_GRADED
    assert "s1" in export.stdout  # the others are exported
    for name, why in (("mallory", "not valid JSON"), ("trudy", "not a report's fields")):
        assert f"{folder / name}.json: not a report this grader can read" in export.stderr
        assert why in export.stderr
    again = grade("regrade", str(folder), "--out", str(tmp_path / "again"))
    assert again.exit == ExitStatus.NOT_GRADED
    assert "mallory.json: not a report this grader can read" in again.stderr
    assert "of 6 students" in again.stdout  # counted, not silently dropped


def test_regrade_uses_the_rubric_the_folder_was_graded_with(grade, roster, tmp_path):
    pack = tmp_path / "pack"
    shutil.copytree(
        PROJECT / "checks", pack / "checks", ignore=shutil.ignore_patterns("__pycache__")
    )
    text = (PROJECT / "rubric.toml").read_text().replace("points = 1.5", "points = 2", 1)
    (pack / "rubric.toml").write_text(text)
    folder = tmp_path / "run"
    grade(
        "--roster", str(roster), "--out", str(folder), "--rubric", str(pack / "rubric.toml"),
        "--connect-timeout", "1",
    )  # fmt: skip
    again = grade("regrade", str(folder), "--out", str(tmp_path / "again"))
    assert again.exit == ExitStatus.NOT_GRADED, again.stderr  # nobody was graded
    report = json.loads((tmp_path / "again" / "s1.json").read_text())
    assert report["max_score"] == 20.5  # the pack's rubric, not the built-in one
    (pack / "rubric.toml").unlink()
    gone = grade("regrade", str(folder), "--out", str(tmp_path / "gone"))
    assert gone.exit == ExitStatus.BAD_INPUT and "which is not there any more" in gone.stderr


def test_a_port_22_that_never_speaks_leaves_one_line_in_the_log(grade, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    roster = tmp_path / "class.csv"
    roster.write_text(f"student,host,port\na,127.0.0.1,{port}\nb,127.0.0.1,{port}\n")
    try:
        started = time.monotonic()
        run = grade(
            "--roster", str(roster), "--out", str(tmp_path / "out"), "--connect-timeout", "1"
        )
    finally:
        stop.set()
        thread.join()
        for client in held:
            client.close()
        listener.close()
    assert time.monotonic() - started < 15
    assert run.exit == ExitStatus.NOT_GRADED
    assert "Traceback" not in run.stderr and "paramiko" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and all("no SSH greeting within 1 s" in line for line in lines)
