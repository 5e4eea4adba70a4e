"""The self-check a student runs on the lab VM itself: one file, the VM's own Python 3.9, no
network, no install. Run inside simulated VMs, as root and as a user, it agrees with
`grade --host` on every check."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from grader.sim import VM
from scenarios import SCENARIOS, SLACKWARE_SCENARIOS, student

pytestmark = pytest.mark.vm

RUBRIC_TEXT = (Path(__file__).parents[1] / "rubric.toml").read_text()  # Lab 6's

#: The lab VMs' Python: Slackware 15.0 and Debian 11 ship 3.9
WANTED = "3.9"


def python39() -> str:
    """A Python 3.9 interpreter on this machine (pyenv's, or one on PATH). On CI there must be
    one (LABSIM_REQUIRED): the tests fail rather than skip."""
    pattern = os.path.expanduser(f"~/.pyenv/versions/{WANTED}.*/bin/python{WANTED}")
    found = sorted(glob.glob(pattern))
    found += [p for p in [shutil.which(f"python{WANTED}")] if p]
    if not found:
        message = f"no Python {WANTED} here (pyenv install {WANTED}, or Debian 11's python3)"
        if os.environ.get("LABSIM_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> bytes:
    from grader.cli import main

    out = tmp_path_factory.mktemp("bundle") / "lab6-selfcheck.pyz"
    assert main(["bundle", "--output", str(out)]) == ExitStatus.OK
    assert out.stat().st_size < 5 * 1024 * 1024  # a few MB
    return out.read_bytes()


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


@pytest.mark.parametrize("name", ["complete", "inetd_not_restarted", "untouched"])
def test_the_bundle_on_python_39_agrees_with_grading_from_outside(
    name, bundle, grade, fleet, scenario_vms
):
    vm = scenario_vms[name]
    python = python39()
    vm.sh("cat > /root/selfcheck.pyz", stdin=bundle)
    run = vm.sh(
        f"env -i PATH=/usr/bin:/bin {python} /root/selfcheck.pyz --format json "
        f"--var bob_password={fleet.password}",
        check=False,
        timeout=180,
    )
    assert run.returncode in (0, 1), run.stderr
    local = json.loads(run.stdout)
    assert local["view"] == "student" and local["hidden_checks"] == 1
    remote = grade(*fleet.grade_args(vm)).report
    visible = {c: s for c, s in statuses(remote).items() if c != "mailbox_permissions"}
    assert (
        statuses(local)
        == visible
        == {c: s for c, s in SCENARIOS[name].expected.items() if c != "mailbox_permissions"}
    )


def test_the_bundle_as_a_user_names_what_needs_root(bundle, fleet, scenario_vms):
    vm = scenario_vms["complete"]
    python = python39()
    vm.sh("cat > /home/bob/selfcheck.pyz && chown bob /home/bob/selfcheck.pyz", stdin=bundle)
    vm.sh("chmod 711 /root")  # bob may run the pyenv Python under /root (this VM's copy)
    run = vm.sh(
        f"su bob -c 'env -i PATH=/usr/bin:/bin HOME=/home/bob {python} "
        f"/home/bob/selfcheck.pyz --color never'",
        check=False,
        timeout=180,
    )
    # nothing lost, but not all checked: not 0, and the last line says how to check the rest
    assert run.returncode == ExitStatus.NOT_ALL_PASSED, run.stdout + run.stderr
    last = " ".join(run.stdout.strip().split("\n\n")[-1].split())
    assert last.startswith(
        "Nothing lost, not all checked yet: queue_empty: run the self-check as root"
    )
    assert (
        "root's mailbox" in run.stdout
        and "run the grader as root (with sudo, or after su - where there is no sudo)" in run.stdout
    )
    assert "Traceback" not in run.stdout + run.stderr


def test_the_bundle_runs_nothing_but_the_standard_library_and_itself(bundle, tmp_path):
    """What only the instructor's side uses is not in it, so it cannot be needed."""
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    for absent in ("pydantic", "paramiko", "matplotlib", "click", "_pytest", "cryptography"):
        assert not any(n.startswith(absent + "/") for n in names), absent
    assert "_lab/rubric.json" in names and "_lab/checks/test_smtp.py" in names
    # nothing of a hidden item in a student's file: not its id, its title, its hint or its code
    archive = zipfile.ZipFile(io.BytesIO(bundle))
    lab = b"\n".join(archive.read(n) for n in names if n.startswith("_lab/"))
    hidden = RUBRIC_TEXT.split('id = "mailbox_permissions"', 1)[1].split("[[", 1)[0]
    hint = hidden.split('hint = "', 1)[1].split('"', 1)[0]
    for secret in (b"mailbox_permissions", b"Mailboxes are private", hint.encode()):
        assert secret not in lab, secret
    assert b"test_mail_hello_world" in lab  # the visible checks of the same file are all there
    assert not any(n.endswith(".so") for n in names)
    python = python39()
    (tmp_path / "x.pyz").write_bytes(bundle)
    version = subprocess.run(
        [python, str(tmp_path / "x.pyz"), "--version"], capture_output=True, text=True
    )  # --version only: nothing is graded outside a simulated VM
    assert version.returncode == 0 and version.stdout.startswith("grade, version"), version.stderr
    # a student's own help: the options a student uses, none of the instructor's
    shown = subprocess.run(
        [python, str(tmp_path / "x.pyz"), "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--only CHECK" in shown.stdout, shown.stderr
    assert "Check your own lab VM" in shown.stdout and "su -" in shown.stdout
    for instructor in ("--roster", "--host", "--shard", "bundle", "course", "book", "--local"):
        assert instructor not in shown.stdout, instructor
    # an option a student has not got is named as they typed it (nothing is graded)
    typed = subprocess.run(
        [python, str(tmp_path / "x.pyz"), "--host", "vm"], capture_output=True, text=True
    )
    assert typed.returncode == 2 and "unrecognized arguments: --host vm" in typed.stderr
    assert "--local" not in typed.stderr


def one_more_for_bob(vm: VM, send: Callable[[VM], None]) -> None:
    """Send bob a message and see it in his mailbox, as a student reads it before the next
    self-check: a loaded machine's sendmail may hold it in the queue (its load average over
    QueueLA), and the self-check would find queue_empty newly lost; after 10 s the student
    does what that check's message says, `sendmail -q`."""
    count = "n=$(grep -c '^From ' /var/mail/bob 2>/dev/null || true); echo ${n:-0}"
    before = int(vm.sh(count).stdout)
    send(vm)
    queued = "ls /var/spool/mqueue/qf* /var/spool/mqueue-client/qf* >/dev/null 2>&1"
    vm.sh(
        f"for _ in $(seq 100); do ! {queued} && [ $({count}) -gt {before} ] && exit 0; "
        "sleep 0.1; done; sendmail -q || true"
    )
    student.wait_for_delivery(vm, bob=before + 1, root=0)


#: What a student does for the feedback's first item, by the check it names first: each is one
#: fix a student can make from the hint shown (in the simulator's terms: a Debian VM).
FIXES: dict[str, Callable[[VM], None]] = {
    "smtp_daemon": lambda vm: student.start_sendmail(vm, all_interfaces=False),
    "smtp_greets": lambda vm: student.restart_sendmail(vm, all_interfaces=True),
    "mail_hello_world": lambda vm: (
        student.send_hello_world(vm),
        student.wait_for_delivery(vm, bob=1, root=2),  # the blind copy, and smith's bounce
    ),
    "mail_from_file": lambda vm: one_more_for_bob(vm, student.send_mail_from_file),
    "mail_smtp_by_hand": lambda vm: one_more_for_bob(vm, student.smtp_by_hand),
    "pop3_in_inetd": lambda vm: (
        student.inetd_service(vm, "pop3", enable=True),
        student.restart_inetd(vm),
    ),
    "time_disabled": lambda vm: (
        student.inetd_service(vm, "time", enable=False, protocol="tcp"),
        student.inetd_service(vm, "time", enable=False, protocol="udp"),
        student.restart_inetd(vm),
    ),
    "telnet_enabled": lambda vm: (
        student.inetd_service(vm, "telnet", enable=True),
        student.restart_inetd(vm),
    ),
    "vsftpd_anonymous_disabled": lambda vm: student.vsftpd_set(vm, "anonymous_enable", "NO"),
    "vsftpd_local_write": lambda vm: (
        student.vsftpd_set(vm, "local_enable", "YES"),
        student.vsftpd_set(vm, "write_enable", "YES"),
    ),
}
#: The independent fixes the VM as handed out needs (mail_bcc_root comes with "Hello world";
#: pop3_listening, pop3_greets and pop3_login with pop3_in_inetd)
NEEDED = 10


def first_item(text: str) -> str:
    """The check the feedback's first item names: the first mark 'Fix this first' counts,
    else the first lost mark."""
    if "Fix this first" in text:
        block = " ".join(text.split("Fix this first", 1)[1].split())  # whatever the width
        return block.split(" lost in ", 1)[1].split(",")[0].split()[0]
    line = text.split("Where the marks were lost", 1)[1].strip().splitlines()[0]
    return line.removeprefix("- ").split(" ", 1)[0]


#: A file or folder a message or hint names: an absolute path on the VM
NAMED_PATH = re.compile(r"(?<![\w.~-])/(?:etc|var|usr|root|home|run)/[\w.+/-]*[\w+-]")


def paths_to_exist(report: dict) -> set[str]:
    """The paths the feedback on what is still to do names (the messages, hints and causes of
    checks not passed), less those it says do not exist ("X does not exist", "nor does X")."""
    said = " ".join(
        f"{c['message']} {c['hint']} {c['cause_title']} {' '.join(c['notes'])}"
        for c in report["checks"]
        if c["status"] != "pass"
    )
    named = set(NAMED_PATH.findall(said))
    return {p for p in named if f"{p} does not exist" not in said and f"nor does {p}" not in said}


@pytest.mark.parametrize("flavour", ["debian", "slackware"])
def test_a_student_following_the_first_item_reaches_full_marks_one_fix_a_run(
    bundle, fleet, flavour
):
    """From the VM as handed out, a student runs the self-check, makes the fix its first item
    names, and runs it again, until full marks: one run per independent fix and one more, the
    score never drops, nothing that could not be checked is counted as a lost mark, and every
    file the feedback names is one this VM has. bob's password is given from the second run,
    as a student who read the first run's last line would."""
    if flavour == "debian":
        scenario = SCENARIOS["untouched"]
    else:
        scenario = SLACKWARE_SCENARIOS["slack_untouched"]
    vm = fleet.boot([(f"play_{flavour}", scenario)])[f"play_{flavour}"]
    python = python39()
    vm.sh("cat > /root/selfcheck.pyz", stdin=bundle)
    applied: list[str] = []
    scores: list[float] = []
    checked: set[str] = set()  # the paths the feedback named, each found on the VM
    for _ in range(NEEDED + 2):
        vm.sh("rm -rf /root/sc")
        password = f" --var bob_password={fleet.password}" if scores else ""
        run = vm.sh(
            f"env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root {python} /root/selfcheck.pyz"
            f" --color never --out /root/sc{password}",
            check=False,
            timeout=180,
        )
        assert "Traceback" not in run.stdout + run.stderr
        report = json.loads(vm.sh("cat /root/sc/*.json").stdout)
        for check in report["checks"]:
            if check["lost"]:  # a lost mark is the student's: a failure, or its dependants
                assert check["status"] == "fail" or check["error_kind"] == "dependency", check
        assert not [c for c in report["checks"] if c["status"] == "error"], run.stdout
        named = sorted(paths_to_exist(report))
        missing = vm.sh(
            "for p in " + " ".join(shlex.quote(p) for p in named) + '; do [ -e "$p" ] || '
            'echo "$p"; done',
            check=False,
        ).stdout.split()
        assert not missing, f"named, not on this VM: {missing}\n{run.stdout}"
        checked.update(named)
        if not scores:  # without bob's password: pop3_login not checked, and not passed
            assert run.returncode != ExitStatus.OK and "bob_password" in run.stdout
        scores.append(report["score"])
        if applied:  # what the last fix changed, kept between runs on the VM
            since = run.stdout.split("Since your last self-check", 1)[1]
            assert f"fixed: {applied[-1]}" in since, run.stdout
            assert "newly lost" not in since, run.stdout
        if run.returncode == ExitStatus.OK:
            break
        fix = first_item(run.stdout)
        assert fix in FIXES, run.stdout
        assert fix not in applied, f"{fix} again, after {applied}:\n{run.stdout}"
        applied.append(fix)
        FIXES[fix](vm)
    assert report["score"] == report["max_score"], run.stdout
    print(f"{len(scores)} self-check runs for {len(applied)} fixes: {', '.join(applied)}")
    assert scores == sorted(scores), scores  # never a drop
    assert "/etc/inetd.conf" in checked and "/etc/vsftpd.conf" in checked, checked
    assert len(scores) == len(applied) + 1 and len(applied) <= NEEDED, applied
    # one check again, briefly: it and what it depends on, no table
    again = vm.sh(
        f"env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root {python} /root/selfcheck.pyz"
        f" --color never --brief --only pop3_login --var bob_password={fleet.password}",
        check=False,
        timeout=180,
    )
    assert again.returncode == ExitStatus.OK, again.stdout + again.stderr
    assert "Score 2 / 2" in again.stdout and "Only pop3_greets, pop3_login checked" in again.stdout
    assert "Details" not in again.stdout  # --brief: no table
