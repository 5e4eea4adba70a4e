"""A pack written outside the repository, the README's own (a rubric, a checks folder of plain
testinfra tests, some using grader.toolkit, most only testinfra's own modules, and a probe kind
of its own, taken from the README's code blocks), grades a simulated VM and regrades from its
archive, with no file of the grader changed; and is proved with `grade prove --mutants` live
(`--host`, on a VM that stands in for an instructor's throwaway VM, which ends as it started)
and on the simulator, with mutants derived from what testinfra's modules asked: every check is
killed but the one only a mutant cutting the grader's way in could fail, and a check weakened
to pass whatever the VM holds is named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from scenarios import SCENARIOS as SCENARIOS_OF_LAB6

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
    assert sorted(written) == ["probes.py", "rubric.toml", "test_ssh.py", "test_system.py"], written
    return folder / "rubric.toml"


@pytest.fixture
def pack(tmp_path) -> Path:
    """The README's pack and one check more."""
    rubric = readme_pack(tmp_path / "tinylab")
    rubric.write_text(rubric.read_text() + EXTRA_RUBRIC)
    (rubric.parent / "checks" / "test_extra.py").write_text(EXTRA_CHECKS)
    return rubric


def test_a_pack_from_outside_grades_and_regrades(grade, fleet, scenario_vms, pack, tmp_path):
    vm = scenario_vms["complete"]  # Lab 6 done right: telnet on, bob not in mail, motd Debian's
    out = tmp_path / "out"
    run = grade(
        "--host", vm.address, "--identity", str(fleet.identity), "--rubric", str(pack),
        "--format", "json", "--out", str(out),
    )  # fmt: skip
    report = run.report
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "banner": "pass",
        "motd": "fail",  # Debian's message of the day says nothing of the tiny lab
        "bob_account": "pass",
        "bob_reads_mail": "fail",
        "no_guest": "pass",
        "bob_home_private": "fail",  # 755, as useradd makes it
        "ftpusers_root": "pass",
        "inetd_running": "pass",
        "pop3_listening": "pass",
        "inetd_installed": "pass",
        "inetd_enabled": "pass",
        "no_telnet": "fail",
    }
    assert report["score"] == 9 and report["max_score"] == 13
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
    assert shown.exit == 0 and "Total 13 points in 12 items" in shown.stdout


#: The tiny lab done right, on a simulated VM fresh or of Lab 6 done right: what the
#: instructor's throwaway VM holds
DONE_RIGHT = r"""
id bob >/dev/null 2>&1 || useradd -m -s /bin/bash bob
usermod -a -G mail bob && chown bob:bob /home/bob && chmod 700 /home/bob
grep -qx root /etc/ftpusers 2>/dev/null || echo root >> /etc/ftpusers
rm -f /etc/motd && printf 'Welcome to the VM of the tiny lab.\n' > /etc/motd
if ! ss -Hltn 'sport = :110' | grep -q .; then
    printf 'pop3 stream tcp nowait root /usr/sbin/tcpd /usr/sbin/popa3d\n' > /etc/inetd.conf
    /usr/sbin/inetd
    for _ in $(seq 100); do ss -Hltn 'sport = :110' | grep -q . && break; sleep 0.1; done
fi
"""
#: The tiny lab's scenarios for the simulator: its reference, the lab done right
SCENARIOS = f"""
from grader.sim import Scenario

DONE_RIGHT = {DONE_RIGHT!r}


def done_right(vm):
    vm.sh(DONE_RIGHT)


SCENARIOS = {{"complete": Scenario("complete", "the tiny lab done right", done_right, {{}})}}
TOOLS = ("inetd",)
"""
#: What a proof must leave as it found it: the files its mutants change (modes, owners,
#: contents), the enabling links, what listens, what runs (names, not pids)
STATE = r"""
for f in /etc/motd /etc/ftpusers /etc/passwd /etc/shadow /etc/group /etc/gshadow \
         /var/lib/dpkg/status /home/bob; do
    stat -c '%n %F %a %U %G %s %Y' "$f"; [ -d "$f" ] || sha256sum "$f"
done
ls -lA /etc/systemd/system/multi-user.target.wants/ /etc/rc2.d | grep -v '^total'
ls -A /etc /root /home /home/bob
ss -Hltnu | awk '{print $1, $2, $5}' | sort
ps -e -o comm=,args= | grep -v -e '^ps ' -e '^sort ' -e '^bash ' | sort
"""
#: The check that only sshd stopped could make fail: proved nowhere, and named so
ONLY_THE_WAY_IN = "banner"
WEAKENED = '''
def test_bob_home_private(host):
    """/home/bob is bob's, closed to others."""
    host.file("/home/bob").is_directory  # asks, and decides nothing
'''


def _state(vm) -> str:
    """The VM's STATE, once the grader's last login has ended (sshd's process of a session
    lingers a moment after the client hangs up; one that stays is a difference)."""
    vm.sh("for _ in $(seq 50); do pgrep -f 'sshd: [^ ]*@' >/dev/null || break; sleep 0.2; done")
    return vm.sh(STATE).stdout


def _verdicts(run) -> dict[str, str]:
    return {c["id"]: c["status"] for c in run.report["checks"]}


