"""A VM's words, on simulated VMs: what a VM prints never crashes a check, and what one VM said
never runs on another."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from grader.evidence import archive
from grader.sim import Scenario
from labs.lab7.scenarios import ALL_PASS as LAB7_PASS
from labs.lab7.scenarios import COURSE_SECRET, variant
from tests.hostile import (
    NAMED_PATH,
    lab7_classmate_with_a_file,
    lab7_zone_at_dev_zero,
    lab7_zone_at_named_path,
    loud_shell,
    odd_digits,
)

pytestmark = pytest.mark.vm


def checks(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


@pytest.fixture(scope="module")
def odd_vm(fleet):
    scenario = Scenario("odd_digits", "ps and ss add a line whose number is not 0-9", odd_digits)
    return fleet.boot([("vw_odd", scenario)])["vw_odd"]


def test_a_ps_or_ss_that_prints_a_digit_not_0_9_is_named_never_a_crash(grade, fleet, odd_vm):
    run = grade(*fleet.grade_args(odd_vm))
    found = checks(run.report)
    crashed = [i for i, c in found.items() if c["error_kind"] == "check_crashed"]
    assert crashed == [], [found[i]["message"] for i in crashed]
    unreadable = {i: c for i, c in found.items() if c["error_kind"] == "unreadable"}
    assert "smtp_daemon" in unreadable  # it reads the process list first
    said = unreadable["smtp_daemon"]["message"]
    assert "ps -e" in said and "'  \u00b2     1 sshd sshd: odd'" in said, said
    by_ss = [c["message"] for c in unreadable.values() if "--listening" in c["message"]]
    assert by_ss and all("0.0.0.0:\u0663" in m for m in by_ss), by_ss
    for check in unreadable.values():
        assert check["status"] == "error" and check["points"] == 0
    assert all(c["status"] in ("pass", "error") for c in found.values()), found


# ----- one VM's words never run on another -----

LAB7_VARS = ("--lab", "lab7", "--var", f"course_secret={COURSE_SECRET}")
LAB7_EXPECTED = {
    "l7vw-mate": LAB7_PASS,
    "l7vw-path": {**LAB7_PASS, "serial_bumped": "fail"},
    "l7vw-zero": {**LAB7_PASS, "serial_bumped": "fail"},
}


@pytest.fixture(scope="module")
def lab7_class(fleet):
    """Three Lab 7 students: one whose named.conf.local names NAMED_PATH, one that names
    /dev/zero, and a classmate who keeps a file of their own at NAMED_PATH (listed first: the
    first student is the one a plan was learned on)."""
    return fleet.boot(
        [
            ("l7vw-mate", Scenario("mate", "a file at NAMED_PATH", lab7_classmate_with_a_file)),
            ("l7vw-path", Scenario("path", "names NAMED_PATH", lab7_zone_at_named_path)),
            ("l7vw-zero", Scenario("zero", "names /dev/zero", lab7_zone_at_dev_zero)),
        ]
    )


def commands_run(folder: Path, student: str) -> list[bytes]:
    (path,) = folder.glob(f"{student}.evidence*")
    return [entry.command.stored for entry in archive.load(path).body.commands]


def tmp_of(vm) -> str:
    """What the VM's /tmp holds (names and sizes): what a grading leaves there."""
    return vm.sh("cd /tmp && find . -mindepth 1 -printf '%p %s\\n' | sort").stdout


def test_a_path_one_vm_names_is_never_read_on_another(grade, fleet, lab7_class, tmp_path):
    mate = lab7_class["l7vw-mate"]
    atime = mate.sh(f"stat -c %X {NAMED_PATH}").stdout
    assert atime.startswith("97"), atime  # 2001: a read would set it to now (relatime)
    tmp_before = {name: tmp_of(vm) for name, vm in lab7_class.items()}
    roster = tmp_path / "class.csv"
    rows = [f"{name},{vm.address},{fleet.identity}" for name, vm in lab7_class.items()]
    roster.write_text("student,host,identity\n" + "\n".join(rows) + "\n")
    cache = tmp_path / "cache"
    runs = []
    for label in ("first", "second"):  # the second with what the first learned
        out = tmp_path / label
        run = grade(
            "--roster", str(roster), "--out", str(out), "--cache-dir", str(cache),
            "--command-timeout", "5", *LAB7_VARS,
        )  # fmt: skip
        assert run.exit in (ExitStatus.OK, ExitStatus.NOT_ALL_PASSED), run.stderr
        runs.append(out)
        for name, expected in LAB7_EXPECTED.items():
            report = json.loads((out / f"{name}.json").read_text())
            got = {i: (c["status"], c["message"]) for i, c in checks(report).items()}
            assert {i: s for i, (s, _) in got.items()} == expected, (name, label, got)

    # the classmate's file was never read, and no command on the classmate's VM holds a word
    # another VM said (a path, /dev/zero, another student's zone)
    assert mate.sh(f"stat -c %X {NAMED_PATH}").stdout == atime
    others = [NAMED_PATH.encode(), b"/dev/zero", variant("l7vw-path").zone.encode(),
              variant("l7vw-zero").zone.encode()]  # fmt: skip
    for out in runs:
        for command in commands_run(out, "l7vw-mate"):
            assert not any(word in command for word in others), command
    # each VM's own words ran on that VM, bounded there (the second run prefetched them)
    for out in runs:
        assert any(NAMED_PATH.encode() in c for c in commands_run(out, "l7vw-path"))
        assert any(b"/dev/zero" in c for c in commands_run(out, "l7vw-zero"))
    # nothing a grading made is left in any VM's /tmp
    assert {name: tmp_of(vm) for name, vm in lab7_class.items()} == tmp_before
    # what was learned is kept for its owner only
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        kept = path.read_text()
        if NAMED_PATH in kept or "/dev/zero" in kept:
            assert '"l7vw-path"' in kept or '"l7vw-zero"' in kept, (path, kept)


