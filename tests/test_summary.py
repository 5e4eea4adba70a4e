"""The class summary and the integrity flags are pure functions of the reports."""

import csv
import dataclasses
import io

from grader.base.results import CheckResult, Flag, Report, RubricRef
from grader.classrun.integrity import flag_shared_host_keys
from grader.engine.catalog import built_in_rubric
from grader.engine.rubric import load_rubric
from grader.report.render import render

RUBRIC = load_rubric(built_in_rubric())


def report(student: str, **fields) -> Report:
    checks = tuple(
        CheckResult(i.id, i.section, i.title, "pass", i.points, i.points, "", i.hint, ())
        for i in RUBRIC.items
    )
    base = dict(
        host=f"{student}.vm",
        student=student,
        status="graded",
        error=None,
        error_kind=None,
        score=20.0,
        max_score=20.0,
        graded_at="2026-11-25T00:00:00Z",
        duration_s=1.0,
        rubric=RubricRef(RUBRIC.title, RUBRIC.sha256),
        host_key=f"SHA256:{student}",
        address="198.18.0.9",
        checks=checks,
    )
    return Report(**{**base, **fields})


def rows(reports) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render("summary_csv", reports, rubric=RUBRIC))))


def test_summary_columns_and_a_student_not_graded():
    gone = report(
        "s2",
        status="unreachable",
        score=None,
        checks=(),
        host_key=None,
        error="no answer",
        error_kind="timeout",
        attempts=2,
    )
    first, second = rows([report("s1"), gone])
    header = list(first)
    assert header[:6] == ["student", "host", "status", "score", "max_score", "unchecked_points"]
    assert header[6:26] == [i.id for i in RUBRIC.items]
    assert header[26:] == ["unchecked", "error_kind", "error", "attempts", "flags"]
    assert first["score"] == "20" and first["smtp_listening"] == "0.5"
    assert second["status"] == "unreachable" and second["score"] == ""  # never 0
    assert second["smtp_daemon"] == "" and second["error_kind"] == "timeout"
    assert second["attempts"] == "2"


def test_formulas_are_neutralised():
    (row,) = rows([report('=HYPERLINK("x")', host="@evil", error="-1+1")])
    assert row["student"] == '\'=HYPERLINK("x")' and row["host"] == "'@evil"
    assert row["error"] == "'-1+1"


def test_shared_host_keys_flag_both_students_and_clear_stale_flags():
    a, b, c = report("a", host_key="SHA256:same"), report("b", host_key="SHA256:same"), report("c")
    flagged = flag_shared_host_keys([a, b, c])
    assert [f.students for f in flagged[0].flags] == [("b",)]
    assert [f.students for f in flagged[1].flags] == [("a",)]
    assert "same SSH host key (SHA256:same) as a" in flagged[1].flags[0].message
    assert flagged[2].flags == ()
    # b rebuilt its VM: a's old flag goes away
    rebuilt = dataclasses.replace(flagged[1], host_key="SHA256:new")
    assert [r.flags for r in flag_shared_host_keys([flagged[0], rebuilt])] == [(), ()]


def test_store_resumes_only_whole_graded_reports_of_the_same_rubric(tmp_path):
    from grader.report.store import ReportStore

    store = ReportStore(tmp_path)
    store.save(report("ok"))
    assert store.reusable("ok", RUBRIC) == report("ok")
    other = dataclasses.replace(RUBRIC, sha256="0" * 64)
    assert store.reusable("ok", other) is None  # graded with another rubric: grade again
    store.save(report("gone", status="unreachable", score=None, checks=()))
    assert store.reusable("gone", RUBRIC) is None  # not graded: try again
    (tmp_path / "torn.json").write_text('{"host": "x", ')
    assert store.reusable("torn", RUBRIC) is None
    assert store.reusable("never", RUBRIC) is None
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def turned_away(student: str) -> Report:
    """A lab done right whose SMTP server turned the grader away: 2.5 points not checked."""
    away = {"smtp_listening", "smtp_greets"}
    checks = tuple(
        dataclasses.replace(c, status="error", points=0.0, error_kind="busy") if c.id in away else c
        for c in report(student).checks
    )
    return report(student, checks=checks, score=sum(c.points for c in checks))


def test_a_check_not_checked_is_no_zero_in_the_summary_or_the_report():
    (row,) = rows([turned_away("s1")])
    assert row["score"] == "18.5" and row["unchecked_points"] == "1.5"
    assert row["smtp_greets"] == "" and row["smtp_listening"] == ""  # not a 0
    assert row["smtp_daemon"] == "1"
    assert row["unchecked"] == "smtp_listening smtp_greets"
    (done,) = rows([report("s2")])
    assert done["unchecked_points"] == "0" and done["unchecked"] == ""
    import json

    data = json.loads(render("json", turned_away("s1")))
    assert data["unchecked"] == ["smtp_listening", "smtp_greets"]
    assert data["unchecked_points"] == 1.5
    assert Report.from_dict(data) == turned_away("s1")  # derived fields are not read back
    text = render("text", turned_away("s1"), width=200)
    assert "18.5 of 18.5 checked; 1.5 points not checked" in text


def test_a_report_carries_its_format_and_older_ones_are_read_through_one_adapter(tmp_path):
    import json

    from grader.base.results import FORMAT
    from grader.report.store import ReportStore

    flagged = report("amy", flags=(Flag("shared_host_key", "same key as ben", ("ben",)),))
    written = flagged.to_dict()
    assert written["format"] == FORMAT == 3
    assert Report.from_dict(written) == flagged
    # format 2 (before the field): no format, a check without notes, a flag without students
    older = {k: v for k, v in written.items() if k not in ("format", "system_ids")}
    older["checks"] = [{k: v for k, v in c.items() if k != "notes"} for c in written["checks"]]
    older["flags"] = [{"kind": "shared_host_key", "message": "same key as ben"}]
    read = Report.from_dict(older)
    assert read.checks == flagged.checks and read.flags[0].students == ()
    # a newer one is named, not half-read
    (tmp_path / "amy.json").write_text(json.dumps({**written, "format": 4}))
    (tmp_path / "ben.json").write_text(json.dumps(report("ben").to_dict()))
    folder = ReportStore(tmp_path).read_all()
    assert [r.student for _, r in folder.found] == ["ben"]
    assert [(p.name, why) for p, why in folder.unreadable] == [
        ("amy.json", "a report of format 4: this grader reads formats 2 to 3 (a newer grader "
         "wrote it?)")
    ]  # fmt: skip
