"""A pack written outside the repository, the README's own (a rubric, a checks folder of plain
testinfra tests using grader.toolkit, and a probe kind of its own, taken from the README's code
blocks), grades a simulated VM and regrades from its archive, with no file of the grader
changed; and is proved live with `grade prove --mutants --host` on a VM that stands in for an
instructor's throwaway VM, which ends as it started."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus

pytestmark = pytest.mark.vm

README = Path(__file__).resolve().parents[1] / "README.md"
#: A fenced block of the README whose first line names a file of the tiny pack
_BLOCK = re.compile(r"^```\w*\n# (tinylab/[\w/.]+)[^\n]*\n(.*?)^```", re.M | re.S)

#: What this test adds to the README's pack: a check that fails on the VMs of Lab 6 done right
EXTRA_RUBRIC = """
[[sections.items]]
id = "no_telnet"
points = 1
hint = "Nothing should listen on port 23."
"""
EXTRA_CHECKS = '''
from grader.toolkit import listeners


def test_no_telnet(host):
    """Nothing listens on port 23."""
    assert not listeners(host, 23), "something listens on port 23"
'''


def readme_pack(folder: Path) -> Path:
    """The README's smallest complete pack, written from its code blocks into ``folder``."""
    written = []
    for name, text in _BLOCK.findall(README.read_text()):
        path = folder / name.removeprefix("tinylab/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path.name)
    assert sorted(written) == ["probes.py", "rubric.toml", "test_ssh.py"], written
    return folder / "rubric.toml"


@pytest.fixture
def pack(tmp_path) -> Path:
    """The README's pack and one check more."""
    rubric = readme_pack(tmp_path / "tinylab")
    rubric.write_text(rubric.read_text() + EXTRA_RUBRIC)
    (rubric.parent / "checks" / "test_extra.py").write_text(EXTRA_CHECKS)
    return rubric


def test_a_pack_from_outside_grades_and_regrades(grade, fleet, scenario_vms, pack, tmp_path):
    vm = scenario_vms["complete"]  # telnet is on there: the pack's third check fails
    out = tmp_path / "out"
    run = grade(
        "--host", vm.address, "--identity", str(fleet.identity), "--rubric", str(pack),
        "--format", "json", "--out", str(out),
    )  # fmt: skip
    report = run.report
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "sshd_running": "pass",
        "banner": "pass",
        "motd": "fail",  # Debian's message of the day says nothing of the tiny lab
        "no_telnet": "fail",
    }
    assert report["score"] == 3 and report["max_score"] == 5
    banner = next(c for c in report["checks"] if c["id"] == "banner")
    assert banner["title"] == "Port 22 greets as OpenSSH"  # the docstring is what students read
    assert banner["evidence"][0]["source"].startswith("first line of")
    again = grade("regrade", str(out), "--out", str(tmp_path / "again"))
    assert again.exit == ExitStatus.OK, again.stderr
    regraded = json.loads((tmp_path / "again" / f"{vm.address}.json").read_text())
    assert regraded["checks"] == report["checks"]  # the pack's own probe kind replayed too
    listed = grade("labs")
    assert "tinylab" not in listed.stdout  # not on the search path unless told
    shown = grade("rubric", str(pack))
    assert shown.exit == 0 and "Total 5 points in 4 items" in shown.stdout


def test_the_readme_pack_is_proved_live_and_the_vm_ends_as_it_started(
    grade, fleet, scenario_vms, tmp_path
):
    vm = scenario_vms["complete"]  # shared: the proof must leave it exactly as it found it
    rubric = readme_pack(tmp_path / "tinylab")
    original = vm.sh("cat /etc/motd").stdout
    # the instructor's throwaway VM, prepared as the tiny lab done right
    vm.sh("rm -f /etc/motd && printf 'Welcome to the VM of the tiny lab.\\n' > /etc/motd")
    # what a mutant of it changes, and what it may leave behind (names only: the VM's
    # daemons may touch other files of /etc while the proof runs)
    state = "sha256sum /etc/motd; stat -c '%a %U %G %s %Y' /etc/motd; ls -A /etc /root; ss -Hltn"
    try:
        before = vm.sh(state).stdout
        connect = ["--host", vm.address, "--rubric", str(rubric), "--identity",
                   str(fleet.identity)]  # fmt: skip
        graded = grade(*connect, "--format", "json")
        verdicts = {c["id"]: c["status"] for c in graded.report["checks"]}
        assert verdicts == {"sshd_running": "pass", "banner": "pass", "motd": "pass"}

        run = grade("prove", "--mutants", *connect, "--format", "json")
        matrix = json.loads(run.stdout)
        assert matrix["reference"] == f"live:{vm.address}" and matrix["problems"] == []
        killers = {m["id"]: m["description"] for m in matrix["mutants"]}
        assert {killers[k] for k in matrix["killed"]["motd"]} >= {
            "/etc/motd removed",
            "/etc/motd emptied",
            "/etc/motd replaced by a symbolic link to a copy of it",  # read_file refuses it
        }
        # the banner's only mutant stops sshd, the grader's way in: not applied, not proved
        assert "way in" in matrix["not_proved"]["banner"]
        applied = [m for m in matrix["mutants"] if not m["not_applied"]]
        assert applied and all(m["id"].startswith("motd:") for m in applied)
        # what sshd_running reads (the process list) no mutant changes: a survivor, named
        assert matrix["survivors"] == ["sshd_running", "banner"]
        assert run.exit == ExitStatus.NOT_ALL_PASSED

        only = grade("prove", "--mutants", *connect, "--only", "motd")
        assert only.exit == ExitStatus.OK, only.stdout + only.stderr
        assert "every check fails when it should" in only.stdout
        assert "Only ever a throwaway VM of your own" in only.stdout

        # the VM ends as it started: the same files, listeners and verdicts
        assert vm.sh(state).stdout == before
        again = grade(*connect, "--format", "json")
        assert {c["id"]: c["status"] for c in again.report["checks"]} == verdicts
    finally:
        vm.sh(f"rm -f /etc/motd /etc/motd.link-target && printf %s {shlex.quote(original)} "
              "> /etc/motd")  # fmt: skip
