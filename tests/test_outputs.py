"""Every report format, fed strings a student controls: nothing they hold becomes markup,
script or a formula, and each format has the shape its consumer expects."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import jsonschema
import pytest

from grader.base.evidence import Evidence
from grader.base.results import CheckResult, Flag, Report, RubricRef
from grader.engine.catalog import built_in_rubric
from grader.engine.rubric import load_rubric
from grader.report.outputs import class_outputs
from grader.report.render import render
from grader.report.render.lms import render as render_lms

RUBRIC = load_rubric(built_in_rubric())
PAYLOADS = [
    '<script>alert("subject")</script>',
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(2)>',
    '=HYPERLINK("http://evil.example","win")',
    "@SUM(1+1)",
    "+cmd|' /C calc'!A0",
    "```\n# heading\n```",
    "javascript:alert(3)",
    "bad\x00control\x1bchars",
]
HOSTILE = " | ".join(PAYLOADS)


def report(student: str, **fields) -> Report:
    checks = []
    for n, item in enumerate(RUBRIC.items):
        status = ["pass", "fail", "error", "skipped"][n % 4]
        checks.append(CheckResult(
            item.id, item.section, item.title, status, item.points if status == "pass" else 0,
            item.points, f"message with {HOSTILE}" if status != "pass" else "", item.hint,
            (Evidence(f"head -c 10 -- /var/mail/{PAYLOADS[1]}", f"Subject: {HOSTILE}"),),
            "needs_root" if status == "error" else None, item.visibility,
        ))  # fmt: skip
    base = dict(
        host=f"vm-{student}",
        student=student,
        status="graded",
        error=None,
        error_kind=None,
        score=sum(c.points for c in checks),
        max_score=20.0,
        graded_at="2026-11-25T10:00:00Z",
        duration_s=3.2,
        rubric=RubricRef(RUBRIC.title, RUBRIC.sha256),
        host_key="SHA256:x",
        address="198.18.0.9",
        checks=tuple(checks),
        flags=(Flag("shared_host_key", f"same key as {PAYLOADS[0]}", ("b",)),),
    )
    return Report(**{**base, **fields})


CLASS = [
    report("alice"),
    report(PAYLOADS[0], host=PAYLOADS[2]),
    report(
        "gone",
        status="unreachable",
        score=None,
        checks=(),
        error=f"no answer {HOSTILE}",
        error_kind="timeout",
        flags=(),
    ),
]


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    return parser


def assert_nothing_injected(html: str, allowed_scripts: int) -> Elements:
    page = parse(html)
    tags = {tag for tag, _ in page.found}
    assert "svg" not in tags and "iframe" not in tags and "object" not in tags
    for tag, attrs in page.found:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for name in ("href", "src"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith("javascript:"), (tag, attrs)
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:image/svg+xml;base64,")
        if tag in ("link", "script") and (attrs.get("src") or attrs.get("href")):
            raise AssertionError(f"fetches something: {tag} {attrs}")  # self-contained
    assert sum(tag == "script" for tag, _ in page.found) == allowed_scripts
    return page


def test_student_page_escapes_everything_from_the_vm():
    html = render("html", CLASS[1])
    assert_nothing_injected(html, allowed_scripts=0)
    assert "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;" in html
    assert "<details>" in html and "Hint:" in html and "Score" in html


def test_student_page_of_a_host_not_graded():
    html = render("html", CLASS[2])
    assert_nothing_injected(html, allowed_scripts=0)
    assert "Not graded (timeout)" in html


def test_class_overview_has_charts_table_and_only_its_own_script():
    html = render("index", CLASS, rubric=RUBRIC)
    page = assert_nothing_injected(html, allowed_scripts=1)
    assert "addEventListener" in page.scripts[0] and "alert" not in page.scripts[0]
    images = [a for t, a in page.found if t == "img"]
    assert [a["id"] for a in images] == ["histogram", "passrates"]
    links = [a["href"] for t, a in page.found if t == "a"]
    assert links == ["alice.html", "_script_alert__subject____script_.html", "gone.html"]
    assert "Not graded" in html and "timeout" in html


def outside_fences(markdown: str) -> list[str]:
    """The lines a Markdown renderer reads as prose (not inside a fenced code block)."""
    prose, fence = [], None
    for line in markdown.splitlines():
        marks = len(line) - len(line.lstrip("`"))
        if fence is None and marks >= 3:
            fence = marks
        elif fence is not None and marks >= fence and not line.strip("`"):
            fence = None
        elif fence is None:
            prose.append(line)
    return prose


def test_markdown_escapes_markup_and_fences_evidence():
    text = render("md", CLASS[1])
    prose = "\n".join(outside_fences(text))
    for markup in ("<script", "<img", "<svg", "\n# heading"):
        assert markup not in prose
    assert "&lt;script&gt;" in prose
    assert prose.count("<details>") == prose.count("</details>") > 0  # ours only
    assert [line for line in text.splitlines() if line.startswith("````text")], (
        "evidence holding ``` needs a longer fence"
    )
    assert "\x00" not in text and "\x1b" not in text


@pytest.mark.parametrize(
    "text",
    [
        "Exercises 1-3: sending and reading mail",
        "/etc/inetd.conf (line 19)",
        "1. first",
        "12) twelfth",
        "# not a heading",
        "- not a list",
        "+ nor this",
        "= nor a setext line",
        "a *b* _c_ ~~d~~ `e` [f](g) ![h](i) <b>j</b> &amp; | k \\ l",
        '<script>alert("x")</script>',
    ],
)
def test_markdown_escape_is_read_back_as_the_text_and_only_where_needed(text):
    from markdown_it import MarkdownIt

    from grader.report.render.markdown import escape

    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    assert parser.render(escape(text)) == f"<p>{html.escape(text)}</p>\n"
    if not any(mark in text for mark in "*_~`[]<>&|\\") and text[0].isalpha():
        assert escape(text) == text  # nothing escaped that is not markup


def test_junit_has_a_suite_per_student_and_a_case_per_check():
    root = ET.fromstring(render("junit", CLASS).encode())
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["alice", PAYLOADS[0], "gone"]
    alice = suites[0]
    assert len(alice.findall("testcase")) == 20 and alice.get("tests") == "20"
    assert alice.get("failures") == str(len(alice.findall("testcase/failure")))
    assert alice.get("errors") == str(len(alice.findall("testcase/error")))
    assert alice.get("skipped") == str(len(alice.findall("testcase/skipped")))
    assert suites[2].find("testcase/error").get("type") == "timeout"
    assert "\x00" not in render("junit", CLASS)


# The fields of Gradescope's autograder results format, as its specification documents them.
GRADESCOPE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["score", "max_score", "name"],
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "name_format": {"type": "string"}, "number": {"type": "string"},
                "output": {"type": "string"}, "output_format": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                "extra_data": {"type": "object"},
            },
        }},
    },
}  # fmt: skip


def test_gradescope_results_follow_the_documented_format():
    results = json.loads(render("gradescope", CLASS[0]))
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    assert results["score"] == CLASS[0].score and len(results["tests"]) == 20
    hidden = [t for t in results["tests"] if t["tags"][0] == "mailbox_permissions"]
    assert hidden[0]["visibility"] == "after_published"
    assert {t["visibility"] for t in results["tests"]} == {"visible", "after_published"}
    assert results["tests"][0]["number"] == "1.1"
    assert sum(t["max_score"] for t in results["tests"]) == 20


def test_gradescope_for_a_host_not_graded_records_no_score():
    results = json.loads(render("gradescope", CLASS[2]))
    jsonschema.validate(results, GRADESCOPE_SCHEMA)
    assert "score" not in results and "tests" not in results
    assert "could not be graded (timeout)" in results["output"]


def test_moodle_import_shape():
    rows = list(csv.reader(io.StringIO(render_lms(CLASS, "moodle"))))
    assert rows[0] == ["ID number", f"{RUBRIC.title} (out of 20)", "Feedback"]
    by_id = {row[0]: row for row in rows[1:]}
    assert by_id["alice"][1] == f"{CLASS[0].score:g}"
    assert by_id["gone"][1] == ""  # not graded: empty, never 0
    feedback = by_id["alice"][2]
    assert "Mailboxes are private" not in feedback  # hidden items stay out of feedback
    # ... but the points they cost are there: the marks listed add up to the grade
    taken = sum(float(x) for x in re.findall(r"\(-([0-9.]+)\)", feedback))
    # and what could not be checked is said apart, as not lost
    unchecked = sum(float(x) for x in re.findall(r"\(([0-9.]+) point\(s\), not lost\)", feedback))
    assert unchecked == CLASS[0].unchecked_points > 0
    assert CLASS[0].max_score - taken - unchecked == CLASS[0].score, feedback
    assert feedback.startswith("'") or not feedback.startswith(("=", "+", "-", "@"))
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row)


def test_canvas_import_shape():
    text = render_lms(CLASS, "canvas", grade_column="Lab 6 (1234)")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [
        "Student",
        "ID",
        "SIS User ID",
        "SIS Login ID",
        "Section",
        "Lab 6 (1234)",
    ]
    by_id = {row["SIS User ID"]: row for row in rows}
    assert by_id["alice"]["Lab 6 (1234)"] == f"{CLASS[0].score:g}"
    assert by_id["gone"]["Lab 6 (1234)"] == ""
    assert by_id[PAYLOADS[0]]["Student"] == ""  # ids are written as given (no formula there)
    login = render_lms(CLASS, "canvas", id_column="SIS Login ID")
    by_login = {row["SIS Login ID"]: row for row in csv.DictReader(io.StringIO(login))}
    assert by_login["alice"]["SIS User ID"] == "" and "alice" in by_login


def test_a_roster_folder_gets_every_output():
    files = class_outputs(CLASS, RUBRIC)
    for stem in ("alice", "_script_alert__subject____script_", "gone"):
        assert {f"{stem}.html", f"{stem}.md", f"gradescope/{stem}/results.json"} <= set(files)
    assert {"index.html", "junit.xml", "summary.csv"} <= set(files)
    # pages for students are the student view: the hidden item is only counted
    assert "mailbox_permissions" not in files["alice.html"]
    assert "1 more check is marked by your instructor" in files["alice.html"]
    assert "mailbox_permissions" in files["index.html"]  # the instructor's overview


def test_no_format_crashes_on_an_empty_check_list():
    empty = dataclasses.replace(CLASS[0], checks=(), score=0.0)
    for fmt in ("html", "md", "junit", "gradescope", "json", "text"):
        assert render(fmt, empty)


def test_class_overview_without_matplotlib_shows_the_figures_as_tables():
    reports = [report("alice"), report("bob", status="unreachable", score=None, checks=())]
    html = render("index", reports, rubric=RUBRIC, charts=False)
    assert_nothing_injected(html, allowed_scripts=1)
    assert 'id="histogram-table"' in html and 'id="passrates-table"' in html
    assert "<img" not in html


def test_class_overview_where_nobody_was_graded_says_so():
    reports = [report("bob", status="unreachable", score=None, checks=())]
    html = render("index", reports, rubric=RUBRIC)
    assert "Nobody was graded" in html and "<img" not in html


def test_a_self_checked_folder_is_told_as_it_was_graded():
    """A --local --out folder regraded: the host, not "None (vm)", and the score out of the
    student view's maximum, as summary.csv says."""
    from grader.cli.progress import who_is

    mine = dataclasses.replace(CLASS[0], student=None, host="vm", view="student", max_score=19)
    assert who_is(mine) == "vm"
    assert who_is(CLASS[0]) == f"{CLASS[0].student} ({CLASS[0].host})"
    text = render("class", [mine], rubric=RUBRIC)
    assert "Scores out of 19:" in text


