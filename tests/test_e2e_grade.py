"""grade --host against simulated student VMs running the real daemons."""

from __future__ import annotations

import smtplib
import subprocess
import time

import paramiko
import pytest

from grader.base.errors import ExitStatus
from grader.machine.backend import GraderBackend
from grader.machine.ssh import KnownHosts, Target, connect, fingerprint
from scenarios import SCENARIOS, student
from tests.hostile import NOBODY

pytestmark = pytest.mark.vm


@pytest.mark.parametrize("name", ["complete", "untouched"])
def test_host_graded_with_its_exit_status(grade, fleet, scenario_vms, name):
    """`grade --host` on one VM; every scenario's verdicts, messages and evidence are checked
    once, in the class run of test_e2e_trust, which grades them all."""
    run = grade(*fleet.grade_args(scenario_vms[name]))
    statuses = {c["id"]: c["status"] for c in run.report["checks"]}
    assert statuses == SCENARIOS[name].expected
    full = run.report["score"] == run.report["max_score"] == 20
    assert run.exit == (ExitStatus.OK if full else ExitStatus.NOT_ALL_PASSED)
    assert full == (name == "complete")
    assert fleet.password not in run.stdout  # the POP3 password is a secret


def test_report_fields(grade, fleet, scenario_vms):
    vm = scenario_vms["complete"]
    report = grade(*fleet.grade_args(vm)).report
    key_line = vm.sh("ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub").stdout
    assert report["host_key"] == key_line.split()[1]
    assert report["address"] == vm.address and report["student"] is None
    assert report["graded_at"].endswith("Z") and report["duration_s"] > 0
    assert len(report["rubric"]["sha256"]) == 64
    pop3 = next(c for c in report["checks"] if c["id"] == "pop3_login")
    assert "PASS ****" in pop3["evidence"][0]["source"]


def test_text_report_shows_lost_marks_with_hints(grade, fleet, scenario_vms):
    run = grade(
        "--host", scenario_vms["inetd_not_restarted"].address, "--identity", str(fleet.identity)
    )  # no password: pop3_login is skipped
    assert run.exit == ExitStatus.NOT_ALL_PASSED
    assert "Score 15 / 20" in run.stdout
    assert "did you restart inetd?" in run.stdout
    # one cause, said once and first: its hint in the VM's own terms (the simulator is Debian)
    fix = run.stdout.split("Fix this first", 1)[1].split("Where the marks were lost")[0]
    fix = " ".join(fix.split())  # as read, whatever the terminal's width
    assert "1. inetd still runs with the old /etc/inetd.conf" in fix
    assert "pop3_listening, pop3_greets, pop3_login, time_disabled, telnet_enabled" in fix
    assert run.stdout.count("service openbsd-inetd restart") == 1
    assert "System: Debian GNU/Linux" in run.stdout


def test_missing_variable_skips_the_check(grade, fleet, scenario_vms):
    run = grade(*fleet.grade_args(scenario_vms["complete"], variables=False))
    login = next(c for c in run.report["checks"] if c["id"] == "pop3_login")
    assert login["status"] == "skipped" and "--var bob_password=" in login["message"]
    assert run.exit == ExitStatus.NOT_ALL_PASSED and run.report["score"] == 18.5


def test_json_out_dir(grade, fleet, scenario_vms, tmp_path):
    vm = scenario_vms["complete"]
    run = grade(*fleet.grade_args(vm, "--out", str(tmp_path)))
    assert (tmp_path / f"{vm.address}.json").read_text() == run.stdout


def test_nothing_there_is_unreachable_within_seconds(grade, fleet, scenario_vms):
    started = time.monotonic()
    run = grade("--host", NOBODY, "--connect-timeout", "2", "--format", "json")
    assert time.monotonic() - started < 10
    assert run.exit == ExitStatus.NOT_GRADED
    assert run.report["status"] == "unreachable" and run.report["score"] is None


def test_key_not_authorized(grade, fleet, scenario_vms, tmp_path):
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    run = grade(
        "--host", scenario_vms["complete"].address, "--identity", str(key), "--format", "json"
    )
    assert run.exit == ExitStatus.NOT_GRADED
    assert run.report["status"] == "error" and run.report["error_kind"] == "auth_failed"
    assert "authentication refused for user 'root'" in run.report["error"]


