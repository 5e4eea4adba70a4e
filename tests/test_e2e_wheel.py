"""The grader as course staff install it: a wheel built from this repository, installed into a
fresh virtual environment, run from an empty folder (nothing of the clone on the path). It
proves every check of Lab 7 with mutants on its simulated VMs, boots them with `grade sim
up`, and runs Lab 7's checks under plain pytest through its plugin; `grade sim down` removes
them.

It runs on a simulator network of its own (GRADER_SIM_NET=1), beside the session's VMs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labs.lab7.scenarios import COURSE_SECRET
from labs.lab7.scenarios import SCENARIOS as LAB7

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parents[1]
STATE = Path("/run/labsim/state1.json")  # what `grade sim up` leaves on network 1


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the grader's wheel (and its dependencies) installed."""
    work = tmp_path_factory.mktemp("wheel")
    dist, venv = work / "dist", work / "venv"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(PROJECT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    wheel = next(dist.glob("lab_grader-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv


def run(command: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRADER_SIM_NET": "1", "GRADER_CACHE_DIR": str(cwd / "cache")}
    env.pop("PYTHONPATH", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def test_the_installed_grader_proves_lab7_and_runs_its_checks_under_plain_pytest(
    installed: Path, tmp_path: Path
) -> None:
    grade = str(installed / "bin" / "grade")
    # every check of Lab 7 proved to fail when it should (each scenario's verdicts are
    # test_e2e_lab7's): the reference at full marks, mutants of it, each check killed
    proved = run([grade, "prove", "--mutants", "--lab", "lab7", "--format", "json"], tmp_path)
    assert proved.returncode == 0, proved.stdout[-3000:] + proved.stderr[-3000:]
    result = json.loads(proved.stdout)
    assert "site-packages/grader/_labs/lab7/rubric.toml" in result["rubric"]  # the wheel's own
    assert result["survivors"] == [] and result["problems"] == []
    assert set(result["killed"]) == set(LAB7["complete"].expected)
    assert all(result["killed"].values()), result["killed"]
    own = {m["id"] for m in result["mutants"]} - {"port53:stopped", "port80:stopped"}
    assert len(own) >= 8  # the pack's own kinds: a record's address, the serial set back ...

    up = run([grade, "sim", "up", "complete", "untouched", "--lab", "lab7"], tmp_path)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "198.18.1." in up.stdout  # network 1's addresses, not the session's
        state = json.loads(STATE.read_text())
        key = Path(state["workdir"]) / "id_grader"
        checks = next(installed.glob("lib/python*/site-packages/grader/_labs/lab7/checks"))
        for vm in state["vms"]:
            junit = tmp_path / f"{vm['name']}.xml"
            plain = run(
                [str(installed / "bin" / "python"), "-m", "pytest", "-q", "-p",
                 "no:cacheprovider", str(checks),
                 f"--hosts=paramiko://root@{vm['address']}?ssh_identity_file={key}",
                 f"--lab-var=course_secret={COURSE_SECRET}", f"--lab-var=student={vm['name']}",
                 f"--junitxml={junit}"],
                tmp_path,
            )  # fmt: skip
            assert junit.exists(), plain.stdout[-3000:] + plain.stderr[-3000:]
            outcomes = {
                case.get("name", "").split("[")[0].removeprefix("test_"): (
                    "failed" if {c.tag for c in case} & {"failure", "error"} else "passed"
                )
                for case in ET.parse(junit).iter("testcase")
            }
            want = LAB7[vm["name"]].expected
            assert outcomes == {c: "passed" if s == "pass" else "failed" for c, s in want.items()}
    finally:
        down = run([grade, "sim", "down"], tmp_path)
    assert down.returncode == 0 and "Removed 2 simulated VM(s)" in down.stdout, down.stdout
    assert not STATE.exists()
