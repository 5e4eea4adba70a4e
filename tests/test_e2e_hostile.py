"""Hostile and broken VMs (tests/hostile.py): the grader never hangs, never crashes,
never leaks, and never loses a result."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time

import pytest

from grader.base.errors import ExitStatus
from grader.base.evidence import OUTPUT_LIMIT
from grader.evidence import archive
from scenarios import SCENARIOS
from tests.hostile import CANARY, HOSTILE

pytestmark = pytest.mark.vm


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


def test_a_port_22_that_never_speaks_is_unreachable_within_the_connect_timeout(
    grade, fleet, hostile_vms
):
    started = time.monotonic()
    run = grade(*fleet.grade_args(hostile_vms["h_silent_ssh"], "--connect-timeout", "2"))
    elapsed = time.monotonic() - started
    assert run.exit == ExitStatus.NOT_GRADED
    report = run.report
    assert report["status"] == "unreachable" and report["error_kind"] == "timeout"
    assert "no SSH greeting within 2 s" in report["error"] and report["score"] is None
    # two attempts and one pause, in the grader's own time (a loaded machine's Python start-up
    # is not the grader's); the wall clock only shows that nothing hung
    assert report["attempts"] == 2 and report["duration_s"] < 2 * 2 + 1 + 2
    assert elapsed < 30


def test_a_command_that_never_returns_is_an_error_and_the_rest_is_graded(grade, fleet, hostile_vms):
    started = time.monotonic()
    run = grade(*fleet.grade_args(hostile_vms["h_hanging_ss"], "--command-timeout", "2"))
    assert time.monotonic() - started < 30
    report = run.report
    assert statuses(report) == HOSTILE["hanging_ss"].expected
    for check in report["checks"]:
        if check["status"] == "error":
            assert check["error_kind"] == "timeout" and "timed out" in check["message"]


def test_a_per_host_deadline_bounds_the_whole_host(grade, fleet, hostile_vms):
    started = time.monotonic()
    run = grade(
        *fleet.grade_args(
            hostile_vms["h_hanging_ss"],
            "--command-timeout",
            "3",
            "--host-timeout",
            "2",
            "--no-prefetch",
        )
    )
    assert time.monotonic() - started < 15
    kinds = [c["error_kind"] for c in run.report["checks"]]
    assert "deadline" in kinds  # what the time left no room for is an error, not a lost mark
    assert all(c["status"] == "error" for c in run.report["checks"] if c["error_kind"])
    assert run.report["status"] == "graded"


#: Runs a command (argv[2:]) and writes its peak resident memory in KiB to argv[1]
MEASURED = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def test_huge_files_and_binary_junk_are_graded_in_bounded_time_and_memory(
    fleet, hostile_vms, grade, tmp_path
):
    """One grading, in a process of its own, started by a small one that reports its peak
    memory: a process this one (pytest, some hundreds of MB by now) forks starts with this
    one's pages, which its peak would count (CI: 300 MB, where the grader's own is ~100)."""
    vm = hostile_vms["h_huge_files"]
    env = {
        **os.environ,
        "GRADER_KNOWN_HOSTS": str(tmp_path / "kh"),
        "GRADER_CACHE_DIR": str(tmp_path / "cache"),
    }
    out = tmp_path / "live"
    started = time.monotonic()
    peak = tmp_path / "peak_kib"
    with (tmp_path / "stderr").open("wb") as errors:
        process = subprocess.run(
            [sys.executable, "-c", MEASURED, str(peak), sys.executable, "-m", "grader",
             *fleet.grade_args(vm, "--out", str(out))],
            env=env, stdout=subprocess.DEVNULL, stderr=errors, timeout=600,
        )  # fmt: skip
    # bounded, not timed: reading what it holds whole would take many minutes (the grader's
    # own bounds are asserted below); a shared machine's slow ssh needs room above a minute
    assert time.monotonic() - started < 240
    report = json.loads((out / f"{vm.address}.json").read_text())
    lost = {
        c["id"]: (c["message"], c["evidence"]) for c in report["checks"] if c["status"] != "pass"
    }
    assert statuses(report) == HOSTILE["huge_files"].expected, lost  # the real mail is found
    assert process.returncode == ExitStatus.OK
    assert int(peak.read_text()) < 300 * 1024  # KiB: a 200 MB mailbox costs the grader little
    for check in report["checks"]:
        for piece in check["evidence"]:
            assert len(piece["output"]) <= OUTPUT_LIMIT + 100  # clipped, with a note saying so
    assert any("truncated" in p["output"] for c in report["checks"] for p in c["evidence"])
    # its evidence archive stays within the archive's bounds, and regrades to the same marks
    kept = out / f"{vm.address}.evidence.json.gz"
    assert kept.stat().st_size < 2 * 1024 * 1024
    assert len(gzip.decompress(kept.read_bytes())) <= archive.READ_LIMIT
    again = grade("regrade", str(out), "--out", str(tmp_path / "again"))
    assert again.exit == ExitStatus.OK
    regraded = json.loads((tmp_path / "again" / f"{vm.address}.json").read_text())
    assert statuses(regraded) == statuses(report)


@pytest.mark.parametrize("fmt", ["json", "text", "html", "md", "junit", "gradescope"])
def test_a_mailbox_linked_to_etc_shadow_leaks_nothing(grade, fleet, hostile_vms, fmt):
    vm = hostile_vms["h_shadow_link"]
    run = grade(*fleet.grade_args(vm, "--format", fmt))  # the last --format given counts
    everything = run.stdout + run.stderr
    assert CANARY not in everything and "$y$" not in everything  # no line of /etc/shadow
    if fmt == "json":
        assert statuses(run.report) == HOSTILE["shadow_link"].expected
        hello = next(c for c in run.report["checks"] if c["id"] == "mail_hello_world")
        assert "is a symbolic link (to /etc/shadow); it was not read" in hello["message"]


def test_shell_metacharacters_in_names_and_subjects_alter_no_command(grade, fleet, hostile_vms):
    vm = hostile_vms["h_nasty_names"]
    run = grade(*fleet.grade_args(vm))
    report = run.report  # valid JSON, whatever the names hold
    assert statuses(report) == HOSTILE["nasty_names"].expected
    exposed = next(c for c in report["checks"] if c["id"] == "mailbox_permissions")["message"]
    assert "'new\\nline'" in exposed and "a; touch pwned2 #" in exposed
    assert "pwned" not in vm.sh("ls -A /root /tmp").stdout  # nothing ran


def test_a_dropped_connection_is_reported_retried_and_others_unaffected(
    grade, fleet, hostile_vms, tmp_path
):
    good = fleet.boot([("h_good", SCENARIOS["complete"])])["h_good"]
    roster = tmp_path / "r.csv"
    roster.write_text(
        "student,host,identity,bob_password\n"
        f"dropped,{hostile_vms['h_dropping_sshd'].address},{fleet.identity},"
        f"{fleet.password}\ngood,{good.address},{fleet.identity},{fleet.password}\n"
    )
    run = grade("--roster", str(roster), "--out", str(tmp_path / "out"), "--no-prefetch")
    assert run.exit == ExitStatus.NOT_GRADED
    dropped = json.loads((tmp_path / "out" / "dropped.json").read_text())
    assert dropped["status"] == "error" and dropped["error_kind"] == "connection_lost"
    assert dropped["attempts"] == 2 and dropped["score"] is None
    other = json.loads((tmp_path / "out" / "good.json").read_text())
    assert other["status"] == "graded" and statuses(other) == SCENARIOS["complete"].expected


def test_inside_and_outside_views_that_disagree_are_noted(grade, fleet, hostile_vms):
    report = grade(*fleet.grade_args(hostile_vms["h_fake_ss"])).report
    assert statuses(report) == HOSTILE["fake_ss"].expected
    notes = {c["id"]: c["notes"] for c in report["checks"] if c["notes"]}
    assert set(notes) == {"smtp_listening", "time_disabled"}
    hidden = "nothing listens on port 25 according to the VM (ss), but from outside it is open"
    assert hidden in notes["smtp_listening"][0]
    invented = "port 37 listens (tcp 0.0.0.0), but from outside it is closed"
    assert invented in notes["time_disabled"][0]


CRASHING_CHECKS = '''
def test_crashes(host):
    """A check with a bug."""
    host.run("true")
    return 1 / 0


def test_works(host):
    """A check that works."""
    assert host.run("true").rc == 0
'''


BUGGY_RUBRIC = """
title = "Buggy lab"
[[sections]]
id = "s"
title = "S"
[[sections.items]]
id = "crashes"
title = "crashes"
points = 1
[[sections.items]]
id = "works"
title = "works"
points = 1
"""


def test_a_check_that_raises_is_an_error_and_the_run_goes_on(grade, fleet, hostile_vms, tmp_path):
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "test_buggy.py").write_text(CRASHING_CHECKS)
    (tmp_path / "rubric.toml").write_text(BUGGY_RUBRIC)
    good = fleet.boot([("h_crash", SCENARIOS["untouched"])])["h_crash"]
    run = grade(*fleet.grade_args(good, "--rubric", str(tmp_path / "rubric.toml"), variables=False))
    assert run.exit == ExitStatus.NOT_ALL_PASSED
    crashed, works = run.report["checks"]
    assert crashed["status"] == "error" and crashed["error_kind"] == "check_crashed"
    assert "ZeroDivisionError: division by zero" in crashed["message"]
    assert works["status"] == "pass"
