"""Renderers are pure functions of a Report."""

from grader.evidence import Evidence
from grader.render import render
from grader.results import CheckResult, Report, RubricRef


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
    assert "2 passed, 1 failed, 1 could not be checked, 1 skipped" in text
    assert "Exercise 9" in text and "student-vm (198.18.0.10)" in text
    assert "Hint: hint of b" in text and "Hint: hint of d" in text
    assert "hint of a" not in text and "hint of c" not in text  # no hint for a pass or an error
    assert "problem of the grader, not of your VM" in text
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
