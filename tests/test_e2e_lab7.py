"""A second, different lab, as a pack the grader knows nothing about: Lab 7 (BIND 9 and Apache 2
on simulated VMs, DNS and HTTP probes from outside, a per-student variant). Graded as a class,
regraded, sharded and merged, exported, seen as students see it, and proved on its scenarios."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from grader.sim.prove import problems
from labs.lab7.scenarios import COURSE_SECRET, SCENARIOS, variant

pytestmark = pytest.mark.vm
PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def roster(lab7_vms, fleet, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lab7") / "class.csv"
    rows = [f"{name},{vm.address},{fleet.identity}" for name, vm in lab7_vms.items()]
    path.write_text("student,host,identity\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def graded(roster, tmp_path_factory, monkeypatch_module) -> Path:
    from grader.cli import main

    out = tmp_path_factory.mktemp("lab7run") / "class"
    monkeypatch_module.setenv("COURSE_SECRET", COURSE_SECRET)
    code = main(
        ["--roster", str(roster), "--lab", "lab7", "--out", str(out),
         "--var-env", "course_secret=COURSE_SECRET", "--known-hosts", str(out.parent / "kh")]
    )  # fmt: skip
    assert code == ExitStatus.OK
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


def test_every_lab7_scenario_gets_the_verdicts_it_states(graded):
    for name, scenario in SCENARIOS.items():
        report = json.loads((graded / f"l7-{name}.json").read_text())
        assert statuses(report) == scenario.expected, (name, [
            (c["id"], c["message"]) for c in report["checks"] if c["status"] != "pass"
        ])  # fmt: skip
        mine = variant(f"l7-{name}")
        assert report["variant"] == {"zone": mine.zone, "token": mine.token}


def test_lab7_proves_its_checks(graded):
    got = {
        name: statuses(json.loads((graded / f"l7-{name}.json").read_text())) for name in SCENARIOS
    }
    assert problems({n: s.expected for n, s in SCENARIOS.items()}, got) == []


def test_lab7_regrades_to_the_same_verdicts_without_the_vms(
    grade, graded, roster, tmp_path, monkeypatch
):
    monkeypatch.setenv("COURSE_SECRET", COURSE_SECRET)
    again = tmp_path / "again"
    run = grade(
        "regrade", str(graded), "--out", str(again), "--var-env", "course_secret=COURSE_SECRET"
    )
    assert run.exit == ExitStatus.OK, run.stderr
    for name in SCENARIOS:
        before = json.loads((graded / f"l7-{name}.json").read_text())
        after = json.loads((again / f"l7-{name}.json").read_text())
        assert after["checks"] == before["checks"] and after["variant"] == before["variant"]
    assert "0 check(s) needed the live VM." in run.stdout


def test_lab7_shards_merge_export_and_the_student_view(
    grade, graded, roster, tmp_path, monkeypatch
):
    monkeypatch.setenv("COURSE_SECRET", COURSE_SECRET)
    common = ["--roster", str(roster), "--lab", "lab7", "--var-env", "course_secret=COURSE_SECRET"]
    shards = [tmp_path / "k1", tmp_path / "k2"]
    for k, out in enumerate(shards, start=1):
        assert grade(*common, "--shard", f"{k}/2", "--out", str(out)).exit == ExitStatus.OK
    merged = tmp_path / "merged"
    assert grade("merge", *map(str, shards), "--out", str(merged)).exit == ExitStatus.OK
    for name in SCENARIOS:
        a = json.loads((merged / f"l7-{name}.json").read_text())
        b = json.loads((graded / f"l7-{name}.json").read_text())
        assert statuses(a) == statuses(b)
    moodle = grade("export", "--lms", "moodle", str(merged))
    rows = {row[0]: row for row in csv.reader(io.StringIO(moodle.stdout))}
    assert rows["ID number"][1] == "Lab 7: name service and the web (out of 10)"
    assert rows["l7-complete"][1] == "10"
    page = (merged / "l7-untouched.html").read_text()
    assert variant("l7-untouched").token in page  # the student's page shows their variant


def test_lab7_student_view_and_text_report_show_the_variant(grade, lab7_vms, fleet, monkeypatch):
    monkeypatch.setenv("COURSE_SECRET", COURSE_SECRET)
    vm = lab7_vms["l7-listing_on"]
    run = grade(
        "--host", vm.address, "--identity", str(fleet.identity), "--lab", "lab7",
        "--student", "l7-listing_on", "--var-env", "course_secret=COURSE_SECRET",
        "--student-view",
    )  # fmt: skip
    assert run.exit == ExitStatus.NOT_ALL_PASSED
    mine = variant("l7-listing_on")
    assert f"zone = {mine.zone}" in run.stdout and f"token = {mine.token}" in run.stdout
    assert "Directory listing is off" in run.stdout.replace("\n", " ")
    assert "Options -Indexes" in run.stdout.replace("\n", " ")  # the hint of the lost mark


def message(graded: Path, name: str, check: str) -> str:
    report = json.loads((graded / f"l7-{name}.json").read_text())
    return next(c["message"] for c in report["checks"] if c["id"] == check)


def test_lab7_messages_name_the_cause_the_evidence_shows(graded):
    """The right verdict is not enough: the message must send the student the right way."""
    zone = variant("l7-mx_no_trailing_dot").zone
    assert f"mail.{zone}.{zone}." in message(graded, "mx_no_trailing_dot", "mx_record")
    assert "trailing dot" in message(graded, "mx_no_trailing_dot", "mx_record")
    assert "preference 20" in message(graded, "mx_preference_20", "mx_record")
    assert "trailing dot" in message(graded, "cname_nowhere", "shop_record")
    assert "went down" in message(graded, "serial_down", "serial_bumped")
    assert "allow-query { localhost; }" in message(graded, "allow_query_localhost", "www_record")
    broken = message(graded, "zone_syntax_error", "serial_bumped")
    assert "does not load" in broken and "named-checkzone" in broken
    assert "does not load" in message(graded, "zone_syntax_error", "www_record")
    assert "loopback and link-local" in message(graded, "stock_listen_v6", "named_listens_outside")
    for name in ("listing_hidden", "listing_folder_removed"):
        said = message(graded, name, "listing_off")
        assert "the folder is hidden, not the listing turned off" in said, said
        assert "apache2.conf" in said  # where Apache's configuration still lists it
    # a VM where named answers nobody outside is told at once (ICMP), not after 15 s a question
    untouched = json.loads((graded / "l7-untouched.json").read_text())
    asked = [e for c in untouched["checks"] for e in c["evidence"] if "DNS query" in e["source"]]
    assert asked and all("refused" in e["output"] for e in asked), asked
    skipped = [c for c in untouched["checks"] if c["status"] == "skipped"]
    assert skipped and not any(e for c in skipped for e in c["evidence"] if "DNS" in e["source"])
