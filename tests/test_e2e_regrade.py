"""Regrading without the VMs: grade a class of simulated VMs, destroy the VMs, then re-mark the
class from the evidence archives with a changed rubric and compare with a live grading of the
same VMs under that rubric, made before they were destroyed."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomlkit

from grader.base.errors import ExitStatus
from grader.cli import main
from grader.engine.catalog import built_in_rubric
from grader.report.render.text import points
from scenarios import SCENARIOS, student

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parents[1]

# student -> scenario; each fails differently, so the rubric's changes bite somewhere
CLASS = {
    "amy": "complete",
    "ben": "untouched",  # pop3 never greets: pop3_login was skipped by its dependency
    "cal": "sendmail_never_started",
    "dot": "mailbox_world_readable",  # her mail holds bob's password and a private key
}
PRIVATE_KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ-lab-grader-test-key"
PRIVATE_KEY = (
    f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----"
)


def changed_rubric(folder: Path, extra_check: bool = False) -> Path:
    """The Lab 6 rubric with other points, a dependency dropped and one added, a hint and a
    visibility changed; with ``extra_check``, one more check that asks the VM something new."""
    document = tomlkit.parse(built_in_rubric().read_text())
    checks = PROJECT / "checks"
    if extra_check:
        checks = folder / "checks"
        shutil.copytree(PROJECT / "checks", checks, ignore=shutil.ignore_patterns("__pycache__"))
        (checks / "test_extra.py").write_text(
            "def test_hostname_file(host):\n"
            '    """/etc/hostname names the VM."""\n'
            '    assert host.file("/etc/hostname").exists, "/etc/hostname is missing"\n'
        )
    document["checks"] = str(checks)
    for section in document["sections"]:
        for item in section["items"]:
            if item["id"] == "smtp_greets":
                item["points"] = 3
            if item["id"] == "pop3_login":
                item["depends"] = []  # now marked even where pop3 does not greet
                item["points"] = 2
            if item["id"] == "mail_hello_world":
                item["depends"] = ["smtp_daemon"]
                item["hint"] = "A new hint: send the message of Exercise 1.2 again."
            if item["id"] == "mailbox_permissions":
                item["visibility"] = "visible"
    if extra_check:
        extra = tomlkit.table()
        extra.update({"id": "hostname_file", "title": "The VM has a host name", "points": 1})
        document["sections"][0]["items"].append(extra)
    path = folder / ("rubric-extra.toml" if extra_check else "rubric-changed.toml")
    path.write_text(tomlkit.dumps(document))
    return path


@dataclass(frozen=True)
class Graded:
    folder: Path  # graded live with the Lab 6 rubric, archives included
    live_changed: Path  # the same VMs graded live with the changed rubric
    rubric: Path  # the changed rubric
    rubric_extra: Path  # the changed rubric with a check that needs a new command
    exit_changed: int
    roster: Path  # the class's roster: each student's variables, secret ones included


def cli(*args: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(args))
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def graded(fleet, tmp_path_factory) -> Graded:
    work = tmp_path_factory.mktemp("regrade")
    vms = fleet.boot([(f"rg_{name}", SCENARIOS[scenario]) for name, scenario in CLASS.items()])
    student.send_mail(vms["rg_dot"], "keys", f"{fleet.password}\n{PRIVATE_KEY}")
    vms["rg_dot"].sh(  # once sendmail has delivered it, her mailbox open to all again
        "for i in $(seq 100); do grep -q '^Subject: keys' /var/mail/bob && break; sleep 0.1; "
        "done; chmod 644 /var/mail/bob"
    )
    roster = work / "class.csv"
    roster.write_text(
        "student,host,bob_password\n"
        + "".join(f"{name},{vms[f'rg_{name}'].address},{fleet.password}\n" for name in CLASS)
    )
    rubric = changed_rubric(work)
    common = ["--roster", str(roster), "--identity", str(fleet.identity)]
    common += ["--known-hosts", str(work / "kh"), "--cache-dir", str(work / "cache")]
    code, _, err = cli(*common, "--out", str(work / "live"))
    assert code == ExitStatus.OK, err
    code_changed, _, err = cli(*common, "--rubric", str(rubric), "--out", str(work / "changed"))
    assert code_changed == ExitStatus.OK, err
    for name in CLASS:  # the VMs are gone: whatever follows cannot ask them anything
        vms[f"rg_{name}"].close()
    extra = changed_rubric(work, True)
    return Graded(work / "live", work / "changed", rubric, extra, code_changed, roster)


MARKS = ("id", "status", "points", "max_points", "hint", "visibility", "error_kind")


def decisions(folder: Path, keys: tuple[str, ...] = MARKS) -> dict[str, dict]:
    """What a grading decided, per student: the marks (``keys`` of each check) and the score.
    Two live gradings differ in their messages' times (a greeting's date, a pause), so they
    are compared on the marks; a replay of one grading is compared on everything."""
    found = {}
    for name in CLASS:
        report = json.loads((folder / f"{name}.json").read_text())
        found[name] = {
            "status": report["status"],
            "score": report["score"],
            "max_score": report["max_score"],
            "rubric": report["rubric"],
            "host_key": report["host_key"],
            "checks": [{k: c[k] for k in keys} for c in report["checks"]],
        }
    return found


EVERYTHING = (*MARKS, "title", "section", "message", "notes", "evidence")


def summary(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / "summary.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_the_vms_are_gone(graded, tmp_path):
    amy = json.loads((graded.folder / "amy.json").read_text())
    code, _, _ = cli(
        "--host", amy["address"], "--known-hosts", str(tmp_path / "kh"), "--connect-timeout", "1"
    )
    assert code == ExitStatus.NOT_GRADED


def test_regrade_with_the_same_rubric_gives_the_same_marks(graded, tmp_path):
    again = tmp_path / "again"
    code, out, err = cli(
        "regrade", str(graded.folder), "--roster", str(graded.roster), "--out", str(again)
    )
    assert code == ExitStatus.OK, err
    assert decisions(again, EVERYTHING) == decisions(graded.folder, EVERYTHING)
    assert "Regraded 4 of 4 students" in out and "0 check(s) needed the live VM." in out
    assert "No student's score changed." in out
    # without the roster, only what relied on an answer holding bob's password (dot mailed it
    # to herself) cannot be replayed, and says so; nothing else changes
    blind = tmp_path / "blind"
    code, out, err = cli("regrade", str(graded.folder), "--out", str(blind))
    assert code == ExitStatus.OK, err
    before, after = decisions(graded.folder), decisions(blind)
    assert {k: v for k, v in after.items() if k != "dot"} == {
        k: v for k, v in before.items() if k != "dot"
    }
    changed = [
        (b["id"], a["error_kind"])
        for b, a in zip(before["dot"]["checks"], after["dot"]["checks"])
        if a != b
    ]
    assert changed and all(kind == "needs_secret" for _, kind in changed)
    assert "a secret given at grading" in out


def test_regrade_with_new_points_and_dependencies_equals_a_live_grading(graded, tmp_path):
    out = tmp_path / "regraded"
    code, text, err = cli(
        "regrade", str(graded.folder), "--rubric", str(graded.rubric), "--out", str(out),
        "--roster", str(graded.roster),
    )  # fmt: skip
    assert code == graded.exit_changed, err
    regraded, live = decisions(out), decisions(graded.live_changed)
    assert regraded == live
    assert "Scores changed for 4 student(s):" in text
    amy = live["amy"]  # smtp_greets now 3 points, pop3_login 2: a new maximum for everyone
    assert f"amy  20/20 -> {points(amy['score'])}/{points(amy['max_score'])}" in text
    # the changes bit: ben's POP3 login, skipped at grading, is now marked from its record
    ben = {c["id"]: c for c in regraded["ben"]["checks"]}
    assert ben["pop3_login"]["status"] == "fail" and ben["pop3_login"]["max_points"] == 2
    ben_messages = decisions(out, EVERYTHING)["ben"]["checks"]
    assert "refused" in next(c["message"] for c in ben_messages if c["id"] == "pop3_login")
    first = {c["id"]: c for c in decisions(graded.folder)["ben"]["checks"]}
    assert first["pop3_login"]["status"] == "skipped"
    assert {s: r["score"] for s, r in regraded.items()} != {
        s: r["score"] for s, r in decisions(graded.folder).items()
    }
    assert {name: row["score"] for name, row in summary(out).items()} == {
        name: row["score"] for name, row in summary(graded.live_changed).items()
    }
    report = json.loads((out / "amy.json").read_text())
    assert (
        report["regraded_at"]
        and report["graded_at"] == json.loads((graded.folder / "amy.json").read_text())["graded_at"]
    )  # when the VM was seen, not when it was re-marked


def test_a_check_that_asks_something_new_needs_the_live_vm(graded, tmp_path):
    out = tmp_path / "extra"
    code, _, err = cli(
        "regrade", str(graded.folder), "--rubric", str(graded.rubric_extra), "--out", str(out),
        "--roster", str(graded.roster),
    )  # fmt: skip
    assert code == ExitStatus.OK, err  # every student regraded; one check could not be
    for name in CLASS:
        checks = {c["id"]: c for c in json.loads((out / f"{name}.json").read_text())["checks"]}
        new = checks["hostname_file"]
        assert new["status"] == "error" and new["error_kind"] == "needs_live_vm"
        assert new["message"].startswith("needs the live VM") and "/etc/hostname" in new["message"]
        assert new["points"] == 0
    live = decisions(graded.live_changed)  # the other checks are marked as live
    for name, decided in decisions(out).items():
        others = [c for c in decided["checks"] if c["id"] != "hostname_file"]
        assert others == live[name]["checks"]


def _tamper(path: Path) -> None:
    document = json.loads(gzip.decompress(path.read_bytes()))
    for command in document["body"]["commands"]:
        stdout = command.get("stdout") or {}
        if "644 bob bob" in (stdout.get("text") or ""):
            stdout["text"] = stdout["text"].replace("644 bob bob", "600 bob bob")
            break
    else:
        raise AssertionError("nothing to tamper with")
    path.write_bytes(gzip.compress(json.dumps(document).encode()))


def test_a_tampered_archive_is_refused_and_the_rest_regraded(graded, tmp_path):
    folder = tmp_path / "class"
    shutil.copytree(graded.folder, folder)
    _tamper(folder / "dot.evidence.json.gz")  # "her mailbox was private after all"
    (folder / "ben.evidence.json.gz").write_bytes((folder / "amy.evidence.json.gz").read_bytes())
    nested = b"[" * 100_000 + b"]" * 100_000  # odd structure: JSON nested 100,000 deep
    (folder / "cal.evidence.json.gz").write_bytes(gzip.compress(nested))
    out = tmp_path / "regraded"
    code, text, err = cli("regrade", str(folder), "--out", str(out))
    assert code == ExitStatus.NOT_GRADED, err
    assert "Regraded 1 of 4 students" in text and "Traceback" not in text + err
    cal = json.loads((out / "cal.json").read_text())
    assert cal["status"] == "error" and cal["error"].startswith("not regraded: ")
    dot = json.loads((out / "dot.json").read_text())
    assert dot["status"] == "error" and dot["score"] is None and dot["checks"] == []
    assert "checksum" in dot["error"] and "changed after grading" in dot["error"]
    ben = json.loads((out / "ben.json").read_text())
    assert ben["status"] == "error" and "not the archive ben.json was graded from" in ben["error"]
    assert decisions(out)["amy"] == decisions(graded.folder)["amy"]
    assert not (out / "dot.evidence.json.gz").exists()
    assert summary(out)["dot"]["score"] == ""  # not regraded: an empty score, never 0
    code, shown, err = cli("show", str(folder), "dot", "mailbox_permissions")
    assert code == ExitStatus.OK, err  # the report's excerpts, saying why no more
    assert "changed after grading" in shown and "'bob' (owner bob, mode 644)" in shown


def test_show_prints_the_whole_evidence_of_one_decision(graded):
    code, out, err = cli("show", str(graded.folder), "dot", "mailbox_permissions")
    assert code == ExitStatus.OK, err
    assert "checksum verified" in out and "status: FAIL, 0/1" in out
    assert "'bob' (owner bob, mode 644)" in out and "644 bob bob\\u0000" in out
    # a long output is shown whole, where the report keeps an excerpt
    code, out, err = cli("show", str(graded.folder), "amy", "time_disabled", "--all")
    archive = json.loads(gzip.decompress((graded.folder / "amy.evidence.json.gz").read_bytes()))
    services = next(
        c["stdout"]["text"] for c in archive["body"]["commands"]
        if c["command"]["text"].startswith("p=/etc/services;")
    )  # fmt: skip
    assert len(services) > 2000 and all(line in out for line in services.splitlines()[-5:])
    report = json.loads((graded.folder / "amy.json").read_text())
    excerpt = next(
        e["output"] for c in report["checks"] if c["id"] == "time_disabled"
        for e in c["evidence"] if e["source"].startswith("p=/etc/services;")
    )  # fmt: skip
    assert "truncated" in excerpt
    code, _, err = cli("show", str(graded.folder), "amy", "no_such_check")
    assert code == ExitStatus.BAD_INPUT and "no check 'no_such_check'" in err


def test_archives_hold_no_secrets_and_stay_small(graded, tmp_path, fleet):
    for name in CLASS:
        data = gzip.decompress((graded.folder / f"{name}.evidence.json.gz").read_bytes())
        assert fleet.password.encode() not in data
        assert len(data) < 1024 * 1024
        for page in graded.folder.glob(f"{name}.*"):  # what people read: no key, no password
            if not page.name.endswith(".gz"):
                assert (
                    PRIVATE_KEY_BODY not in page.read_text()
                    and fleet.password not in page.read_text()
                )
    # the private key dot mailed herself is her VM's data: the archive keeps it as it was (a
    # verdict may depend on the text around it); reports and pages show it cut out
    dot = gzip.decompress((graded.folder / "dot.evidence.json.gz").read_bytes()).decode()
    assert PRIVATE_KEY_BODY in dot and '"pop3_login"' in dot
    # a password other than the one used at grading cannot be checked without the VM
    out = tmp_path / "other-password"
    code, _, err = cli(
        "regrade", str(graded.folder), "--var", "bob_password=not-it", "--out", str(out)
    )
    assert code == ExitStatus.OK, err
    login = next(
        c for c in json.loads((out / "amy.json").read_text())["checks"] if c["id"] == "pop3_login"
    )
    assert (
        login["error_kind"] == "needs_live_vm"
        and "another value of bob_password" in login["message"]
    )
    out = tmp_path / "same-password"
    cli("regrade", str(graded.folder), "--var", f"bob_password={fleet.password}", "--out", str(out))
    assert decisions(out, EVERYTHING) == decisions(graded.folder, EVERYTHING)


def test_regrade_refuses_to_write_over_the_graded_folder(graded):
    code, _, err = cli("regrade", str(graded.folder), "--out", str(graded.folder))
    assert code == ExitStatus.BAD_INPUT and "another folder" in err


def test_gunzip_reads_an_archive(graded):
    """The archive is plain gzip'd JSON: a person can read it with standard tools."""
    shown = subprocess.run(
        ["gzip", "-dc", str(graded.folder / "amy.evidence.json.gz")],
        capture_output=True,
        check=True,
    )
    assert json.loads(shown.stdout)["format"] == "lab-grader-evidence/2"