# ----- what a grading holds of a VM's answers -----

#: Runs a command (argv[2:]) and writes its peak resident memory in KiB to argv[1]
MEASURED = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


@pytest.fixture(scope="module")
def loud_vms(fleet):
    scenario = Scenario("loud_shell", "every command says 7 MiB more, out and err", loud_shell)
    return fleet.boot([(f"vw_loud{n}", scenario) for n in range(4)])


@pytest.fixture(scope="module")
def loud_vm(loud_vms):
    return loud_vms["vw_loud0"]


@pytest.mark.parametrize("speed", [("--no-prefetch",), ()], ids=["live", "prefetched"])
def test_a_vm_that_says_too_much_is_graded_within_the_evidence_limit(
    speed, fleet, loud_vm, tmp_path
):
    """Every command the checks ask says 14 MiB: kept whole, one grading would hold ~300 MB
    of them. In a process of its own (a fork of pytest would count pytest's pages)."""
    env = {
        **os.environ,
        "GRADER_KNOWN_HOSTS": str(tmp_path / "kh"),
        "GRADER_CACHE_DIR": str(tmp_path / "cache"),
    }
    out, peak = tmp_path / "out", tmp_path / "peak_kib"
    process = subprocess.run(
        [sys.executable, "-c", MEASURED, str(peak), sys.executable, "-m", "grader",
         *fleet.grade_args(loud_vm, "--out", str(out), *speed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600,
    )  # fmt: skip
    # the grader's own ~110 MB, the 32 MiB it may hold, and a few answers on their way
    assert int(peak.read_text()) < 250 * 1024, int(peak.read_text()) // 1024
    report = json.loads((out / f"{loud_vm.address}.json").read_text())
    assert process.returncode in (ExitStatus.OK, ExitStatus.NOT_ALL_PASSED), report["error"]
    found = checks(report)
    hit = {i: c for i, c in found.items() if c["error_kind"] == "evidence_limit"}
    assert len(hit) >= 3, {i: (c["status"], c["error_kind"]) for i, c in found.items()}
    for check in hit.values():  # the report says which checks hit it, and that it is no mark
        assert check["status"] == "error" and "--evidence-limit" in check["message"]
    assert not [i for i, c in found.items() if c["error_kind"] == "check_crashed"]


def test_a_class_of_vms_that_say_too_much_is_graded_a_few_at_a_time(fleet, loud_vms, tmp_path):
    """Four such VMs as a class, in a process of its own: each grading that passes a little
    takes its evidence limit from the class's room (grader.base.budget.Room) and saves its
    archive before giving it back, and freed answers go back to the system (346 MB before
    these, 199 after)."""
    env = {
        **os.environ,
        "GRADER_KNOWN_HOSTS": str(tmp_path / "kh"),
        "GRADER_CACHE_DIR": str(tmp_path / "cache"),
    }
    roster = tmp_path / "class.csv"
    rows = [
        f"{name},{vm.address},{fleet.identity},{fleet.password}" for name, vm in loud_vms.items()
    ]
    roster.write_text("student,host,identity,bob_password\n" + "\n".join(rows) + "\n")
    out, peak = tmp_path / "out", tmp_path / "peak_kib"
    process = subprocess.run(
        [sys.executable, "-c", MEASURED, str(peak), sys.executable, "-m", "grader",
         "--roster", str(roster), "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600,
    )  # fmt: skip
    said = {  # what each report says, should one not be graded (its attempts, its error)
        name: (r.get("status"), r.get("attempts"), r.get("error"))
        for name in loud_vms
        if (r := json.loads((out / f"{name}.json").read_text())) and r.get("status") != "graded"
    }
    assert process.returncode in (ExitStatus.OK, ExitStatus.NOT_ALL_PASSED), (said, process.stderr)
    for name in loud_vms:
        report = json.loads((out / f"{name}.json").read_text())
        assert report["status"] == "graded", report["error"]
        kinds = {c["error_kind"] for c in report["checks"]}
        assert "evidence_limit" in kinds and "check_crashed" not in kinds, (name, kinds)
        assert (out / f"{name}.evidence.json.gz").exists()  # saved by its own worker
    assert int(peak.read_text()) < 250 * 1024, int(peak.read_text()) // 1024
