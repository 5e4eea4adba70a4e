"""A VM is the student's own: identity across a course, on simulated VMs that all share the
machine-id of the image they were handed out (as VMs copied from one image do).

amy does the lab; ben does nothing and, graded alone in a later run, passes every connection to
his VM's ports 22, 23, 25 and 110 on to amy's; cat and dan hand in one VM twice (one host key);
eve mails amy's bob a message carrying one of eve's own Message-IDs. The book flags ben and amy
naming each other, cat and dan naming each other, nobody for the Message-ID eve planted, and
nobody for the machine-id (one note for the class). A VM reached through a port forward on the
grading machine (as a VirtualBox NAT does) is not flagged, nor are two students graded at one
address at different times, each on a machine of their own (DHCP gave the address to the
second after the first was graded)."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from grader.cli import main
from grader.sim.vm import BRIDGE
from scenarios import SCENARIOS, student
from tests import hostile

pytestmark = pytest.mark.vm

IMAGE_MACHINE_ID = "4c4c4544003510458030b7c04f4a3832"
COURSE = """\
title = "Identity"
roster = "class.csv"

[[labs]]
id = "lab6"
lab = "lab6"
due = 2026-12-01T12:00:00+00:00
vars = { bob_password = { env = "LAB6_BOB_PW" } }
"""


@pytest.fixture(scope="module")
def class_vms(fleet):
    vms = fleet.boot(
        [(f"i-{s}", SCENARIOS["complete"]) for s in ("amy", "eve")]
        + [("i-ben", SCENARIOS["untouched"])],
        machine_id=IMAGE_MACHINE_ID,
    )
    clones = fleet.boot(
        [(f"i-{s}", SCENARIOS["complete"]) for s in ("cat", "dan")],
        host_key_file=fleet.new_host_key("identity-clone"),
        machine_id=IMAGE_MACHINE_ID,
    )
    return {name.removeprefix("i-"): vm for name, vm in {**vms, **clones}.items()}


def grade(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


PLANT = """
import smtplib, sys
message = ("From: eve@anglia.bryant\\r\\nTo: bob@anglia.bryant\\r\\nSubject: hello from eve\\r\\n"
           "Message-ID: " + sys.argv[2] + "\\r\\n\\r\\nhi bob\\r\\n")
with smtplib.SMTP(sys.argv[1], 25, local_hostname="anglia.bryant", timeout=30) as s:
    s.sendmail("eve@anglia.bryant", ["bob@anglia.bryant"], message)
"""


@contextlib.contextmanager
def port_forward(target: str) -> Iterator[int]:
    """A port on the grading machine's loopback passed on to ``target``:22, as a VirtualBox
    NAT forwards the host's port 2222 to its VM."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()
    opened: list[socket.socket] = []  # closed when the forward ends

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection((target, 22), timeout=10)
            opened.extend((client, upstream))
            upstream.settimeout(None)
            client.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for each in opened:
            each.close()


def test_identity_across_a_course(class_vms, fleet, tmp_path, monkeypatch, plan_cache):
    monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(plan_cache))
    monkeypatch.setenv("LAB6_BOB_PW", fleet.password)
    course = tmp_path / "course"
    course.mkdir()
    (course / "course.toml").write_text(COURSE)
    rows = [f"{s},{vm.address},{fleet.identity}" for s, vm in sorted(class_vms.items())]
    (course / "class.csv").write_text("student,host,identity\n" + "\n".join(rows) + "\n")
    monkeypatch.chdir(course)
    amy, ben, eve = class_vms["amy"], class_vms["ben"], class_vms["eve"]
    # eve plants one of her own Message-IDs in amy's mailbox, over port 25 as anyone can
    own = eve.sh("grep -m1 -i '^Message-ID:' /var/mail/bob | cut -d' ' -f2").stdout.strip()
    assert own.startswith("<") and own.endswith("@anglia.bryant>")
    eve.sh(f"/usr/bin/python3 -c {shlex.quote(PLANT)} {amy.address} {shlex.quote(own)}")
    student.wait_for(amy, f"grep -qF {shlex.quote(own)} /var/mail/bob")

    monkeypatch.setenv("GRADER_NOW", "2026-12-01T11:00:00+00:00")
    code, said, err = grade("course", "run", "lab6", *(f"--student={s}" for s in
                            ("amy", "cat", "dan", "eve")))  # fmt: skip
    assert code == 0, err
    # later, ben is graded alone, his VM passing everything on to amy's
    hostile.forward_to(ben, amy.address)
    monkeypatch.setenv("GRADER_NOW", "2026-12-01T11:30:00+00:00")
    code, said, err = grade("course", "run", "lab6", "--student", "ben")
    assert code == 0, err
    assert "To look at, ben:" in said  # said as it is recorded
    code, shown, _ = grade("book", "show", "--format", "json")
    flags = {r["student"]: r["flags"] for r in json.loads(shown)}
    kinds = {s: sorted({f["kind"] for f in f_}) for s, f_ in flags.items()}
    assert kinds["ben"] == [
        "answered_by_classmate", "answered_elsewhere", "shared_host_key", "shared_message_ids",
    ], flags["ben"]  # fmt: skip
    named = {f["kind"]: f["students"] for f in flags["ben"]}
    assert named["shared_host_key"] == ["amy"] and named["answered_by_classmate"] == ["amy"]
    assert "2026-12-01T11:00:00Z" in next(  # with where amy's key was seen
        f["message"] for f in flags["ben"] if f["kind"] == "shared_host_key"
    )
    assert {f["kind"] for f in flags["amy"]} == {
        "answered_by_classmate", "shared_host_key", "shared_message_ids"
    }  # fmt: skip
    assert all(f["students"] == ["ben"] for f in flags["amy"])  # not eve: her mail was planted
    # one VM handed in twice: the host key, and (when the two clones, doing the same steps in
    # fresh PID namespaces, sent a mail in the same second) the same Message-IDs too
    for one, other in (("cat", "dan"), ("dan", "cat")):
        said = {f["kind"]: f["students"] for f in flags[one]}
        assert said.get("shared_host_key") == [other], flags[one]
        assert set(said) <= {"shared_host_key", "shared_message_ids"}, flags[one]
        assert all(students == [other] for students in said.values()), flags[one]
    assert flags["eve"] == []
    assert not any(f["kind"] == "shared_machine_id" for f_ in flags.values() for f in f_)
    # the class's one note, on the course page; the evidence in book explain
    assert grade("book", "page")[0] == 0
    page = (course / "course.html").read_text()
    assert "5 of 5 students&#39; VMs share one machine-id" in page
    _, explained, _ = grade("book", "explain", "ben", "lab6")
    assert "Question for staff (answered_elsewhere)" in explained
    assert f"reached {amy.address} port 22" in explained
    # a flag is a question, never a mark: ben's score is what amy's VM earned
    code, shown, _ = grade("book", "show", "--format", "json")
    marks = {r["student"]: r["mark"] for r in json.loads(shown)}
    assert marks["ben"] == marks["amy"] == 20