def test_who_the_roster_says_a_student_is_reaches_summary_and_canvas():
    ada = dataclasses.replace(
        CLASS[0], person={"first name": "Ada", "last name": "Lovelace", "section": "B"}
    )
    rows = list(csv.DictReader(io.StringIO(render("summary_csv", [ada, CLASS[2]], rubric=RUBRIC))))
    assert rows[0]["first name"] == "Ada" and rows[0]["section"] == "B"
    assert rows[1]["first name"] == ""
    possible, canvas = csv.DictReader(io.StringIO(render_lms([ada], "canvas")))
    assert possible["Student"] == "    Points Possible" and possible[RUBRIC.title] == "20"
    assert (canvas["Student"], canvas["Section"], canvas["SIS User ID"]) == (
        "Ada Lovelace", "B", ada.student
    )  # fmt: skip


def test_the_class_page_counts_no_check_that_was_not_checked_as_lost():
    """A check not checked is no 0% pass rate, no lost point; a --host grading's row is named
    by its host, never "None"."""
    from grader.report.render.index import pass_rates_of

    def turned_away(student: str | None, host: str) -> Report:
        checks = tuple(
            CheckResult(i.id, i.section, i.title, "error" if i.id == "smtp_greets" else "pass",
                        0 if i.id == "smtp_greets" else i.points, i.points, "", "", (),
                        "busy" if i.id == "smtp_greets" else None)
            for i in RUBRIC.items
        )  # fmt: skip
        return dataclasses.replace(report("x"), student=student, host=host, checks=checks,
                                   score=sum(c.points for c in checks))  # fmt: skip

    reports = [turned_away("amy", "vm-amy"), turned_away(None, "vm-solo")]
    rates, unchecked = pass_rates_of(reports, RUBRIC)
    assert "smtp_greets" not in rates and unchecked == {"smtp_greets": 2}
    assert rates["smtp_daemon"] == 1.0
    html = render("index", reports, rubric=RUBRIC, charts=False)
    assert "None" not in html and "vm-solo.html" in html
    assert "smtp_greets</code> for 2 students" in html
    assert 'id="incomplete"' in html and "1 point(s) not checked (smtp_greets)" in html
    text = render("class", reports, rubric=RUBRIC)
    assert "vm-solo: 1 point(s) not checked (smtp_greets)" in text
