"""No output of a VM is ever an internal error: a number is ASCII digits within a bound, and a
line that does not read as one is named in the check's reason (the check is ``error``, not a
lost mark and never ``check_crashed``).

The tools are fakes put first on PATH and run for real by the grader's own backend on this
machine, as a student's fake ``ps`` or ``ss`` runs on their VM."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from checks.support.inetd import entry_port, parse_inetd_conf, parse_services
from checks.support.remote import mailbox
from grader.base.numbers import number
from grader.engine.checkload import Check
from grader.engine.checkrun import run_check
from grader.engine.lab import Lab, Paths
from grader.machine.backend import make_host
from grader.machine.local import LocalExecutor
from grader.machine.prefetch import batch_script, new_nonce, parse_batch
from grader.toolkit import Unreadable, listeners, processes, read_file, read_lines
from labs.lab7.checks import support as lab7

#: '²' is a digit to str.isdigit() and not to int(); '٣' is an Arabic-Indic three, which int()
#: reads as 3; 5000 digits are more than int() reads
SUPERSCRIPT, ARABIC, LONG = "²", "٣", "7" * 5000
ODD = (SUPERSCRIPT, ARABIC, LONG, f"1{SUPERSCRIPT}", "")


def test_a_number_is_ascii_digits_within_its_bound():
    assert number("25") == 25 and number(b"0") == 0 and number("65535", most=65535) == 65535
    for text in (*ODD, "65536", "-1", "+1", " 1", "1_000", "0x10", "1e3", "٣".encode()):
        assert number(text, most=65535) is None, text
    assert number(LONG) is None and number(LONG.encode()) is None


def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **tools: str) -> None:
    """Put a fake of each tool (its name, what it prints) first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for name, printed in tools.items():
        script = folder / name
        script.write_text(f"#!/bin/sh\nprintf '%s' '{printed}'\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")


def host():
    return make_host(LocalExecutor(), 10)


def outcome_of(function):
    return run_check(Check("c", function, ("host",), "A check.", "here:1"), {"host": host()})


PS_GOOD = "    1     0 Ss init /sbin/init\n  200     1 Ss sshd sshd: /usr/sbin/sshd\n"
SS_HEAD = "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
SS_GOOD = "tcp   LISTEN 0      128    0.0.0.0:22         0.0.0.0:*\n"


@pytest.mark.parametrize("odd", ODD[:4])
def test_a_process_list_line_that_does_not_read_is_named_never_a_crash(odd, tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, ps=PS_GOOD + f"  {odd}     1 S named named -u bind\n")
    with pytest.raises(Unreadable, match="line 3"):
        processes(host())
    outcome = outcome_of(lambda host: processes(host))
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable")
    assert "line 3" in outcome.message and odd[:20] in outcome.message
    fake_tools(tmp_path, monkeypatch, ps=PS_GOOD + f"  300     {odd} S named named -u bind\n")
    assert outcome_of(lambda host: processes(host)).error_kind == "unreadable"


def test_a_process_list_that_reads_is_read_as_before(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, ps=PS_GOOD + "\n  300   200 S named\n")
    table = processes(host())
    assert sorted(table) == [1, 200, 300]
    assert table[200].args == "sshd: /usr/sbin/sshd" and table[300].comm == "named"


@pytest.mark.parametrize("odd", ODD[:4])
def test_a_socket_list_line_that_does_not_read_is_named_never_a_crash(odd, tmp_path, monkeypatch):
    fake_tools(
        tmp_path, monkeypatch,
        ss=SS_HEAD + SS_GOOD + f"tcp   LISTEN 0      128    0.0.0.0:{odd}    0.0.0.0:*\n",
    )  # fmt: skip
    with pytest.raises(Unreadable, match="line 3"):
        listeners(host(), 25)
    outcome = outcome_of(lambda host: listeners(host, 25))
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable"), outcome
    assert "line 3" in outcome.message and odd[:20] in outcome.message


