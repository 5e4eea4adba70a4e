"""`grade prove --mutants`: every check of Lab 6 is proved to fail when it should by mutants of
the lab done right, derived from what the checks read; a check weakened to pass whatever the
VM holds is named as a survivor, and the command fails.

Each run boots its own VMs on a simulator network of its own (GRADER_SIM_NET=2), beside the
session's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parents[1]
CHECK = "ftp_root_denied"
WEAKENED = '''    """root cannot use FTP."""
    with contextlib.suppress(Exception):
        listed_users(host, lab.paths.ftpusers, "root")
'''


def prove(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GRADER_SIM_NET": "2", "GRADER_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "grader", "prove", "--mutants", *args],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_every_check_of_lab6_is_killed_by_the_mutants_of_what_it_read(tmp_path):
    run = prove(tmp_path, "--format", "json")
    assert run.returncode == ExitStatus.OK, run.stdout[-3000:] + run.stderr[-3000:]
    matrix = json.loads(run.stdout)
    assert matrix["survivors"] == [] and matrix["problems"] == []
    assert all(matrix["killed"].values()) and len(matrix["killed"]) == 20
    assert not [m for m in matrix["mutants"] if m["error"] or m["not_applied"]]
    killers = {m["id"]: m for m in matrix["mutants"] if m["id"] in matrix["killed"][CHECK]}
    described = [m["description"] for m in killers.values()]
    assert "/etc/ftpusers removed" in described  # the file gone
    assert any("commented out (root)" in d for d in described)  # root's line, not another
    for mutant in matrix["mutants"]:  # a change to ftpusers loses this check's mark, no other
        if mutant["id"].startswith("ftpusers:"):
            assert set(mutant["changed"] or {}) <= {CHECK}, mutant
    # a line of another user commented out changes nothing: a gap the author judges harmless
    assert any(g.startswith("ftpusers:") and g.endswith(":commented") for g in matrix["gaps"])
    overridden = next(
        m for m in matrix["mutants"] if "anonymous_enable=YES added" in m["description"]
    )
    assert overridden["changed"] == {"vsftpd_anonymous_disabled": "fail"}  # the last one counts


def test_a_check_that_passes_whatever_the_vm_holds_survives(tmp_path):
    pack = tmp_path / "weakened"
    pack.mkdir()
    shutil.copy(PROJECT / "rubric.toml", pack / "rubric.toml")
    shutil.copytree(
        PROJECT / "checks", pack / "checks", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(PROJECT / "scenarios", pack / "scenarios",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    ftp = pack / "checks" / "test_ftp.py"
    head, found, _ = ftp.read_text().partition("def test_ftp_root_denied(host, lab):")
    assert found  # the last function of the file, replaced by one that reads and decides nothing
    ftp.write_text(f"import contextlib\n{head}{found}\n{WEAKENED}")
    run = prove(tmp_path, "--only", CHECK, "--rubric", str(pack / "rubric.toml"))
    assert run.returncode == ExitStatus.NOT_ALL_PASSED, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"survives: {CHECK} passes with every mutant" in run.stdout
    assert "check(s) no mutant made fail" in run.stdout
