"""The lab author's path, end to end: `grade new-lab` makes a pack that is proved as made; the
guide's tutorial (its pack taken from the page's code blocks, as the tiny lab is taken from
the README's) adds checks that run commands (getent, visudo, sshd -T) and one on the process
list, and a VM where inetd died unreaped fails "inetd runs"; `grade prove --expect` passes on
the reference, handed-out and inetd-died VMs and fails naming the check when one expectation
is changed; the tutorial's pack is proved with the mutants derived from its commands (the
user getent asked about, the files visudo and sshd -T read, each daemon of the process list).

The VMs boot on a simulator network of the test's own (--sim-network), beside the session's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from grader.sim.vm import NET

pytestmark = pytest.mark.vm
TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "guide" / "tutorial.md"
#: A fenced block of the tutorial whose first line names a file of its pack
_BLOCK = re.compile(
    r"^```\w*\n# (mylab/[\w/.]+)( \(added at its end\))?[^\n]*\n(.*?)^```", re.M | re.S
)
#: A network of these tests' own: not the session's (its fleet holds that one's lock)
NETWORK = ["--sim-network", f"198.19.{40 + NET}.0/24"]


def tutorial_pack(grade, folder: Path) -> Path:
    """The tutorial's pack: `grade new-lab`, then each of the page's blocks written or added."""
    made = grade("new-lab", str(folder), "--title", "Accounts and services")
    assert made.exit == ExitStatus.OK, made.stderr
    written = []
    for name, added, text in _BLOCK.findall(TUTORIAL.read_text()):
        path = folder / name.removeprefix("mylab/")
        path.write_text((path.read_text() if added else "") + text)
        written.append(path.name)
    assert sorted(written) == ["expected.toml", "rubric.toml", "scenarios.py", "test_accounts.py"]
    return folder / "rubric.toml"


def test_a_new_lab_is_proved_as_made(grade, tmp_path):
    rubric = tmp_path / "newlab" / "rubric.toml"
    made = grade("new-lab", str(rubric.parent))
    assert made.exit == ExitStatus.OK and "grade prove --expect" in made.stdout
    shown = grade("rubric", str(rubric))
    assert shown.exit == ExitStatus.OK and "Total 4 points in 3 items" in shown.stdout
    assert "Warning" not in shown.stdout  # every check has its docstring
    proved = grade("prove", "--rubric", str(rubric), *NETWORK, "--format", "json")
    assert proved.exit == ExitStatus.OK, proved.stdout + proved.stderr
    matrix = grade("prove", "--mutants", "--rubric", str(rubric), *NETWORK, "--format", "json")
    assert matrix.exit == ExitStatus.OK, matrix.stdout[-3000:] + matrix.stderr[-3000:]
    assert json.loads(matrix.stdout)["survivors"] == []
    expected = grade("prove", "--expect", "--rubric", str(rubric), *NETWORK)
    assert expected.exit == ExitStatus.OK, expected.stdout + expected.stderr
    assert "every verdict as expected on the 2 VM(s)" in expected.stdout.replace("\n", " ")


def test_the_tutorial_pack_gives_every_verdict_expected_and_a_zombie_does_not_run(grade, tmp_path):
    rubric = tutorial_pack(grade, tmp_path / "mylab")
    proved = grade("prove", "--rubric", str(rubric), *NETWORK, "--format", "json")
    assert proved.exit == ExitStatus.OK, proved.stdout + proved.stderr
    verdicts = json.loads(proved.stdout)["graded"]
    assert verdicts["inetd_died"]["inetd_running"] == "fail"  # [inetd] <defunct> runs no more
    assert verdicts["complete"]["inetd_running"] == "pass"

    expected = grade("prove", "--expect", "--rubric", str(rubric), *NETWORK, "--format", "json")
    assert expected.exit == ExitStatus.OK, expected.stdout + expected.stderr
    found = json.loads(expected.stdout)
    assert found["as_expected"] and len(found["vms"]) == 3 and found["differences"] == []

    # one expectation changed: the command fails, naming the VM, the check and its reason
    path = rubric.parent / "expected.toml"
    path.write_text(
        path.read_text().replace('alice_sudo_rule = "skipped"', 'alice_sudo_rule = "fail"')
    )
    changed = grade("prove", "--expect", "--rubric", str(rubric), *NETWORK, "--format", "json")
    assert changed.exit == ExitStatus.NOT_ALL_PASSED
    assert json.loads(changed.stdout)["differences"] == [{
        "vm": "as handed out", "check": "alice_sudo_rule", "expected": "fail", "got": "skipped",
        "reason": json.loads(changed.stdout)["differences"][0]["reason"],
    }]  # fmt: skip
    assert "alice_account" in json.loads(changed.stdout)["differences"][0]["reason"]
    text = grade("prove", "--expect", "--rubric", str(rubric), *NETWORK)
    assert text.exit == ExitStatus.NOT_ALL_PASSED and "alice_sudo_rule" in text.stdout

    # a misspelt check is named with its line and the closest name, before any VM boots
    path.write_text(path.read_text().replace('alice_sudo_rule = "fail"', 'alice_sudo_rul = "fail"'))
    wrong = grade("prove", "--expect", "--rubric", str(rubric), *NETWORK)
    assert wrong.exit == ExitStatus.BAD_INPUT
    assert f"{path}:" in wrong.stderr and "did you mean 'alice_sudo_rule'" in wrong.stderr


def test_the_tutorial_pack_is_proved_with_derived_mutants(grade, tmp_path):
    rubric = tutorial_pack(grade, tmp_path / "mylab")
    run = grade("prove", "--mutants", "--rubric", str(rubric), *NETWORK, "--format", "json")
    matrix = json.loads(run.stdout)
    assert matrix["problems"] == [], matrix["problems"]
    assert matrix["survivors"] == [] and matrix["not_proved"] == {}, matrix["survivors"]
    assert run.exit == ExitStatus.OK, run.stderr[-3000:]
    killed = matrix["killed"]
    # from the commands: getent's user, the files visudo and sshd -T read (strace), the list
    assert {"user:alice:removed", "user:alice:shell"} <= set(killed["alice_account"])
    assert "alice:removed" in killed["alice_sudo_rule"]  # /etc/sudoers.d/alice
    assert "lab.conf:1:commented" in killed["ssh_no_passwords"]  # PasswordAuthentication no
    assert killed["inetd_running"] == ["process:inetd:stopped"]
    # what no command answers otherwise to is equivalent, not graded: a mode visudo ignores
    assert "alice:world" in matrix["equivalent"]
