"""The course on the web, end to end: ``grade serve`` started as people start it, a real headless
chromium (Debian's) driven through a student's and a member of staff's pages, gradings of a
real simulated VM asked for from the browser; axe-core on every page; a server stopped while
it grades; two ``grade worker``s and a serve process sharing one queue on PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios import SCENARIOS
from tests.children import interruptible
from tests.hostile import NOBODY
from tests.test_e2e_course import BASICS_CHECKS, grade, new_database, postgresql  # noqa: F401
from tests.test_e2e_roster import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.vm

RUBRIC = """\
title = "Lab 1: the basics"

[[sections]]
id = "basics"
title = "The basics"

[[sections.items]]
id = "sshd_runs"
points = 2
hint = "Start sshd: /usr/sbin/sshd"

[[sections.items]]
id = "hostname_file"
points = 1
"""
COURSE = """\
title = "Systems <b>2026</b>"
roster = "class.csv"
staff = ["anna"]

[[labs]]
id = "basics"
rubric = "basics/rubric.toml"
due = 2099-12-01T12:00:00+00:00
requests = { every = "1s", per_day = 50 }
"""


def make_course(root: Path, rows: list[tuple[str, str, str]], db: str | None = None) -> Path:
    course = root / "course"
    (course / "basics" / "checks").mkdir(parents=True)
    (course / "basics" / "rubric.toml").write_text(RUBRIC)
    (course / "basics" / "checks" / "test_basics.py").write_text(BASICS_CHECKS)
    top = f'db = "{db}"\n' if db else ""
    (course / "course.toml").write_text(top + COURSE)
    lines = ["student,host,name"] + [",".join(r) for r in rows]
    (course / "class.csv").write_text("\n".join(lines) + "\n")
    return course


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(course: Path, fleet, tmp: Path, *extra: str, command: str = "serve") -> Iterator[str]:
    """``grade serve`` (or ``grade worker``) of the course, as a process of its own; its
    address. Stopped with SIGTERM at the end, as systemd stops it."""
    port = free_port()
    args = [sys.executable, "-m", "grader", command, "--course", str(course),
            "--identity", str(fleet.identity), "--known-hosts", str(tmp / "known_hosts"),
            "--connect-timeout", "3", *extra]  # fmt: skip
    if command == "serve":
        args += ["--listen", f"127.0.0.1:{port}"]
    env = {**os.environ, "GRADER_CACHE_DIR": str(tmp / "cache"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # fmt: skip
    env.pop("GRADER_NOW", None)
    process = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=interruptible, start_new_session=True)  # fmt: skip
    stopped = True
    try:
        if command == "serve":
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                    break
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "grade serve did not start listening"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:  # its whole group, as systemd stops a service
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                stopped = False
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process.stderr:
            process.stderr.close()
    assert stopped, f"grade {command} did not stop within 120 s of SIGTERM to its group"


def link(course: Path, *who: str) -> str:
    code, out, err = grade("serve", "link", *who, "--course", str(course))
    assert code == 0, err
    return out.strip().rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def accessible(page) -> None:
    """axe-core finds no WCAG 2.2 A/AA violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a",
                                                       "wcag21aa", "wcag22aa"]}},
    )  # fmt: skip
    found = [(v["id"], v["help"], [n["target"] for n in v["nodes"]])
             for v in results.response["violations"]]  # fmt: skip
    assert not found, (page.url, found)


