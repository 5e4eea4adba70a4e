"""grade --roster against a class of simulated VMs: every student graded or clearly not, the
summary and reports right, clones flagged, and an interrupted run finished by --resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.errors import ExitStatus
from tests.labsim.scenarios import SCENARIOS

pytestmark = pytest.mark.vm

# student -> the scenario of their VM (None: not graded, see NOT_GRADED)
CLASS = {
    "alice": "complete",
    "bob": "untouched",
    "carol": "sendmail_never_started",
    "erin": "complete",  # erin and frank: one VM cloned (the same host key)
    "frank": "root_ftp_allowed",
    "gina": None,  # nothing answers at her address
    "hal": None,  # his VM does not accept the grader's key
}
NOT_GRADED = {
    "gina": ("unreachable", {"timeout", "unreachable"}, 2),
    "hal": ("error", {"auth_failed"}, 1),
}


@pytest.fixture(scope="module")
def class_roster(fleet, tmp_path_factory) -> Path:
    shared = fleet.new_host_key("clone")
    vms = fleet.boot(
        [
            ("alice", SCENARIOS["complete"]),
            ("bob", SCENARIOS["untouched"]),
            ("carol", SCENARIOS["sendmail_never_started"]),
        ]
    )
    vms |= fleet.boot(
        [("erin", SCENARIOS["complete"]), ("frank", SCENARIOS["root_ftp_allowed"])],
        host_key_file=shared,
    )
    stranger = tmp_path_factory.mktemp("stranger") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    vms |= fleet.boot(
        [("hal", SCENARIOS["untouched"])],
        authorized_key=stranger.with_suffix(".pub").read_text().strip(),
    )
    path = tmp_path_factory.mktemp("roster") / "class.csv"
    lines = ["student,host,identity,bob_password"]
    for student in CLASS:
        host = "198.18.0.250" if student == "gina" else vms[student].address
        lines.append(f"{student},{host},{fleet.identity},{fleet.password}")
    path.write_text("\n".join(lines) + "\n")
    return path


def results(directory: Path) -> dict[str, dict]:
    """What a run decided, per student: without times, which differ between runs."""
    decided = {}
    for student in CLASS:
        report = json.loads((directory / f"{student}.json").read_text())
        decided[student] = {
            "status": report["status"], "score": report["score"],
            "error_kind": report["error_kind"],
            "checks": {c["id"]: c["status"] for c in report["checks"]},
            "flags": [f["students"] for f in report["flags"]],
        }  # fmt: skip
    return decided


def summary_rows(directory: Path) -> dict[str, dict[str, str]]:
    with open(directory / "summary.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_class_graded_with_summary_reports_and_flags(grade, class_roster, tmp_path):
    out = tmp_path / "run"
    run = grade(
        "--roster", str(class_roster), "--out", str(out), "--workers", "4", "--connect-timeout", "2"
    )
    assert run.exit == ExitStatus.NOT_GRADED  # gina and hal
    rows = summary_rows(out)
    assert list(rows) == list(CLASS)  # roster order
    for student, scenario in CLASS.items():
        report = json.loads((out / f"{student}.json").read_text())
        row = rows[student]
        assert report["student"] == student and row["host"] == report["host"]
        if scenario is None:
            status, kinds, attempts = NOT_GRADED[student]
            assert report["status"] == row["status"] == status
            assert report["error_kind"] in kinds and row["error_kind"] == report["error_kind"]
            assert report["attempts"] == attempts and row["attempts"] == str(attempts)
            assert report["score"] is None and row["score"] == ""  # not graded is not zero
            assert all(row[c] == "" for c in SCENARIOS["complete"].expected)
            continue
        expected = SCENARIOS[scenario].expected
        assert {c["id"]: c["status"] for c in report["checks"]} == expected, student
        earned = {c["id"]: c["points"] for c in report["checks"]}
        assert row["status"] == "graded" and float(row["score"]) == report["score"]
        assert report["score"] == sum(earned.values())
        assert {c: float(row[c]) for c in expected} == earned
    # the clones name each other, in their reports and in the summary
    assert results(out)["erin"]["flags"] == [["frank"]]
    assert results(out)["frank"]["flags"] == [["erin"]]
    assert "as frank" in rows["erin"]["flags"] and "as erin" in rows["frank"]["flags"]
    assert [s for s, r in rows.items() if r["flags"]] == ["erin", "frank"]
    # progress: one line per student (stderr is not a terminal here); the closing table
    for student in CLASS:
        assert f"] {student} (" in run.stderr
    assert "5 of 7 students graded" in run.stdout and "Not graded" in run.stdout
    assert "Score distribution" in run.stdout and str(out) in run.stdout


def test_interrupted_run_is_finished_by_resume(grade, class_roster, tmp_path):
    full, partial = tmp_path / "full", tmp_path / "partial"
    base = ["--roster", str(class_roster), "--connect-timeout", "2"]
    assert grade(*base, "--out", str(full), "--workers", "4").exit == ExitStatus.NOT_GRADED

    env = {**os.environ, "GRADER_KNOWN_HOSTS": str(tmp_path / "kh")}
    process = subprocess.Popen(
        [sys.executable, "-m", "grader", *base, "--out", str(partial), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(partial.glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    finished = {p.stem for p in partial.glob("*.json")}
    assert finished and finished != set(CLASS)  # stopped midway
    for path in partial.glob("*.json"):
        json.loads(path.read_text())  # whole files only
    assert set(summary_rows(partial)) == finished  # the summary covers what finished
    assert "Interrupted" in stdout and "--resume" in stdout
    kept = {s: json.loads((partial / f"{s}.json").read_text()) for s in finished}

    resumed = grade(*base, "--out", str(partial), "--resume", "--workers", "4")
    assert resumed.exit == ExitStatus.NOT_GRADED
    assert results(partial) == results(full)
    for student, before in kept.items():
        after = json.loads((partial / f"{student}.json").read_text())
        if before["status"] == "graded":  # kept, not graded again
            assert after["graded_at"] == before["graded_at"]
            assert after["duration_s"] == before["duration_s"]
    assert "kept from the earlier run" in resumed.stderr


def test_roster_usage_errors(grade, tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text("student,host\ns1,198.18.0.251\ns1,198.18.0.252\n")
    run = grade("--roster", str(roster))
    assert (
        run.exit == ExitStatus.BAD_INPUT
        and "r.csv:3: student 's1' is already on line 2" in run.stderr
    )
    assert not (tmp_path / "reports").exists()
    assert grade("--roster", str(roster), "--workers", "0").exit == ExitStatus.BAD_INPUT
    both = grade("--roster", str(roster), "--host", "x")
    assert both.exit == ExitStatus.BAD_INPUT and "give one of" in both.stderr
    resume = grade("--roster", str(roster), "--resume")
    assert resume.exit == ExitStatus.BAD_INPUT