def _proved_but_the_way_in(matrix: dict) -> None:
    """Every check killed, by what its testinfra modules asked, but the one only a mutant
    cutting the grader's way in could fail, named "not proved"."""
    assert matrix["problems"] == [], matrix["problems"]
    killed = {c for c, by in matrix["killed"].items() if by}
    assert matrix["survivors"] == [ONLY_THE_WAY_IN], matrix["survivors"]
    assert set(matrix["not_proved"]) == {ONLY_THE_WAY_IN}
    assert "way in" in matrix["not_proved"][ONLY_THE_WAY_IN]
    assert killed == set(matrix["killed"]) - {ONLY_THE_WAY_IN}

    def killers(check: str) -> set[str]:
        return set(matrix["killed"][check])

    assert {"user:bob:removed", "user:bob:shell", "user:bob:home"} <= killers("bob_account")
    assert {"member:bob:mail:removed", "member:bob:sudo:added"} <= killers("bob_reads_mail")
    assert "user:guest:added" in killers("no_guest")
    assert {"bob/:writable", "bob/:readable", "bob/:owner", "bob/:group",
            "bob/:removed", "bob/:file"} <= killers("bob_home_private")  # fmt: skip
    assert any(k.startswith("ftpusers:") and k.endswith(":commented")
               for k in killers("ftpusers_root"))  # fmt: skip
    assert "process:inetd:stopped" in killers("inetd_running")
    assert {"process:inetd:stopped", "process:inetd:loopback"} <= killers("pop3_listening")
    assert "package:openbsd-inetd:absent" in killers("inetd_installed")
    assert "service:inetd:disabled" in killers("inetd_enabled")
    assert "motd:removed" in killers("motd")
    # a change that no command a check ran answers otherwise is equivalent, and said so
    assert "ftpusers:world" in matrix["equivalent"], matrix["equivalent"]


@pytest.fixture
def tiny_vm(fleet, tmp_path):
    """A VM of the test's own, of Lab 6 done right, prepared as the tiny lab done right."""
    name = f"tiny-{tmp_path.name[-20:]}"
    vm = fleet.boot([(name, SCENARIOS_OF_LAB6["complete"])])[name]
    vm.sh(DONE_RIGHT)
    yield vm
    vm.close()


def test_the_readme_pack_is_proved_live_and_the_vm_ends_as_it_began(
    grade, fleet, tiny_vm, tmp_path
):
    vm = tiny_vm
    rubric = readme_pack(tmp_path / "tinylab")
    before = _state(vm)
    connect = ["--host", vm.address, "--rubric", str(rubric), "--identity", str(fleet.identity)]
    graded = grade(*connect, "--format", "json")
    verdicts = _verdicts(graded)
    assert set(verdicts.values()) == {"pass"}, verdicts

    run = grade("prove", "--mutants", *connect, "--format", "json")
    matrix = json.loads(run.stdout)
    assert matrix["reference"] == f"live:{vm.address}", run.stderr[-3000:]
    _proved_but_the_way_in(matrix)
    assert run.exit == ExitStatus.NOT_ALL_PASSED  # banner is not proved here
    kept_back = {m["id"]: m["not_applied"] for m in matrix["mutants"] if m["not_applied"]}
    assert "way in" in kept_back["port22:stopped"]
    assert "way in" in kept_back["process:sshd:stopped"]
    # sendmail rewrote its arguments (its title): it could not be started again as it was
    assert any("cannot be undone" in why for m, why in kept_back.items() if "sendmail" in m)

    # the VM ends as it began: the same files, links, listeners, daemons and verdicts
    assert _state(vm) == before
    assert _verdicts(grade(*connect, "--format", "json")) == verdicts


def test_the_readme_pack_is_proved_on_the_simulator_and_a_weakened_check_is_named(tmp_path):
    rubric = readme_pack(tmp_path / "tinylab")
    (rubric.parent / "scenarios.py").write_text(SCENARIOS)
    run = _prove(tmp_path, "--rubric", str(rubric), "--format", "json")
    matrix = json.loads(run.stdout)
    assert matrix["reference"] == "complete", run.stderr[-3000:]
    _proved_but_the_way_in(matrix)
    assert run.returncode == ExitStatus.NOT_ALL_PASSED

    checks = rubric.parent / "checks" / "test_system.py"
    text = checks.read_text()
    start = text.index("def test_bob_home_private")
    end = text.index("def test_ftpusers_root")
    checks.write_text(text[:start] + WEAKENED.lstrip() + "\n\n" + text[end:])
    weakened = _prove(tmp_path, "--rubric", str(rubric), "--only", "bob_home_private")
    assert weakened.returncode == ExitStatus.NOT_ALL_PASSED, weakened.stderr[-3000:]
    assert "survives: bob_home_private passes with every mutant" in weakened.stdout


def _prove(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`grade prove --mutants` on a simulator network of its own beside the session's."""
    net = int(os.environ.get("GRADER_SIM_NET") or 0)
    env = {**os.environ, "GRADER_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "grader", "prove", "--mutants", *args,
         "--sim-network", f"198.19.{50 + net}.0/24"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
