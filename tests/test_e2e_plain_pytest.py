"""Every pack's checks are plain testinfra tests: under ``pytest --hosts=paramiko://...``, with
the grader's pytest plugin (the ``lab_grader`` entry point) giving them ``lab`` and ``outside``,
they pass and fail exactly as ``grade`` says (a check ``grade`` skips because a dependency did
not pass fails on its own under plain pytest, which knows no dependencies).

Two VMs a lab, done right and as handed out (most checks pass on one and fail on the other):
the checks' code is the same under both, so what only this test can show is the plugin's
wiring (each lab's rubric found beside its checks, its variables, its probes), not every
scenario again."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from labs.lab7.scenarios import COURSE_SECRET
from labs.lab7.scenarios import SCENARIOS as LAB7
from scenarios import SCENARIOS as LAB6

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parent.parent


def plain_pytest(vm, fleet, checks: Path, junit: Path, *lab_vars: str) -> dict[str, str]:
    """Run a pack's checks under plain pytest-testinfra, from outside the project (so only the
    installed plugin can give the fixtures): {check id: outcome}."""
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(checks),
            f"--hosts=paramiko://root@{vm.address}?ssh_identity_file={fleet.identity}",
            *(f"--lab-var={v}" for v in lab_vars), f"--junitxml={junit}",
        ],
        capture_output=True, text=True, timeout=600, cwd=junit.parent,
    )  # fmt: skip
    assert junit.exists(), done.stdout + done.stderr
    results = {}
    for case in ET.parse(junit).iter("testcase"):
        check_id = case.get("name", "").split("[")[0].removeprefix("test_")
        found = {child.tag for child in case}
        bad = "failure" in found or "error" in found
        results[check_id] = "failed" if bad else "skipped" if "skipped" in found else "passed"
    return results


def test_plain_pytest_agrees_with_grade(fleet, scenario_vms, lab7_vms, tmp_path):
    lab6, lab7 = PROJECT / "checks", PROJECT / "labs" / "lab7" / "checks"
    runs = {
        ("lab6", name): (scenario_vms[name], lab6, LAB6[name], [f"bob_password={fleet.password}"])
        for name in ("complete", "untouched")
    } | {
        ("lab7", name): (
            lab7_vms[f"l7-{name}"],
            lab7,
            LAB7[name],
            [f"course_secret={COURSE_SECRET}", f"student=l7-{name}"],
        )
        for name in ("complete", "untouched")
    }
    with ThreadPoolExecutor(len(runs)) as pool:
        found = dict(zip(runs, pool.map(
            lambda key: plain_pytest(runs[key][0], fleet, runs[key][1],
                                     tmp_path / f"{'-'.join(key)}.xml", *runs[key][3]),
            runs,
        ), strict=True))  # fmt: skip
    for key, (_, _, scenario, _) in runs.items():
        want = {c: "passed" if s == "pass" else "failed" for c, s in scenario.expected.items()}
        differing = {c: found[key].get(c) for c in want if found[key].get(c) != want[c]}
        assert found[key] == want, f"{key}: plain pytest differs on {differing}"