def test_a_student_asks_for_a_grading_from_the_browser_and_staff_overrides(
    fleet, tmp_path, browser, monkeypatch
):
    vm = fleet.boot([("web-amy", SCENARIOS["complete"])])["web-amy"]
    vm.sh("rm -f /etc/hostname")  # hostname_file will be lost: amy asks staff about it
    course = make_course(tmp_path, [("amy", vm.address, "Amy <i>A</i>"), ("ben", NOBODY, "Ben")])
    monkeypatch.delenv("GRADER_NOW", raising=False)
    with serving(course, fleet, tmp_path, "--graders", "2") as site:
        student = browser.new_context(base_url=site)
        problems: list[str] = []
        page = student.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"/signin/{link(course, 'amy')}")
        accessible(page)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{site}/")
        assert "Your marks, Amy <i>A</i>" in page.locator("h1").inner_text()  # text, not markup
        assert "no mark yet" in page.locator("table.marks").inner_text()
        accessible(page)
        page.get_by_role("link", name="basics").click()
        accessible(page)
        page.get_by_role("button", name="Grade my VM now").click()
        page.wait_for_url(re.compile(r".*/requests/\d+$"))
        accessible(page)
        request_id = page.url.rsplit("/", 1)[-1]
        # the page follows the grading live, and shows the mark when it is recorded
        page.wait_for_selector("text=Your mark for basics now", timeout=120_000)
        assert "done" in page.locator(".state").inner_text()
        assert "Your mark for basics now: 2" in page.locator("#live").inner_text()
        phases = page.locator("ol.phases").inner_text()
        for phase in ("queued", "connecting", "checking", "scoring", "recorded"):
            assert phase in phases, phases
        page.get_by_role("link", name="Back to the lab").click()
        assert "2 / 3" in page.locator("p.mark").inner_text()
        assert "/etc/hostname is missing" in page.locator("table.checks").inner_text()
        # amy asks staff about the check she lost
        page.get_by_label("Check", exact=True).select_option("hostname_file")
        page.get_by_label("Your question").fill("It had a <b>host name</b> when I looked")
        page.get_by_role("button", name="Ask staff").click()
        assert "Not answered yet" in page.locator("ul.questions").inner_text()
        accessible(page)
        page.locator("ul.gradings a").first.click()
        assert "Lab 1: the basics" in page.locator("h1").inner_text()  # the report
        accessible(page)
        assert not problems, problems
        # another student's pages and requests are not there for amy
        for other in ("/staff/students/ben", "/staff/queue", f"/requests/{int(request_id) + 100}",
                      "/labs/nolab"):  # fmt: skip
            response = page.goto(other)
            assert response is not None and response.status == 404, other
        problems.clear()  # the browser says so of each 404 asked for here
        # staff sign in, see the class, override amy's sshd_runs with a reason
        staff = browser.new_context(base_url=site).new_page()
        staff.goto(f"/signin/{link(course, '--staff', 'anna')}")
        staff.get_by_role("button", name="Sign in").click()
        staff.wait_for_url(f"{site}/")
        accessible(staff)
        assert "amy" in staff.locator("table.marks").inner_text()
        # the question, with the evidence the check saw, answered with an override
        staff.get_by_role("link", name="Questions").click()
        accessible(staff)
        question = staff.locator("section").first.inner_text()
        assert "It had a <b>host name</b> when I looked" in question  # text, not markup
        assert "test -e /etc/hostname" in question  # the evidence behind the decision
        staff.get_by_label("Answer").fill("the image gives every VM one: yours counts")
        staff.get_by_label("override the check:").check()
        staff.get_by_label("points").fill("1")
        staff.get_by_role("button", name="Answer").click()
        assert "No question waits" in staff.locator("main").inner_text()
        staff.goto("/")
        staff.get_by_role("link", name="amy").click()
        accessible(staff)
        staff.get_by_label("Check (empty: the lab's mark)").fill("sshd_runs")
        staff.get_by_label("Points").fill("1")
        staff.get_by_label("Reason").fill("half: it ran only after a restart")
        staff.get_by_role("button", name="Override").click()
        explained = staff.locator("pre.explain").first.inner_text()
        assert "override by anna" in explained and "half: it ran only after a restart" in explained
        staff.goto("/staff/queue")
        accessible(staff)
        assert request_id in staff.locator("table.queue").inner_text()
        # the student's page shows the answer and the overrides, by whom and why
        page.goto("/labs/basics")
        assert "2 / 3" in page.locator("p.mark").inner_text()  # hostname 1 by hand, sshd 1
        answered = page.locator("ul.questions").inner_text()
        assert "Answered by anna" in answered and "set by hand" in answered
        assert (
            "set by anna: half: it ran only after a restart"
            in page.locator("table.checks").inner_text()
        )
        assert not problems, problems
        # recorded in the book as a grading the student asked for
        _, shown, _ = grade("book", "history", "amy", "--course", str(course),
                               "--format", "json")  # fmt: skip
        runs = [e for e in json.loads(shown) if e["kind"] == "request"]
        assert len(runs) == 1 and runs[0]["by"] == "amy"


