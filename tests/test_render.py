"""Renderers are pure functions of a Report."""

import dataclasses

from grader.base.evidence import Evidence
from grader.base.results import CheckResult, Report, RubricRef
from grader.report.render import render


def check(check_id: str, status: str, points: float, max_points: float, **extra) -> CheckResult:
    fields = dict(
        id=check_id,
        section="Exercise 9",
        title=f"title of {check_id}",
        status=status,
        points=points,
        max_points=max_points,
        message=f"message of {check_id}",
        hint=f"hint of {check_id}",
        evidence=(Evidence("ss -ltn", "LISTEN 0 10"),),
    )
    return CheckResult(**{**fields, **extra})


REPORT = Report(
    host="student-vm",
    student=None,
    status="graded",
    error=None,
    error_kind=None,
    score=2.5,
    max_score=5.5,
    graded_at="2026-11-25T12:00:00Z",
    duration_s=1.5,
    rubric=RubricRef("Lab 9", "ab" * 32),
    host_key="SHA256:abc",
    address="198.18.0.10",
    checks=(
        check("a", "pass", 1, 1),
        check("b", "fail", 0, 1.5),
        check("c", "error", 0, 1),
        check("d", "skipped", 0, 1),
        check("e", "pass", 1.5, 1.5),
    ),
)


def test_json_round_trip_and_whole_numbers():
    text = render("json", REPORT)
    assert '"max_points": 1,' in text and '"points": 1.5' in text
    import json

    assert Report.from_dict(json.loads(text)) == REPORT


def test_text_shows_score_sections_and_lost_marks():
    text = render("text", REPORT, width=120)
    assert "Score 2.5 / 5.5" in text
    # d was skipped with no kind (an older report): counted lost, as it was then
    assert "2 passed, 2 lost, 1 not checked; 2.5 point(s) lost" in text
    assert "Not checked (not counted against you)" in text and "c (1 point not checked)" in text
    assert "Exercise 9" in text and "student-vm (198.18.0.10)" in text
    assert "Hint: hint of b" in text and "Hint: hint of d" in text
    assert "hint of a" not in text and "hint of c" not in text  # no hint for a pass or an error
    assert "problem of the grading, not of your VM" in text
    assert "\x1b[" not in text  # no colour unless asked


def test_text_not_graded():
    report = Report(
        **{
            **REPORT.__dict__,
            "status": "unreachable",
            "score": None,
            "checks": (),
            "error": "no answer",
            "error_kind": "timeout",
            "host_key": None,
            "address": None,
        }
    )
    text = render("text", report)
    assert "NOT GRADED (timeout): no answer" in text and "Score" not in text


def test_student_view_counts_hidden_checks_and_shows_no_trace_of_them():
    from grader.base.results import Outcome
    from grader.engine.catalog import built_in_rubric
    from grader.engine.rubric import load_rubric
    from grader.engine.scoring import score
    from grader.report.views import student_view

    rubric = load_rubric(built_in_rubric())
    outcomes = {
        i.id: Outcome("fail", f"secret detail of {i.id}", (Evidence("cmd", "out"),))
        for i in rubric.items
    }
    results, total = score(rubric, outcomes)
    full = Report(**{**REPORT.__dict__, "checks": results, "score": total, "max_score": 20.0})
    view = student_view(full, rubric)
    assert view.view == "student" and view.hidden_checks == 1
    assert view.max_score == 19 and view.score == 0 and len(view.checks) == 19
    for shown in (render("json", view), render("text", view, width=200)):
        assert "mailbox_permissions" not in shown and "Mailboxes are private" not in shown
        assert "secret detail of mailbox_permissions" not in shown
    assert "1 more check is marked by your instructor" in render("text", view, width=200)


def test_lost_marks_show_their_evidence_and_checks_needing_root_are_named():
    needs_root = check("q", "error", 0, 1, error_kind="needs_root", message="needs root: x")
    failed = check(
        "b",
        "fail",
        0,
        1.5,
        evidence=(
            Evidence("test -L /etc/inetd.conf", "[exit 1]"),
            Evidence("ss --numeric --listening", "LISTEN 0 128 0.0.0.0:22"),
            Evidence('p=/etc/inetd.conf; if [ -L "$p" ]; then echo symlink; fi', "file"),
            Evidence("POP3 connection to 198.18.0.10:110", "refused"),
            Evidence("ss --numeric --listening", "LISTEN 0 128 0.0.0.0:22"),
        ),
    )
    report = Report(**{**REPORT.__dict__, "checks": (needs_root, failed)})
    text = render("text", report, width=200)
    assert "Not run as root: 1 check could not look where only root may: q." in text
    assert "The grader needs root to check this (sudo)." in text
    assert (
        "Looked at: ss --numeric --listening; /etc/inetd.conf; POP3 connection to 198.18.0.10:110"
    ) in text
    assert "test -L" not in text
    # a student's screen ends with what to do: what was looked at only when asked for
    student = dataclasses.replace(report, view="student")
    assert "Looked at:" not in render("text", student, width=200)
    assert "Looked at: ss --numeric" in render("text", student, width=200, evidence=True)
    assert "Looked at:" not in render("text", report, width=200, evidence=False)


def test_a_check_id_is_never_cut_in_the_table():
    long = dataclasses.replace(REPORT.checks[1], id="vsftpd_anonymous_disabled_and_more_words")
    text = render("text", dataclasses.replace(REPORT, checks=(REPORT.checks[0], long)), width=60)
    assert "…" not in text
    assert "vsftpd_anonymous_disabled_and_more_words" in "".join(
        line.split("│")[2].strip() for line in text.splitlines() if line.count("│") > 3
    )


def test_wrapped_lines_of_a_lost_mark_keep_their_indentation():
    import dataclasses

    long = dataclasses.replace(
        REPORT.checks[1], message="a long reason " * 12, hint="a long hint " * 12
    )
    report = dataclasses.replace(REPORT, checks=(REPORT.checks[0], long))
    text = render("text", report, width=60, brief=True)
    assert "Details" not in text  # brief: no table
    lost = text.split("Where the marks were lost\n", 1)[1].rstrip("\n").splitlines()
    assert lost[0].startswith("  - b (1.5 points lost): a long reason")
    assert len(lost) > 6 and all(line.startswith("    ") and line.strip() for line in lost[1:])
