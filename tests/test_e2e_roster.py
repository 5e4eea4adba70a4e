"""grade --roster against a class of simulated VMs: every student graded or clearly not, the
summary and reports right, clones flagged, and an interrupted run finished by --resume."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from grader.base.errors import ExitStatus
from grader.cli import main
from scenarios import SCENARIOS
from tests.children import interruptible, stop
from tests.test_outputs import GRADESCOPE_SCHEMA, assert_nothing_injected, outside_fences

pytestmark = pytest.mark.vm
CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by scripts/setup
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# student -> the scenario of their VM (None: not graded, see NOT_GRADED)
CLASS = {
    "alice": "complete",
    "bob": "untouched",
    "carol": "sendmail_never_started",
    "erin": "complete",  # erin and frank: one VM cloned (the same host key)
    "frank": "root_ftp_allowed",
    "ivan": "hostile_strings",  # markup and formulas in his mail subjects, host name, processes
    "kate": "complete",  # kate and liam: one VM copied, its host key made again (ssh-keygen -A)
    "liam": "untouched",
    "gina": None,  # nothing answers at her address
    "hal": None,  # his VM does not accept the grader's key
}
NOT_GRADED = {
    "gina": ("unreachable", {"timeout", "unreachable"}, 2),
    "hal": ("error", {"auth_failed"}, 1),
}


@pytest.fixture(scope="module")
def class_roster(fleet, tmp_path_factory) -> Path:
    shared = fleet.new_host_key("clone")
    vms = fleet.boot(
        [
            ("alice", SCENARIOS["complete"]),
            ("bob", SCENARIOS["untouched"]),
            ("carol", SCENARIOS["sendmail_never_started"]),
            ("ivan", SCENARIOS["hostile_strings"]),
        ]
    )
    vms |= fleet.boot(
        [("erin", SCENARIOS["complete"]), ("frank", SCENARIOS["root_ftp_allowed"])],
        host_key_file=shared,
    )
    vms |= fleet.boot(
        [("kate", SCENARIOS["complete"]), ("liam", SCENARIOS["untouched"])],
        machine_id="0123456789abcdef0123456789abcdef",
    )
    stranger = tmp_path_factory.mktemp("stranger") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    vms |= fleet.boot(
        [("hal", SCENARIOS["untouched"])],
        authorized_key=stranger.with_suffix(".pub").read_text().strip(),
    )
    path = tmp_path_factory.mktemp("roster") / "class.csv"
    lines = ["student,host,identity,bob_password"]
    for student in CLASS:
        host = "198.18.0.250" if student == "gina" else vms[student].address
        lines.append(f"{student},{host},{fleet.identity},{fleet.password}")
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class ClassRun:
    exit: int
    stdout: str
    stderr: str
    out: Path


@pytest.fixture(scope="module")
def class_run(class_roster, tmp_path_factory) -> ClassRun:
    """One uninterrupted grading of the class, shared by the tests that read its folder."""
    out = tmp_path_factory.mktemp("run") / "class"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            [
                "--roster",
                str(class_roster),
                "--out",
                str(out),
                "--workers",
                "4",
                "--connect-timeout",
                "2",
                "--known-hosts",
                str(out.parent / "kh"),
            ]
        )
    return ClassRun(code, stdout.getvalue(), stderr.getvalue(), out)


def results(directory: Path) -> dict[str, dict]:
    """What a run decided, per student: without times, which differ between runs."""
    decided = {}
    for student in CLASS:
        report = json.loads((directory / f"{student}.json").read_text())
        kind = report["error_kind"]
        if student in NOT_GRADED and kind in NOT_GRADED[student][1]:
            kind = "/".join(sorted(NOT_GRADED[student][1]))  # either, as a class run may see it
        decided[student] = {
            "status": report["status"], "score": report["score"],
            "error_kind": kind,
            "checks": {c["id"]: c["status"] for c in report["checks"]},
            "flags": [f["students"] for f in report["flags"]],
        }  # fmt: skip
    return decided


def summary_rows(directory: Path) -> dict[str, dict[str, str]]:
    with open(directory / "summary.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_class_graded_with_summary_reports_and_flags(grade, class_roster, tmp_path):
    out = tmp_path / "run"
    run = grade(
        "--roster", str(class_roster), "--out", str(out), "--workers", "4", "--connect-timeout", "2"
    )
    assert run.exit == ExitStatus.NOT_GRADED  # gina and hal
    rows = summary_rows(out)
    assert list(rows) == list(CLASS)  # roster order
    for student, scenario in CLASS.items():
        report = json.loads((out / f"{student}.json").read_text())
        row = rows[student]
        assert report["student"] == student and row["host"] == report["host"]
        if scenario is None:
            status, kinds, attempts = NOT_GRADED[student]
            assert report["status"] == row["status"] == status
            assert report["error_kind"] in kinds and row["error_kind"] == report["error_kind"]
            assert report["attempts"] == attempts and row["attempts"] == str(attempts)
            assert report["score"] is None and row["score"] == ""  # not graded is not zero
            assert all(row[c] == "" for c in SCENARIOS["complete"].expected)
            continue
        expected = SCENARIOS[scenario].expected
        assert {c["id"]: c["status"] for c in report["checks"]} == expected, student
        earned = {c["id"]: c["points"] for c in report["checks"]}
        assert row["status"] == "graded" and float(row["score"]) == report["score"]
        assert report["score"] == sum(earned.values())
        assert {c: float(row[c]) for c in expected} == earned
    # the clones name each other, in their reports and in the summary
    assert results(out)["erin"]["flags"] == [["frank"]]
    assert results(out)["frank"]["flags"] == [["erin"]]
    assert "as frank" in rows["erin"]["flags"] and "as erin" in rows["frank"]["flags"]
    # kate and liam: another host key each, one machine-id (the rubric's [[unique]])
    assert results(out)["kate"]["flags"] == [["liam"]]
    assert (
        "same machine-id as liam: a copied VM, or one VM submitted twice?" in rows["kate"]["flags"]
    )
    assert [s for s, r in rows.items() if r["flags"]] == ["erin", "frank", "kate", "liam"]
    # progress: one line per student (stderr is not a terminal here); the closing table
    for student in CLASS:
        assert f"] {student} (" in run.stderr
    assert f"{len(CLASS) - 2} of {len(CLASS)} students graded" in run.stdout
    assert "Not graded" in run.stdout
    assert "Score distribution" in run.stdout and str(out) in run.stdout


def test_interrupted_run_is_finished_by_resume(grade, class_roster, class_run, tmp_path):
    full, partial = class_run.out, tmp_path / "partial"
    base = ["--roster", str(class_roster), "--connect-timeout", "2"]

    env = {
        **os.environ,
        "GRADER_KNOWN_HOSTS": str(tmp_path / "kh"),
        "GRADER_CACHE_DIR": str(tmp_path / "cache"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "grader", *base, "--out", str(partial), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(partial.glob("[!.]*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    finally:
        stop(process)
    assert process.returncode == 130
    finished = {p.stem for p in partial.glob("[!.]*.json")}
    assert finished and finished != set(CLASS)  # stopped midway
    for path in partial.glob("[!.]*.json"):
        json.loads(path.read_text())  # whole files only
    assert set(summary_rows(partial)) == finished  # the summary covers what finished
    assert "Interrupted" in stdout and "--resume" in stdout
    kept = {s: json.loads((partial / f"{s}.json").read_text()) for s in finished}

    resumed = grade(*base, "--out", str(partial), "--resume", "--workers", "4")
    assert resumed.exit == ExitStatus.NOT_GRADED
    assert results(partial) == results(full)
    for student, before in kept.items():
        after = json.loads((partial / f"{student}.json").read_text())
        if before["status"] == "graded":  # kept, not graded again
            assert after["graded_at"] == before["graded_at"]
            assert after["duration_s"] == before["duration_s"]
    assert "kept from the earlier run" in resumed.stderr


def test_roster_usage_errors(grade, tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text("student,host\ns1,198.18.0.251\ns1,198.18.0.252\n")
    run = grade("--roster", str(roster))
    assert (
        run.exit == ExitStatus.BAD_INPUT
        and "r.csv:3: student 's1' is already on line 2" in run.stderr
    )
    assert not (tmp_path / "reports").exists()
    assert grade("--roster", str(roster), "--workers", "0").exit == ExitStatus.BAD_INPUT
    both = grade("--roster", str(roster), "--host", "x")
    assert both.exit == ExitStatus.BAD_INPUT and "give one of" in both.stderr
    resume = grade("--roster", str(roster), "--resume")
    assert resume.exit == ExitStatus.BAD_INPUT


def test_class_folder_has_every_output(grade, class_run):
    out = class_run.out
    for student in CLASS:
        for name in (f"{student}.html", f"{student}.md", f"gradescope/{student}/results.json"):
            assert (out / name).is_file(), name
        jsonschema.validate(
            json.loads((out / f"gradescope/{student}/results.json").read_text()), GRADESCOPE_SCHEMA
        )
    for name in ("index.html", "junit.xml", "summary.csv"):
        assert (out / name).is_file()
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == list(CLASS)
    # ivan's markup reached the reports as text only
    page = (out / "ivan.html").read_text()
    assert_nothing_injected(page, allowed_scripts=0)
    assert "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;" in page
    assert_nothing_injected((out / "index.html").read_text(), allowed_scripts=1)
    assert "<script>" not in "\n".join(outside_fences((out / "ivan.md").read_text()))
    moodle = grade("export", "--lms", "moodle", str(out))
    rows = {row[0]: row for row in csv.reader(io.StringIO(moodle.stdout))}
    assert rows["ID number"][1] == "Lab 6: email, processes and networking (out of 20)"
    assert rows["gina"][1] == "" and rows["alice"][1] == "20"
    assert rows["ivan"][2].startswith("bob got the")  # feedback, with the subjects inside it
    assert "=HYPERLINK" in rows["ivan"][2]
    for row in rows.values():
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)
    canvas = grade("export", "--lms", "canvas", str(out), "--grade-column", "Lab 6")
    read = list(csv.DictReader(io.StringIO(canvas.stdout)))
    assert read[0]["Student"].strip() == "Points Possible" and read[0]["Lab 6"] == "20"
    sis = {r["SIS User ID"]: r["Lab 6"] for r in read[1:]}
    assert set(sis) == set(CLASS)  # every student has a row
    assert sis["gina"] == sis["hal"] == "" and sis["alice"] == "20"


def test_class_overview_renders_in_chromium(class_run):
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
        page.on(
            "request",
            lambda r: (
                None if r.url.startswith(("file:", "data:")) else problems.append(f"fetch: {r.url}")
            ),
        )
        page.goto((class_run.out / "index.html").as_uri())
        for chart in ("#histogram", "#passrates"):
            assert page.eval_on_selector(chart, "img => img.complete && img.naturalWidth") > 100
        rows = page.locator("#students tbody tr")
        assert rows.count() == len(CLASS)
        page.click("#students th:nth-child(4)")  # Score: ascending, the not graded first
        page.click("#students th:nth-child(4)")  # descending
        scores = page.eval_on_selector_all(
            "#students tbody td:nth-child(4)", "cells => cells.map(c => c.dataset.sort)"
        )
        assert [float(s) for s in scores] == sorted((float(s) for s in scores), reverse=True)
        page.click("text=ivan")  # a student's page, with his markup in it
        page.wait_for_load_state()
        assert page.url.endswith("/ivan.html")
        page.locator("details").first.click()
        assert "alert(" in page.inner_text("body")  # shown as text
        browser.close()
    assert problems == []


def test_shards_merged_give_the_class_with_clones_flagged_across_shards(
    grade, class_roster, class_run, tmp_path
):
    base = ["--roster", str(class_roster), "--connect-timeout", "2"]
    shards = [tmp_path / "shard-1", tmp_path / "shard-2"]
    for k, out in enumerate(shards, start=1):
        assert grade(*base, "--shard", f"{k}/2", "--out", str(out)).exit in (0, 3)
    in_shard = [{p.stem for p in out.glob("[!.]*.json")} for out in shards]
    assert not in_shard[0] & in_shard[1] and in_shard[0] | in_shard[1] == set(CLASS)
    assert ("erin" in in_shard[0]) != ("frank" in in_shard[0])  # the clones are apart
    alone = next(p for p in shards if (p / "erin.json").exists())
    assert json.loads((alone / "erin.json").read_text())["flags"] == []  # one shard cannot see it
    merged = tmp_path / "class"
    run = grade("merge", *map(str, shards), "--out", str(merged))
    assert run.exit == ExitStatus.NOT_GRADED  # gina and hal, as in one run
    assert results(merged) == results(class_run.out)
    assert (merged / "index.html").is_file() and (merged / "junit.xml").is_file()
    assert list(summary_rows(merged)) == sorted(CLASS)
    overlap = grade("merge", str(shards[0]), str(shards[0]), "--out", str(tmp_path / "x"))
    assert overlap.exit == ExitStatus.BAD_INPUT and "shard 1/2 is given twice" in overlap.stderr