def test_a_server_stopped_while_it_grades_grades_the_request_once(fleet, tmp_path, monkeypatch):
    vm = fleet.boot([("web-slow", SCENARIOS["complete"])])["web-slow"]
    # a slow ps: the grading is under way when the server is told to stop
    vm.sh("printf '#!/bin/sh\\nsleep 4\\nexec /bin/ps \"$@\"\\n' > /usr/local/bin/ps && "
          "chmod 755 /usr/local/bin/ps")  # fmt: skip
    course = make_course(tmp_path, [("amy", vm.address, "Amy")])
    monkeypatch.delenv("GRADER_NOW", raising=False)
    try:
        with serving(course, fleet, tmp_path, "--graders", "1") as site:
            session = _signed_in(site, link(course, "amy"))
            asked = _post(session, site, "/api/grade", {"lab": "basics"})
            assert asked["status"] == 202
            _wait(session, site, asked["body"]["request"], ("grading",), 60)
        # stopped (SIGTERM) while grading: the grading finished, or it waits to be taken again
        with serving(course, fleet, tmp_path, "--graders", "1") as site:
            session = _signed_in(site, link(course, "amy"))
            state = _wait(session, site, asked["body"]["request"], ("done",), 120)
            assert state["mark"] == 3
    finally:
        vm.sh("rm -f /usr/local/bin/ps")
    _, shown, _ = grade("book", "history", "amy", "--course", str(course), "--format", "json")
    assert [e["kind"] for e in json.loads(shown) if e["kind"] == "request"] == ["request"]


def test_two_workers_and_a_server_share_one_queue_on_postgresql(
    fleet, tmp_path, monkeypatch, request
):
    vm = fleet.boot([("web-many", SCENARIOS["complete"])])["web-many"]
    url = new_database(request.getfixturevalue("postgresql"), "webqueue")
    students = [f"s{n:02d}" for n in range(20)]
    course = make_course(tmp_path, [(s, vm.address, s) for s in students], db=url)
    monkeypatch.delenv("GRADER_NOW", raising=False)
    monkeypatch.setenv("GRADER_DB", url)
    with contextlib.ExitStack() as stack:
        site = stack.enter_context(serving(course, fleet, tmp_path, "--graders", "1"))
        for _ in range(2):
            stack.enter_context(
                serving(course, fleet, tmp_path, "--graders", "2", command="worker")
            )
        session = _signed_in(site, link(course, "--staff", "anna"))
        asked = [_post(session, site, "/api/grade", {"lab": "basics", "student": s})
                 for s in students]  # fmt: skip
        assert all(a["status"] == 202 for a in asked), asked
        ids = [a["body"]["request"] for a in asked]
        done = [_wait(session, site, i, ("done",), 300) for i in ids]
        assert all(d["mark"] == 3 for d in done)
    code, shown, err = grade("book", "show", "--course", str(course), "--format", "json")
    assert code == 0, err
    assert sorted(r["student"] for r in json.loads(shown) if r["mark"] == 3) == students
    for s in students:  # each request graded exactly once, whoever took it
        code, shown, _ = grade("book", "history", s, "--course", str(course), "--format", "json")
        assert [e["kind"] for e in json.loads(shown) if e["kind"] == "request"] == ["request"], s


# -- a script's view: the JSON API with the session and its CSRF token ----------------------


def _signed_in(site: str, token: str) -> dict:
    """A cookie jar signed in with a link, and the session's CSRF token."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{site}/signin/{token}").read().decode()
    csrf = re.search(r'name="csrftoken" value="([^"]+)"', page)
    assert csrf is not None
    body = f"csrftoken={csrf.group(1)}&token={token}".encode()
    opener.open(urllib.request.Request(f"{site}/signin", data=body, method="POST"))
    me = json.loads(opener.open(f"{site}/api/me").read())
    return {"opener": opener, "csrf": me["csrf"]}


def _post(session: dict, site: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{site}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-CSRF-Token": session["csrf"]},
    )  # fmt: skip
    try:
        with session["opener"].open(request) as answer:
            return {"status": answer.status, "body": json.loads(answer.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": json.loads(e.read() or b"{}")}


def _wait(session: dict, site: str, request_id: int, states: tuple[str, ...], seconds: float):
    deadline = time.monotonic() + seconds
    while True:
        found = json.loads(session["opener"].open(f"{site}/api/requests/{request_id}").read())
        if found["state"] in states:
            return found
        assert found["state"] in ("queued", "grading"), found
        assert time.monotonic() < deadline, found
        time.sleep(0.3)
