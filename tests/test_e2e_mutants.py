"""`grade prove --mutants`: every check of Lab 6 is proved to fail when it should by mutants of
the lab done right, derived from what the checks read; a check weakened to pass whatever the
VM holds is named as a survivor, and the command fails.

Each run boots its own VMs on a simulator network of its own (--sim-network), beside the
session's. The live proofs (`--host`) run on a VM of the session's, one of their own: a proof
whose connection is lost while a mutant is applied leaves the original on the VM and says
where; sshd's configuration, even reached through a symbolic link, is changed only while a
second login still opens with the change; what the grader's own login needs is changed only
where the VM's owner allows it (--allow), and a change with which no second login opens is
undone at once, through the open connection."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from scenarios import SCENARIOS
from tests.test_e2e_pack import DONE_RIGHT, readme_pack

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parents[1]
CHECK = "ftp_root_denied"
WEAKENED = '''    """root cannot use FTP."""
    with contextlib.suppress(Exception):
        listed_users(host, lab.paths.ftpusers, "root")
'''


def prove(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`grade prove --mutants` on a simulator network of its own beside the session's."""
    net = int(os.environ.get("GRADER_SIM_NET") or 0)
    env = {**os.environ, "GRADER_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "grader", "prove", "--mutants", *args,
         "--sim-network", f"198.19.{60 + net}.0/24"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def test_every_check_of_lab6_is_killed_by_the_mutants_of_what_it_read(tmp_path):
    run = prove(tmp_path, "--format", "json")
    assert run.returncode == ExitStatus.OK, run.stdout[-3000:] + run.stderr[-3000:]
    matrix = json.loads(run.stdout)
    assert matrix["survivors"] == [] and matrix["problems"] == []
    assert all(matrix["killed"].values()) and len(matrix["killed"]) == 20
    assert not [m for m in matrix["mutants"] if m["error"] or m["not_applied"]]
    # every check is killed by the first round (files read safely, ports, the pack's own): no
    # mutant of what the checks' commands asked is needed, and the proof is as it was
    assert len(matrix["mutants"]) == 86, [m["id"] for m in matrix["mutants"]]
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


MOTD = "Welcome to the VM of the tiny lab."


@pytest.fixture
def tiny_vm(fleet, tmp_path):
    """A VM of the test's own, prepared as the README's tiny lab done right, and its pack."""
    name = f"tiny-{tmp_path.name[-20:]}"
    vm = fleet.boot([(name, SCENARIOS["complete"])])[name]
    vm.sh(DONE_RIGHT)
    assert vm.sh("cat /etc/motd").stdout == MOTD + "\n"
    yield vm, readme_pack(tmp_path / "tinylab")
    vm.close()


def test_a_live_proof_that_loses_its_vm_mid_mutant_keeps_the_original_there_and_says_where(
    grade, fleet, tiny_vm
):
    vm, rubric = tiny_vm
    connect = ["--host", vm.address, "--rubric", str(rubric), "--identity", str(fleet.identity)]
    assert grade(*connect, "--format", "json").report["score"] == 12  # the lab done right
    stop = threading.Event()

    def cut() -> None:
        """As soon as a mutant has kept its copy of /etc/motd, the VM drops every SSH session
        (the proof's own among them), as a VM that reboots or loses its network does."""
        while not stop.is_set():
            kept = vm.sh(f"grep -rslxF {shlex.quote(MOTD)} /root/.grade-prove*", check=False)
            if kept.stdout.strip():
                vm.sh("pkill -f '^sshd(-session)?: root' || true")
                return
            time.sleep(0.05)

    cutter = threading.Thread(target=cut, daemon=True)
    cutter.start()
    try:
        run = grade("prove", "--mutants", *connect, "--only", "motd", "--format", "json")
    finally:
        stop.set()
        cutter.join(timeout=30)
    assert run.exit == ExitStatus.NOT_ALL_PASSED, run.stdout[-3000:] + run.stderr[-3000:]
    matrix = json.loads(run.stdout)
    original = matrix["originals_kept"][vm.address]["/etc/motd"]
    assert original.startswith("/root/.grade-prove/motd_removed-")  # the first mutant's own
    # said where: in the problems (and on the terminal), for the undo that failed and at the end
    undo = next(p for p in matrix["problems"] if "undoing /etc/motd removed failed" in p)
    assert f"the original of /etc/motd is kept there at {original}" in undo
    assert any(original in p and "kept there" in p for p in matrix["problems"] if p != undo)
    assert f"/etc/motd at {original}" in run.stderr + run.stdout
    # no mutant after it: the VM was not the reference any more
    assert [m["id"] for m in matrix["mutants"] if m["error"] and "not applied" in m["error"]]
    # a proof again now is refused: it would find the VM not as the lab done right, and the
    # originals are the only copy
    refused = grade("prove", "--mutants", *connect, "--only", "motd")
    assert refused.exit == ExitStatus.NOT_GRADED
    assert "/root/.grade-prove holds what an earlier proof kept there" in refused.stdout
    assert vm.sh("ls -A /root/.grade-prove").stdout.split() == [original.rsplit("/", 1)[1]]
    # the original is there, whole, and putting it back as the message says restores the VM
    assert vm.sh(f"cat -- {shlex.quote(original)}").stdout == MOTD + "\n"
    vm.sh(f"cp -a -- {shlex.quote(original)} /etc/motd && rm -rf /root/.grade-prove")
    again = grade(*connect, "--format", "json")
    assert {c["id"]: c["status"] for c in again.report["checks"]}["motd"] == "pass"


ALT_RUBRIC = """
[[sections.items]]
id = "alt_config"
points = 1
hint = "Keep sshd's configuration where /etc/alt leads."
"""
ALT_CHECK = """
from grader.toolkit import read_file


def test_alt_config(host):
    \"""sshd's configuration is there, read through /etc/alt.\"""
    config = read_file(host, "/etc/alt/sshd_config")
    assert config is not None and config.text, "/etc/alt/sshd_config is missing or empty"
"""


def test_sshds_configuration_even_through_a_link_is_changed_only_while_a_second_login_opens(
    grade, fleet, tiny_vm
):
    vm, rubric = tiny_vm
    rubric.write_text(rubric.read_text() + ALT_RUBRIC)
    (rubric.parent / "checks" / "test_alt.py").write_text(ALT_CHECK)
    vm.sh("ln -s ssh /etc/alt")  # /etc/alt/sshd_config is /etc/ssh/sshd_config
    state = (
        "sha256sum /etc/ssh/sshd_config; stat -c '%a %U %s %Y' /etc/ssh/sshd_config; ls -A /root"
    )
    before = vm.sh(state).stdout
    connect = ["--host", vm.address, "--rubric", str(rubric), "--identity", str(fleet.identity)]
    run = grade("prove", "--mutants", *connect, "--only", "alt_config", "--format", "json")
    matrix = json.loads(run.stdout)
    mutants = {m["id"]: m for m in matrix["mutants"]}
    assert {"sshd_config:removed", "sshd_config:emptied"} <= set(mutants), run.stderr[-3000:]
    # sshd reads its configuration when it starts, not at each login: a second login opened
    # with each change, which was graded (and the check that reads it killed)
    assert all(m["not_applied"] is None and m["error"] is None for m in mutants.values())
    assert {"sshd_config:removed", "sshd_config:emptied"} <= set(matrix["killed"]["alt_config"])
    assert matrix["problems"] == [] and matrix["originals_kept"] == {}
    assert run.exit == ExitStatus.OK, run.stdout[-3000:] + run.stderr[-3000:]
    assert vm.sh(state).stdout == before  # sshd's configuration as it was, no backup left


KEYS_RUBRIC = """
[[sections.items]]
id = "key_kept"
points = 1
hint = "Keep root's authorized_keys."
"""
KEYS_CHECK = """
from grader.toolkit import read_file


def test_key_kept(host):
    \"""root's authorized_keys holds a key.\"""
    keys = read_file(host, "/root/.ssh/authorized_keys")
    assert keys is not None and "ssh-" in keys.text, "root's authorized_keys holds no key"
"""


def test_the_logins_own_keys_change_only_where_allowed_and_a_change_that_shuts_the_door_is_undone_at_once(  # noqa: E501
    grade, fleet, tiny_vm
):
    vm, rubric = tiny_vm
    rubric.write_text(rubric.read_text() + KEYS_RUBRIC)
    (rubric.parent / "checks" / "test_keys.py").write_text(KEYS_CHECK)
    state = "sha256sum /root/.ssh/authorized_keys; stat -c '%a %U %s %Y' /root/.ssh/authorized_keys"
    before = vm.sh(state).stdout
    connect = ["--host", vm.address, "--rubric", str(rubric), "--identity", str(fleet.identity)]
    held = json.loads(grade("prove", "--mutants", *connect, "--only", "key_kept",
                            "--format", "json").stdout)  # fmt: skip
    assert held["allowed"] == [] and "way in" in held["not_proved"]["key_kept"]
    assert all("way in" in (m["not_applied"] or "") for m in held["mutants"])

    run = grade("prove", "--mutants", *connect, "--only", "key_kept", "--allow", "/root/.ssh",
                "--format", "json")  # fmt: skip
    matrix = json.loads(run.stdout)
    assert matrix["allowed"] == ["/root/.ssh"], run.stderr[-3000:]
    mutants = {m["id"]: m for m in matrix["mutants"]}
    # without its key, or with no key, no login opens: each such change undone at once
    for shut in ("authorized_keys:removed", "authorized_keys:emptied",
                 "authorized_keys:1:commented"):  # fmt: skip
        assert "a second login did not open" in (mutants[shut]["not_applied"] or ""), shut
        assert mutants[shut]["changed"] is None
    assert matrix["problems"] == [], matrix["problems"]
    assert vm.sh(state).stdout == before  # the keys as they were
    assert grade(*connect, "--format", "json").report["score"] == 13  # and the door open
    text = grade("prove", "--mutants", *connect, "--only", "key_kept", "--allow", "/root/.ssh")
    assert "allowed by its owner (--allow): /root/.ssh" in text.stdout