def test_a_socket_list_that_is_not_utf8_or_short_is_named_never_a_crash(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, ss=SS_HEAD + SS_GOOD + "tcp LISTEN\\377 0\n")
    outcome = outcome_of(lambda host: listeners(host, 22))
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable"), outcome
    assert "line 3" in outcome.message


def test_a_socket_list_that_reads_is_read_as_testinfra_read_it(tmp_path, monkeypatch):
    fake_tools(
        tmp_path, monkeypatch,
        ss=SS_HEAD + SS_GOOD
        + "udp   UNCONN 0      0      [::1]:53           [::]:*\n"
        + "tcp   LISTEN 0      5      *:80               *:*\n"
        + "u_str LISTEN 0      5      /run/x 1234        * 0\n"
        + "tcp   ESTAB  0      0      10.0.0.1:22        10.0.0.2:5000\n",
    )  # fmt: skip
    assert [str(x) for x in listeners(host(), 22)] == ["tcp 0.0.0.0"]
    assert [str(x) for x in listeners(host(), 53, ("udp",))] == ["udp ::1"]
    assert [str(x) for x in listeners(host(), 80)] == ["tcp ::", "tcp 0.0.0.0"]
    assert listeners(host(), 5000) == []


@pytest.mark.parametrize("odd", ODD[:4])
def test_a_size_that_does_not_read_is_named_never_a_crash(odd, tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("x")
    fake_tools(tmp_path, monkeypatch, stat=odd)
    outcome = outcome_of(lambda host: read_file(host, str(path)))
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable"), outcome
    assert odd[:20] in outcome.message


@pytest.mark.parametrize("odd", ODD[:4])
def test_a_numbered_line_that_does_not_read_is_named_never_a_crash(odd, tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("x\n")
    fake_tools(tmp_path, monkeypatch, grep=f"1:a\n{odd}:b\n")
    outcome = outcome_of(lambda host: read_lines(host, str(path), "."))
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable"), outcome
    assert odd[:20] in outcome.message


def test_a_mailbox_count_of_5000_digits_is_read_in_part_never_a_crash(tmp_path, monkeypatch):
    (tmp_path / "bob").write_text("From a@b Mon Nov 23 10:00:00 2026\nSubject: x\n\nhi\n\n")
    real_awk = subprocess.run(["sh", "-c", "command -v awk"], capture_output=True, text=True)
    folder = tmp_path / "bin"
    folder.mkdir()
    awk = folder / "awk"  # the real awk's output, its count made 5000 digits long
    awk.write_text(
        f"#!/bin/sh\n{real_awk.stdout.strip()} \"$@\" | sed 's/messages 1$/messages {LONG}/'\n"
    )
    awk.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    lab = Lab(Paths({"mail_spool": str(tmp_path)}), {})
    outcome = run_check(
        Check("c", lambda host: mailbox(host, lab, "bob"), ("host",), "A check.", "here:1"),
        {"host": host()},
    )
    assert outcome.status == "error" and outcome.error_kind != "check_crashed", outcome


def test_a_batch_whose_statuses_or_sizes_do_not_read_is_asked_live_never_a_crash():
    nonce = new_nonce()
    done = subprocess.run(
        ["sh", "-c", batch_script([b"echo a", b"echo b"], 5, nonce).decode()],
        capture_output=True,
        check=True,
    ).stdout
    assert sorted(parse_batch(done, 2, 1000, 5, nonce)) == [0, 1]
    statuses = done.split(b"\n", 1)[0]
    for odd in (SUPERSCRIPT, ARABIC, LONG):
        spoiled = statuses.rsplit(b" ", 1)[0] + b" " + odd.encode()
        assert parse_batch(done.replace(statuses, spoiled, 1), 2, 1000, 5, nonce) == {}
        lines = done.split(b"\n")
        lines[2] = odd.encode()  # the first file's size
        assert parse_batch(b"\n".join(lines), 2, 1000, 5, nonce) == {}


def test_inetd_and_services_read_odd_digits_as_inetd_does_never_a_crash():
    services = parse_services(
        f"time 37/tcp\nodd {SUPERSCRIPT}/tcp\nlong {LONG}/tcp\nbig 70000/tcp\n"
    )
    assert services == {"time": {(37, "tcp")}}  # glibc reads no port in the others either
    for odd in ODD[:3]:
        (entry,) = parse_inetd_conf(f"{odd} stream tcp nowait root /usr/sbin/tcpd in.x\n")
        assert entry_port(entry, services) is None  # a name /etc/services does not know
    (entry,) = parse_inetd_conf("37 stream tcp nowait root internal\n")
    assert entry_port(entry, services) == 37


class Said:
    """A host whose every command prints ``stdout`` (for Lab 7's parsers of a tool's words)."""

    def __init__(self, stdout: str, rc: int = 0) -> None:
        self.stdout, self.stderr, self.rc = stdout, "", rc

    def run(self, *args):
        return self


@pytest.mark.parametrize("odd", ODD[:4])
def test_lab7_reads_odd_digits_from_named_and_apache_never_a_crash(odd):
    said = Said(f"zone z/IN: loaded serial {odd}\nOK\n")
    with pytest.warns(UserWarning, match="no serial the grader can read"):  # a note, in a check
        checked = lab7.check_zone(said, "z", "/etc/bind/db.z")
    assert checked.serial is None and checked.loads
    head = "Included configuration files:\n  (*) /etc/apache2/apache2.conf\n"
    with pytest.raises(Unreadable, match="line 3"):
        lab7._includes(head + f"    ({odd}) /etc/apache2/x.conf\n")
    with pytest.raises(Unreadable, match=r"apache2\.conf"):
        lab7._includes(head + f"@@file /etc/apache2/apache2.conf\n1:Listen 80\n{odd}:Options\n")
    tree, lines = lab7._includes(head + "@@file /etc/apache2/apache2.conf\n12:Options None\n")
    assert tree == [(0, "/etc/apache2/apache2.conf", [])]
    assert lines == {"/etc/apache2/apache2.conf": [(12, "Options None")]}


@pytest.mark.parametrize("serial", [*ODD[:4], "1 2"])
def test_lab7_a_served_serial_that_does_not_read_is_named_never_a_crash(serial):
    from grader.engine.lab import Lab as LabView
    from grader.probes.dns import DnsAnswer
    from labs.lab7.checks.test_dns import test_serial_bumped

    class Outside:
        address = "198.51.100.1"

        def dns(self, name, rtype):
            soa = f"z. 300 IN SOA ns.z. h.z. {serial} 3600 900 604800 300"
            return DnsAnswer(True, "NOERROR", True, [soa])

    lab = LabView(Paths({}), {"zone": "z", "initial_serial": "2026010100"})
    check = Check("serial_bumped", test_serial_bumped, ("host", "lab", "outside"), "A.", "x:1")
    outcome = run_check(check, {"host": Said(""), "lab": lab, "outside": Outside()})
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable"), outcome
    assert "SOA record" in outcome.message


def test_what_testinfra_cannot_read_of_a_vm_is_named_never_a_crash(tmp_path, monkeypatch):
    """testinfra reads the system's kind for its modules (host.file, host.socket) from
    /etc/os-release, else lsb_release -a, whose every line it splits at ':'."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, script in (
        ("cat", "exit 1"),  # no /etc/os-release (nor redhat-release, alpine-release)
        ("lsb_release", "echo 'Distributor ID: Debian'; echo 'a line with no colon'"),
    ):
        (folder / name).write_text(f"#!/bin/sh\n{script}\n")
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    outcome = outcome_of(lambda host: host.file(str(tmp_path)).is_directory)
    assert (outcome.status, outcome.error_kind) == ("error", "unreadable"), outcome
    assert "testinfra" in outcome.message and "lsb_release" in outcome.message


def test_a_checks_own_bug_is_still_check_crashed():
    outcome = outcome_of(lambda host: {}["missing"])
    assert outcome.error_kind == "check_crashed"
