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


def plain_pytest(vm, fleet, junit: Path) -> dict[str, str]:
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
    statuses = {}
    for case in ET.parse(junit).iter("testcase"):
        check_id = case.get("name", "").split("[")[0].removeprefix("test_")
        outcome = {child.tag for child in case}
        statuses[check_id] = (
            "failed"
            if outcome & {"failure", "error"}
            else "skipped"
            if "skipped" in outcome
            else "passed"
        )
    return statuses


def test_plain_pytest_agrees_with_grade(fleet, scenario_vms, tmp_path):
    names = list(SCENARIOS)
    with ThreadPoolExecutor(4) as pool:
        results = dict(
            zip(
                names,
                pool.map(
                    lambda n: plain_pytest(scenario_vms[n], fleet, tmp_path / f"{n}.xml"), names
                ),
                strict=False,
            )
        )
    for name in names:
        want = {
            check: "passed" if status == "pass" else "failed"
            for check, status in SCENARIOS[name].expected.items()
        }
        assert results[name] == want, name
