"""grade --local: the grader installed inside a simulated VM, as a student would run it."""

from __future__ import annotations

import json

import pytest

from grader.base.errors import ExitStatus
from scenarios import SCENARIOS, student

pytestmark = pytest.mark.vm

LOCAL_SCENARIOS = ["complete", "inetd_not_restarted", "sendmail_loopback_only", "untouched"]
HIDDEN = "mailbox_permissions"  # the Lab 6 rubric's hidden item


@pytest.fixture(scope="module")
def local_vms(fleet):
    """VMs of their own with the grader installed inside: {scenario: (vm, grade command)}."""
    vms = fleet.boot([(f"local_{n}", SCENARIOS[n]) for n in LOCAL_SCENARIOS])
    return {
        n: (vm, fleet.install_grader(vm))
        for n, vm in zip(LOCAL_SCENARIOS, vms.values(), strict=True)
    }


def local(vm, command: str, *args: str, user: str = "root"):
    line = " ".join([command, "--local", *args])
    if user != "root":
        line = f"su {user} -s /bin/sh -c '{line}'"
    return vm.sh(line, check=False, timeout=300)


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


@pytest.mark.parametrize("scenario", LOCAL_SCENARIOS)
def test_local_agrees_with_grading_from_outside(grade, fleet, local_vms, scenario):
    vm, command = local_vms[scenario]
    inside = local(
        vm, command, "--format", "json", "--instructor-view", f"--var bob_password={fleet.password}"
    )
    outside = grade(*fleet.grade_args(vm))
    assert statuses(json.loads(inside.stdout)) == statuses(outside.report)
    assert statuses(outside.report) == SCENARIOS[scenario].expected
    assert inside.returncode == outside.exit
    report = json.loads(inside.stdout)
    assert report["host"] == "anglia"
    assert report["address"] == vm.address  # probed from its own address


def test_student_view_is_the_default_and_hides_hidden_items(fleet, local_vms):
    vm, command = local_vms["complete"]
    run = local(vm, command, "--format", "json", f"--var bob_password={fleet.password}")
    report = json.loads(run.stdout)
    assert report["view"] == "student" and report["hidden_checks"] == 1
    assert HIDDEN not in run.stdout and "Mailboxes are private" not in run.stdout
    assert len(report["checks"]) == 19 and report["max_score"] == 19 and report["score"] == 19
    text = " ".join(local(vm, command, f"--var bob_password={fleet.password}").stdout.split())
    assert "1 more check is marked by your instructor" in text and HIDDEN not in text
    assert "Score 19 / 19" in text
    assert text.endswith("Full marks: all 19 checks shown here passed.")  # the last line


def test_student_view_from_outside_matches(grade, fleet, local_vms):
    vm, command = local_vms["inetd_not_restarted"]
    inside = json.loads(local(vm, command, "--format", "json").stdout)
    outside = grade(*fleet.grade_args(vm, "--student-view", variables=False)).report
    assert statuses(inside) == statuses(outside) and HIDDEN not in statuses(outside)
    assert inside["score"] == outside["score"] == 14 and outside["max_score"] == 19
    assert outside["hidden_checks"] == 1 and outside["flags"] == []


def test_without_root_the_checks_needing_root_are_named_and_the_rest_graded(fleet, local_vms):
    vm, command = local_vms["complete"]
    run = local(vm, command, "--format", "json", f"--var bob_password={fleet.password}", user="bob")
    report = json.loads(run.stdout)
    need_root = {c["id"] for c in report["checks"] if c["error_kind"] == "needs_root"}
    # bob may read his own mailbox, not the queue nor root's mailbox
    assert need_root == {"queue_empty", "mail_bcc_root"}
    for c in report["checks"]:
        assert c["status"] == ("error" if c["id"] in need_root else "pass"), c
        if c["id"] in need_root:
            assert "only root may read it" in c["message"]
    # nothing lost, but 0 only when everything shown was checked and passed
    assert run.returncode == ExitStatus.NOT_ALL_PASSED
    text = local(vm, command, f"--var bob_password={fleet.password}", user="bob").stdout
    text = " ".join(text.split())  # as read, whatever the terminal's width
    named = "Not run as root: 2 checks could not look where only root may: queue_empty, "
    assert named + "mail_bcc_root." in text
    assert "Run the grader again as root to grade them (with sudo, or after su -" in text


def test_the_self_check_never_locks_out_its_student(fleet, local_vms):
    """sendmail takes a few connections a minute from one client (Debian's ClientRate 10;
    here 1 for the VM's own address): a student checking after each fix would be turned
    away. The self-check reaches its VM's address from the loopback address, which the stock
    configurations exempt, and says so in the evidence."""
    vm, command = local_vms["complete"]
    student.sendmail_client_rate(vm, vm.address, 1)
    try:
        for _ in range(3):
            run = local(vm, command, "--format", "json", f"--var bob_password={fleet.password}")
            checks = {c["id"]: c for c in json.loads(run.stdout)["checks"]}
            assert checks["smtp_greets"]["status"] == "pass", checks["smtp_greets"]
            sources = [e["source"] for e in checks["smtp_greets"]["evidence"]]
            assert f"SMTP connection to {vm.address}:25 from 127.0.0.1" in sources, sources
    finally:
        student.sendmail_client_rate(vm, vm.address, 0)
