"""The checks are plain testinfra tests: under ``pytest --hosts=paramiko://...`` they pass and
fail exactly as ``grade`` says (a check ``grade`` skips because a dependency did not pass
fails on its own under plain pytest, which knows no dependencies)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.labsim.scenarios import SCENARIOS

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parent.parent


def plain_pytest(vm, fleet, junit: Path) -> dict[str, tuple[str, str]]:
    """Run the checks under plain pytest-testinfra: {check id: (outcome, pytest's message)}."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            str(PROJECT / "checks"),
            f"--hosts=paramiko://root@{vm.address}?ssh_identity_file={fleet.identity}",
            f"--lab-var=bob_password={fleet.password}",
            f"--junitxml={junit}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT,
    )
    results = {}
    for case in ET.parse(junit).iter("testcase"):
        check_id = case.get("name", "").split("[")[0].removeprefix("test_")
        found = {child.tag: child.get("message", "") for child in case}
        bad = found.get("failure", found.get("error"))
        outcome = "failed" if bad is not None else "skipped" if "skipped" in found else "passed"
        results[check_id] = (outcome, bad or found.get("skipped", ""))
    return results


def test_plain_pytest_agrees_with_grade(fleet, scenario_vms, tmp_path):
    names = list(SCENARIOS)
    with ThreadPoolExecutor(4) as pool:
        runs = pool.map(
            lambda n: plain_pytest(scenario_vms[n], fleet, tmp_path / f"{n}.xml"), names
        )
        results = dict(zip(names, runs, strict=True))
    for name in names:
        want = {
            c: "passed" if s == "pass" else "failed" for c, s in SCENARIOS[name].expected.items()
        }
        got = {check: outcome for check, (outcome, _) in results[name].items()}
        differing = {c: results[name].get(c) for c in want if got.get(c) != want[c]}
        assert got == want, f"{name}: plain pytest differs on {differing}"