def test_host_key_trusted_on_first_use_and_change_refused(grade, fleet, scenario_vms, tmp_path):
    vm = scenario_vms["untouched"]
    known_hosts = tmp_path / "kh"
    args = fleet.grade_args(vm, "--known-hosts", str(known_hosts), variables=False)
    first = grade(*args)
    assert first.report["status"] == "graded" and vm.address in known_hosts.read_text()
    # someone else's key stored for this host: a rebuilt VM, or a machine in the middle
    other = paramiko.RSAKey.generate(2048)
    known_hosts.write_text(f"{vm.address} {other.get_name()} {other.get_base64()}\n")
    changed = grade(*args)
    assert changed.exit == ExitStatus.NOT_GRADED
    assert changed.report["error_kind"] == "host_key_changed" and changed.report["checks"] == []
    assert f"--accept-changed-host-key {vm.address}" in changed.report["error"]
    # accepting a change names the host it is for: another host's acceptance does not apply
    elsewhere = grade(*args, "--accept-changed-host-key", NOBODY)
    assert elsewhere.report["error_kind"] == "host_key_changed"
    accepted = grade(*args, "--accept-changed-host-key")  # with --host: that host
    assert accepted.report["status"] == "graded"
    assert other.get_base64() not in known_hosts.read_text()
    old = f"ssh-rsa {fingerprint(other)}"
    assert accepted.report["host_key_replaced"] == old  # the report says what it replaced
    assert grade(*args).report["status"] == "graded"  # the new key is now the trusted one


def test_password_login_keeps_the_password_secret(grade, fleet, scenario_vms, monkeypatch):
    monkeypatch.setenv("LAB_SSH_PASSWORD", fleet.password)
    run = grade(
        "--host",
        scenario_vms["complete"].address,
        "--user",
        "bob",
        "--password-env",
        "LAB_SSH_PASSWORD",
        "--format",
        "json",
    )
    assert run.report["status"] == "graded"  # as bob: logged in, though root's checks suffer
    assert fleet.password not in run.stdout + run.stderr
    needs_root = {c["id"] for c in run.report["checks"] if c["error_kind"] == "needs_root"}
    assert needs_root == {"queue_empty", "mail_bcc_root"}
    # root logs in with a key only (stock sshd): with a password, a user who may sudo
    run = grade(
        "--host", scenario_vms["complete"].address, "--user", "bob", "--sudo",
        "--password-env", "LAB_SSH_PASSWORD", "--format", "json",
        "--var", f"bob_password={fleet.password}",
    )  # fmt: skip
    assert {c["id"]: c["status"] for c in run.report["checks"]} == SCENARIOS["complete"].expected


def test_same_command_runs_once_per_host(fleet, scenario_vms, tmp_path):
    vm = scenario_vms["complete"]
    session = connect(
        Target(vm.address, identity=fleet.identity), KnownHosts(tmp_path / "kh"), timeout=5
    )
    try:
        backend = GraderBackend(session, command_timeout=10)
        command = "date +%N >> /root/ran && wc -l < /root/ran"
        first, second = backend.run(command), backend.run(command)
        assert first.stdout == second.stdout == "1\n"
        assert vm.sh("wc -l < /root/ran").stdout.strip() == "1"
    finally:
        session.close()
        vm.sh("rm -f /root/ran")


