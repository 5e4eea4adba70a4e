"""Late work is never counted on time (issue 32, finding 1), on a real simulated VM.

A student who knows that a check the due-time grading could not decide is filled in by a later
grading makes the grading at the due time fail to decide (here: a ``ps`` that hangs until the
grader's time-out), does the work days later, and used to get every mark on time. Now a check
decided only after the due time carries that grading's lateness; ``course due``'s gradings again
within ``retry_minutes`` still count on time; staff can accept a late check as on time.
"""

from __future__ import annotations

import json

import pytest

from scenarios import SCENARIOS
from tests.test_e2e_course import BASICS_CHECKS, grade

pytestmark = pytest.mark.vm

#: sshd_runs (1 point, reads the process list) and hostname_file (2 points)
RUBRIC = """\
title = "Lab 1: the basics"

[[sections]]
id = "basics"
title = "The basics"

[[sections.items]]
id = "sshd_runs"
points = 1

[[sections.items]]
id = "hostname_file"
points = 2
"""
COURSE = """\
title = "Late work"
roster = "class.csv"

[[labs]]
id = "strict"
rubric = "basics/rubric.toml"
due = 2026-12-01T12:00:00+00:00
policy = "last_before_due"

[[labs]]
id = "best"
rubric = "basics/rubric.toml"
due = 2026-12-02T12:00:00+00:00
policy = "best"
late = { per_day = 0.25, max = 0.50 }
"""
#: A student's ps that never answers: the check that reads the process list cannot decide
HANGING_PS = (
    "printf '#!/bin/sh\\nexec sleep 600\\n' > /usr/local/bin/ps && chmod 755 /usr/local/bin/ps"
)


def row(lab: str) -> dict:
    code, shown, err = grade("book", "explain", "amy", lab, "--format", "json")
    assert code == 0, err
    return json.loads(shown)


def test_a_check_decided_only_days_late_carries_its_lateness(fleet, tmp_path, monkeypatch):
    vm = fleet.boot([("late-amy", SCENARIOS["complete"])])["late-amy"]
    course = tmp_path / "course"
    (course / "basics" / "checks").mkdir(parents=True)
    (course / "basics" / "rubric.toml").write_text(RUBRIC)
    (course / "basics" / "checks" / "test_basics.py").write_text(BASICS_CHECKS)
    (course / "course.toml").write_text(COURSE)
    (course / "class.csv").write_text(f"student,host,identity\namy,{vm.address},{fleet.identity}\n")
    monkeypatch.chdir(course)
    monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SUDO_USER", "ta-anna")
    fast = ["--connect-timeout", "2", "--command-timeout", "2", "--no-prefetch"]
    try:
        # before either due time the student's ps hangs: sshd_runs is not decided
        vm.sh(HANGING_PS)
        monkeypatch.setenv("GRADER_NOW", "2026-12-01T11:00:00+00:00")
        for lab in ("strict", "best"):
            assert grade("course", "run", lab, *fast)[0] == 0  # graded: recorded, incomplete
            assert row(lab)["incomplete"] == ["sshd_runs"]
        # strict's deadline passes; course due grades amy again within its retry window, ps
        # answering now: what it decides counts on time, as a retry of the due grading
        vm.sh("rm -f /usr/local/bin/ps")
        monkeypatch.setenv("GRADER_NOW", "2026-12-01T12:20:00+00:00")
        code, said, err = grade("course", "due", *fast)
        assert "strict: grading 1 student(s) whose due time has passed: amy" in said, (said, err)
        strict = row("strict")
        assert strict["mark"] == 3 and strict["run_at"] == "2026-12-01T11:00:00Z"
        assert [(f["check"], f["at"], f["days_late"]) for f in strict["filled"]] == [
            ("sshd_runs", "2026-12-01T12:20:00Z", 0)
        ]  # fmt: skip
        # best's deadline passed a day ago when amy's VM is graded again, its ps answering:
        # sshd_runs is decided two days late, and carries that grading's 50 %
        monkeypatch.setenv("GRADER_NOW", "2026-12-03T13:00:00+00:00")
        assert grade("course", "run", "best", *fast)[0] == 0
        best = row("best")
        assert best["run_at"] == "2026-12-01T11:00:00Z"  # 2 points on time beat 3 less 50 %
        assert (best["score"], best["mark"], best["days_late"]) == (3, 2.5, 0)
        assert [(f["check"], f["days_late"], f["penalty"], f["taken"]) for f in best["filled"]] == [
            ("sshd_runs", 2, 0.5, True)
        ]  # fmt: skip
        code, explained, _ = grade("book", "explain", "amy", "best")
        assert "sshd_runs" in explained and "2 day(s) after the due time: late work, 50% off" in (
            explained
        )
        code, shown, _ = grade("book", "show")
        assert "2.5 L" in shown and "L late work" in shown
        assert grade("book", "page")[0] == 0
        assert "amy: sshd_runs 2 day(s) late, 50% off" in (course / "course.html").read_text()
        # staff find the hanging ps was the grader's fault (it was not, here): accepted
        code, _, err = grade("book", "accept", "amy", "best", "--check", "hostname_file",
                             "--reason", "not late")  # fmt: skip
        assert code == 2 and "hostname_file of amy, best is not decided late" in err
        code, said, err = grade("book", "accept", "amy", "best", "--check", "sshd_runs",
                                "--reason", "our time-out was too short")  # fmt: skip
        assert code == 0, err
        accepted = row("best")
        assert accepted["mark"] == 3 and accepted["filled"][0]["accepted_by"] == "ta-anna"
        code, explained, _ = grade("book", "explain", "amy", "best")
        assert "accepted as on time by ta-anna: our time-out was too short" in explained
        code, history, _ = grade("book", "history", "amy", "--lab", "best")
        assert "check sshd_runs accepted as on time by ta-anna: our time-out was too short" in (
            history
        )
    finally:
        vm.sh("rm -f /usr/local/bin/ps")
