"""A pack written outside the repository, with only what the README documents (a rubric, a
checks folder of plain testinfra tests using grader.toolkit, and a probe kind of its own),
grades a simulated VM and regrades from its archive, with no file of the grader changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus

pytestmark = pytest.mark.vm

RUBRIC = """
title = "A tiny lab"

[vars.expected_banner]
default = "SSH-2.0-OpenSSH"

[[sections]]
id = "ssh"
title = "The SSH server"

[[sections.items]]
id = "sshd_running"
points = 1
hint = "Start sshd."

[[sections.items]]
id = "banner"
points = 2
depends = ["sshd_running"]
hint = "Port 22 should greet as OpenSSH does."

[[sections.items]]
id = "no_telnet"
points = 1
hint = "Nothing should listen on port 23."
"""

CHECKS = '''
from grader.toolkit import listeners, processes


def test_sshd_running(host):
    """sshd runs."""
    assert any(p.comm == "sshd" for p in processes(host).values()), "sshd is not running"


def test_banner(lab, outside):
    """Port 22 greets as OpenSSH."""
    banner = outside.ssh_banner(22)
    assert banner.line.startswith(lab.var("expected_banner")), f"port 22 said {banner.line!r}"


def test_no_telnet(host):
    """Nothing listens on port 23."""
    assert not listeners(host, 23), "something listens on port 23"
'''

PROBES = '''
from dataclasses import dataclass

from grader.probes import Probe
from grader.probes.net import Conversation


@dataclass(frozen=True)
class Banner:
    line: str


class SshBanner(Probe):
    """outside.ssh_banner(port): the first line a port says (an SSH server's version)."""

    name = "ssh_banner"
    Answer = Banner

    def ask(self, outside, port=22):
        with Conversation(
            outside.address, port, outside.timeout, outside.reply_timeout, outside.deadline
        ) as talk:
            line = talk.makefile("rb").readline(200)
        return Banner(line.decode(errors="replace").strip())

    def shown(self, outside, answer, port=22):
        return f"first line of {outside.address}:{port}", answer.line
'''


@pytest.fixture
def pack(tmp_path) -> Path:
    folder = tmp_path / "tinylab"
    (folder / "checks").mkdir(parents=True)
    (folder / "rubric.toml").write_text(RUBRIC)
    (folder / "checks" / "test_ssh.py").write_text(CHECKS)
    (folder / "checks" / "probes.py").write_text(PROBES)
    return folder / "rubric.toml"


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
        "no_telnet": "fail",
    }
    assert report["score"] == 3 and report["max_score"] == 4
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
    assert shown.exit == 0 and "Total 4 points in 3 items" in shown.stdout