def test_a_vm_behind_a_port_forward_on_the_grading_machine_is_not_flagged(
    class_vms, fleet, tmp_path, monkeypatch, plan_cache
):
    monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(plan_cache))
    eve = class_vms["eve"]
    with port_forward(eve.address) as port:
        _, out, err = grade(
            "--host", "127.0.0.1", "--port", str(port), "--identity", str(fleet.identity),
            "--format", "json", "--only", "smtp_daemon",
        )  # fmt: skip
    report = json.loads(out)
    assert report["status"] == "graded", err
    client, _, server, _ = report["machine"]["ssh"][0].split()
    assert server == eve.address and client != "127.0.0.1"  # reached from the forward
    assert not [f for f in report["flags"] if f["kind"] == "answered_elsewhere"]


def _move(vm, old: str, new: str) -> None:
    """The VM's address changed, as a DHCP server's new lease changes it; the grading machine
    forgets which Ethernet address had the old one, as it does when the lease moves."""
    vm.sh(f"ip addr del {old}/24 dev eth0 && ip addr add {new}/24 dev eth0")
    subprocess.run(["ip", "neigh", "flush", "dev", BRIDGE], check=False, capture_output=True)


def test_an_address_dhcp_gave_a_classmate_later_flags_nobody(
    fleet, tmp_path, monkeypatch, plan_cache
):
    vms = fleet.boot([(f"dhcp-{s}", SCENARIOS["untouched"]) for s in ("amy", "ben")])
    amy, ben = vms["dhcp-amy"], vms["dhcp-ben"]
    shared_address = amy.address  # amy's lease on Monday, ben's on Friday
    monkeypatch.setenv("GRADER_CACHE_DIR", str(plan_cache))
    monkeypatch.setenv("LAB6_BOB_PW", fleet.password)
    course = tmp_path / "course"
    course.mkdir()
    (course / "course.toml").write_text(COURSE)
    roster = course / "class.csv"
    monkeypatch.chdir(course)

    def graded(student: str, address: str, now: str) -> None:
        roster.write_text(f"student,host,identity\n{student},{address},{fleet.identity}\n")
        # another day, another grading machine: the address's host key is new to it
        monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / f"known_hosts_{student}"))
        monkeypatch.setenv("GRADER_NOW", now)
        code, said, err = grade("course", "run", "lab6", "--student", student)
        assert code == 0, said + err

    graded("amy", shared_address, "2026-12-01T09:00:00+00:00")
    try:
        _move(amy, amy.address, f"{amy.address.rsplit('.', 1)[0]}.249")  # amy's VM moved on
        _move(ben, ben.address, shared_address)  # and DHCP gave her old address to ben's
        graded("ben", shared_address, "2026-12-05T09:00:00+00:00")
    finally:
        _move(ben, shared_address, ben.address)
        _move(amy, f"{amy.address.rsplit('.', 1)[0]}.249", amy.address)
    code, shown, err = grade("book", "show", "--format", "json")
    assert code == 0, err
    rows = {r["student"]: r for r in json.loads(shown)}
    assert rows["amy"]["flags"] == [] and rows["ben"]["flags"] == [], (
        rows["amy"]["flags"],
        rows["ben"]["flags"],
    )
    # both were graded at one address, each answered there by a machine of their own
    reports = {
        s: json.loads(next((course / "runs").rglob(f"{s}.json")).read_text())
        for s in ("amy", "ben")
    }
    assert {r["address"] for r in reports.values()} == {shared_address}
    assert {r["machine"]["ssh"][0].split()[2] for r in reports.values()} == {shared_address}
    assert reports["amy"]["host_key"] != reports["ben"]["host_key"]
    assert reports["amy"]["machine"]["machine_id"] != reports["ben"]["machine"]["machine_id"]