def test_command_timeout_is_a_check_error(fleet, scenario_vms, tmp_path):
    from grader.base.errors import CommandTimeout

    session = connect(
        Target(scenario_vms["complete"].address, identity=fleet.identity),
        KnownHosts(tmp_path / "kh"),
        timeout=5,
    )
    try:
        backend = GraderBackend(session, command_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            backend.run("sleep 30")
        assert time.monotonic() - started < 3
        # the session outlives the timeout (a new budget: an exec takes seconds here at times)
        assert GraderBackend(session, command_timeout=30).run("echo still here").stdout == (
            "still here\n"
        )
    finally:
        session.close()


@pytest.fixture(scope="module")
def limited_vm(fleet):
    """A VM with the lab done right, for the tests that make its sendmail refuse the grader."""
    return fleet.boot([("rate_limited", SCENARIOS["complete"])])["rate_limited"]


def test_sendmail_turning_the_grader_away_is_an_error_not_a_fail(grade, fleet, limited_vm):
    """Debian's sendmail answers 421 after 10 connections from one client in 10 minutes."""
    vm = limited_vm
    for _ in range(10):
        with smtplib.SMTP(vm.address, 25, local_hostname="test", timeout=15):
            pass
    run = grade(*fleet.grade_args(vm))
    greets = next(c for c in run.report["checks"] if c["id"] == "smtp_greets")
    assert greets["status"] == "error" and "421" in greets["message"]
    assert greets["error_kind"] == "turned_away" and not greets["lost"]
    assert "This is not a lost mark; try again in a few minutes" in greets["message"]
    assert "sendmail allows 10 connections per client in 10 minutes" in greets["message"]
    others = [c["status"] for c in run.report["checks"] if c["id"] != "smtp_greets"]
    assert others == ["pass"] * 19
    # the score is over what was checked, and says what was not: never a 0 for it
    assert run.report["score"] == 19 and run.report["unchecked"] == ["smtp_greets"]
    assert run.report["unchecked_points"] == 1
    text = grade(*fleet.grade_args(vm), "--format", "text")
    assert "19 of 19 checked; 1 point not checked" in text.stdout


def test_a_vm_too_busy_to_answer_costs_no_mark(grade, fleet, limited_vm):
    """Under load sendmail closes port 25 and says so in its process title (RefuseLA): every
    VM of a class graded at once on a shared host did. A real sendmail, told by its own
    /proc/loadavg that the load is 26."""
    vm = limited_vm
    vm.sh(
        "printf '26.00 26.00 26.00 3/300 4242\\n' > /root/loadavg && "
        "mount --bind /root/loadavg /proc/loadavg && "
        "sed -i 's/^O RefuseLA=1000/O RefuseLA=12/' /etc/mail/sendmail.cf"
    )
    vm.sh("kill $(head -n 1 /run/sendmail/mta/sendmail.pid)")
    student.wait_for(vm, "! pgrep -x sendmail-mta >/dev/null")
    vm.sh("/usr/sbin/sendmail-mta -L sm-mta -bd -q10m")
    try:
        student.wait_for(vm, "ps -eo args | grep -q '^sendmail: .*rejecting connections'")
        run = grade(*fleet.grade_args(vm))
        checks = {c["id"]: c for c in run.report["checks"]}
        for name in ("smtp_listening", "smtp_greets"):
            assert checks[name]["status"] == "error", checks[name]
            assert checks[name]["error_kind"] == "busy" and not checks[name]["lost"]
            assert "rejecting connections" in checks[name]["message"]
            assert "not a lost mark" in checks[name]["message"]
        assert checks["smtp_daemon"]["status"] == "pass"
        assert not [c for c in checks.values() if c["lost"]]
        assert run.report["unchecked_points"] == 1.5
    finally:
        vm.sh(
            "umount /proc/loadavg; sed -i 's/^O RefuseLA=12/O RefuseLA=1000/' "
            "/etc/mail/sendmail.cf; pkill -x sendmail-mta || true; pkill -f '^sendmail: ' || true"
        )


def test_a_large_output_is_read_to_its_end(fleet, scenario_vms, tmp_path):
    """sshd may send a command's exit status before the last of its output: reading stops at
    the end of the output, not at the status (stopping there cut 2 MB outputs short in more than
    half of the reads)."""
    vm = scenario_vms["complete"]
    vm.sh("head -c 2200000 /dev/zero | tr '\\0' x > /root/big")
    session = connect(
        Target(vm.address, identity=fleet.identity), KnownHosts(tmp_path / "kh"), timeout=5
    )
    try:
        sizes = [
            len(session.exec(b"dd if=/root/big bs=65536 status=none", 30).stdout) for _ in range(20)
        ]
        assert sizes == [2200000] * 20
    finally:
        session.close()
        vm.sh("rm -f /root/big")
