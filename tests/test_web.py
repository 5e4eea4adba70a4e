"""The course on the web (grader.web) against a hostile student and a careless member of staff:
one test (at least) for each line of issue 34's "Bad input and hostile use".

Each test drives the ASGI application in-process (starlette's TestClient), with the web's own
graders off (``graders=0``: a request stays queued unless a test grades it), a course folder
made in tmp_path, sign-in links made as staff make them, and GRADER_NOW to move the clock. A
graded mark is a report recorded into the book as a grading records it. No VM is needed.

A test marked ``xfail(strict=True, reason="FINDING: ...")`` is a hole the web has today: it
fails now, and passes (so the mark must go) once the web is fixed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from grader.actions import access
from grader.actions.book import open_course
from grader.actions.common import Actor, CourseAt
from grader.actions.grading import Connection
from grader.actions.requests import work_one
from grader.base.results import CheckResult, Report, RubricRef
from grader.cli import main
from grader.course import queue
from grader.course.book import Book, metadata, releases, reports, web_sessions
from grader.course.book import requests as book_requests
from grader.course.lock import course_lock
from grader.evidence.signing import KEY_FILE, Key
from grader.report.store import ReportStore
from grader.web.app import SECRET_FILE, WebConfig, Workers, make_app
from tests.test_e2e_course import BASICS, BASICS_CHECKS

BASE = "http://127.0.0.1:8080"
START = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)  # before every due time
DUE = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
SECRET_ENV = "WEB_TEST_LAB_SECRET"
SECRET_VALUE = "s3cr3t-from-the-environment-4e1f"
SSH_PASSWORD = "ssh-password-9b7c2d"

#: The basics lab with one more item, hidden from students (marked by staff only)
RUBRIC = (
    BASICS.replace(
        'id = "sshd_runs"\npoints = 2\n', 'id = "sshd_runs"\npoints = 2\nhint = "HINT-sshd"\n'
    )
    + """
[[sections.items]]
id = "grader_only"
points = 1
visibility = "hidden"

[vars.token]
secret = true
"""
)
CHECKS = (
    BASICS_CHECKS
    + '''

def test_grader_only(host):
    """A check staff keep to themselves."""
    assert False, "hidden"
'''
)

COURSE = f"""\
title = "Systems <script>alert('title')</script> & co"
roster = "class.csv"
staff = ["anna"]

[[labs]]
id = "basics"
rubric = "lab/rubric.toml"
due = {DUE.isoformat()}
policy = "best"
late = {{ per_day = 0.10, max = 0.50 }}
requests = {{ every = "10m", per_day = 3 }}
vars = {{ token = {{ env = "{SECRET_ENV}" }} }}

[[labs]]
id = "closed"
rubric = "lab/rubric.toml"
due = {DUE.isoformat()}
policy = "last_before_due"

[[labs]]
id = "later"
rubric = "lab/rubric.toml"
due = {DUE.isoformat()}
policy = "best"
feedback = "after_due"

[[labs]]
id = "held"
rubric = "lab/rubric.toml"
due = {DUE.isoformat()}
policy = "best"
feedback = "on_release"
"""

#: A roster name with markup and a bidi override (a name is text: never markup on a page)
HOSTILE_NAME = "Amy <img src=x onerror=alert(1)> \u202eevil"


def at(when: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_NOW", when.isoformat())


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A course: four labs of one rubric (one item hidden), three students, one of staff."""
    at(START, monkeypatch)
    monkeypatch.setenv(SECRET_ENV, SECRET_VALUE)
    monkeypatch.delenv("GRADER_DB", raising=False)
    monkeypatch.delenv("GRADER_COURSE", raising=False)
    course = tmp_path / "course"
    (course / "lab" / "checks").mkdir(parents=True)
    (course / "lab" / "rubric.toml").write_text(RUBRIC)
    (course / "lab" / "checks" / "test_basics.py").write_text(CHECKS)
    (course / "course.toml").write_text(COURSE)
    (course / "class.csv").write_text(
        "student,host,name\n"
        f'amy,127.0.0.1,"{HOSTILE_NAME}"\n'
        "ben,127.0.0.2,Ben Baker\n"
        "cat,127.0.0.3,Cat Carter\n"
    )
    return course


@dataclass
class Web:
    """The course served: its app, its folder, and a way to make signed-in browsers."""

    app: Any
    folder: Path
    first: TestClient  # the client whose lifespan runs the app

    def link(self, role: str, name: str, lasts: timedelta | None = None) -> str:
        with open_course(CourseAt(self.folder), Actor("anna"), create=True) as course:
            made = access.make_link(
                course,
                Actor("anna"),
                access.LinkRequest(role, name, lasts),  # type: ignore[arg-type]
            )
        return made.token

    def browser(self) -> TestClient:
        """A new browser (its own cookies), signed in as nobody."""
        return browser_of(self.app)

    def signed_in(self, role: str, name: str) -> TestClient:
        client = self.browser()
        answer = sign_in(client, self.link(role, name))
        assert answer.status_code == 303, answer.text
        return client

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table of the book but the web's sessions, as rows (to see that nothing
        changed)."""
        book = Book(f"sqlite:///{self.folder / 'gradebook.sqlite'}", root=self.folder)
        try:
            with book.engine.connect() as connection:
                return {
                    name: sorted(map(tuple, connection.execute(sa.select(table))), key=repr)
                    for name, table in metadata.tables.items()
                    if name != "web_sessions"
                }
        finally:
            book.close()


def browser_of(app: Any) -> TestClient:
    """A browser of ``app``: a server error is a 500 it sees, as a real one would."""
    return TestClient(app, base_url=BASE, follow_redirects=False, raise_server_exceptions=False)


@contextlib.contextmanager
def served(folder: Path, **config: Any) -> Iterator[tuple[Any, TestClient]]:
    """The course served (its lifespan run) with the web's graders off."""
    app = make_app(WebConfig(CourseAt(folder), graders=0, **config))
    with browser_of(app) as first:
        yield app, first


@pytest.fixture
def web(folder: Path) -> Iterator[Web]:
    with served(folder) as (app, first):
        yield Web(app, folder, first)


def csrf_of(client: TestClient) -> str:
    """The CSRF token a page gives this browser's session (as a form holds it); signed out,
    a sign-in page's (opening one signs nobody in)."""
    page = client.get("/")
    found = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    if found is None:  # signed out: the sign-in page's form holds the session's token
        page = client.get("/signin/" + "x" * 43)
        found = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
        assert found is not None, page.text
    return found.group(1)


def sign_in(client: TestClient, token: str) -> Any:
    """Open a sign-in link and press its button, as a browser does."""
    page = client.get(f"/signin/{token}")
    assert page.status_code == 200, page.text
    form = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
    assert form is not None
    return client.post("/signin", data={"csrftoken": form.group(1), "token": token})


def plant(client: TestClient, value: str | None, name: str = "grader_session") -> None:
    """A cookie set in the browser by somebody else (another tab, a script, an attacker)."""
    assert value is not None
    client.cookies.set(name, value, domain="127.0.0.1")


def me(client: TestClient) -> dict[str, Any]:
    answer = client.get("/api/me")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def ask(client: TestClient, lab: str, **more: Any) -> Any:
    token = me(client)["csrf"]
    return client.post("/api/grade", json={"lab": lab, **more}, headers={"x-csrf-token": token})


def requests_of(folder: Path, student: str | None = None) -> list[queue.Request]:
    book = Book(f"sqlite:///{folder / 'gradebook.sqlite'}", root=folder)
    try:
        found = queue.latest(book, 1000)
    finally:
        book.close()
    return [r for r in found if student in (None, r.student)]


def record(
    folder: Path,
    student: str,
    lab: str,
    outcomes: dict[str, tuple[str, str]],
    when: datetime = START,
    host: str | None = None,
) -> int:
    """A grading of ``student``'s VM for ``lab`` recorded as a grading records it: each check's
    (status, message); its report in runs/."""
    with open_course(CourseAt(folder), Actor("anna"), create=True) as course:
        rubric = course.rubric(lab)
        items = {i.id: i for i in rubric.items}
        checks = tuple(
            CheckResult(
                check, "basics", f"Title of {check}", status,  # type: ignore[arg-type]
                items[check].points if status == "pass" else 0.0, items[check].points,
                message, f"hint for {check}", (), visibility=items[check].visibility,
            )
            for check, (status, message) in outcomes.items()
        )  # fmt: skip
        report = Report(
            host=host or f"vm-{student}", student=student, status="graded", error=None,
            error_kind=None, score=sum(c.points for c in checks), max_score=rubric.max_score,
            graded_at=when.strftime("%Y-%m-%dT%H:%M:%SZ"), duration_s=1.0,
            rubric=RubricRef(rubric.title, rubric.sha256), host_key=None, address=None,
            checks=checks,
        )  # fmt: skip
        store = ReportStore(folder / "runs" / f"{lab}-{student}-{when:%H%M%S}-{len(outcomes)}")
        store.save(report)
        return int(
            course.book.record(
                lab, store.directory, [(store.report_path(report), report)], "run", rubric=rubric
            )
        )


def write_key(path: Path) -> None:
    """A private key file, as staff make one for the grader (ssh-keygen)."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def quick(folder: Path, **more: Any) -> Connection:
    """How the worker reaches a VM here: SSH to a port of this machine where nothing listens
    (a VM that cannot be reached, at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    given: dict[str, Any] = {
        "port": port,
        "known_hosts": folder.parent / "known_hosts",
        "connect_timeout": 2.0,
        "host_timeout": 20.0,
        "plans": None,
    }
    return Connection(**{**given, **more})


def grade_next(folder: Path, **more: Any) -> queue.Request | None:
    """One turn of a worker of the web (as grade serve's threads take turns)."""
    with open_course(CourseAt(folder), Actor("web")) as course:
        done = work_one(course, "test-worker", quick(folder, **more), timedelta(minutes=5))
    assert len(done) <= 1  # one at a time unless asked for more
    return done[0] if done else None


def graded_hosts(folder: Path) -> set[tuple[str, str]]:
    """Each (student, host) the book has a grading of."""
    book = Book(f"sqlite:///{folder / 'gradebook.sqlite'}", root=folder)
    try:
        with book.engine.connect() as connection:
            rows = connection.execute(sa.select(reports.c.student, reports.c.host)).all()
    finally:
        book.close()
    return {(r.student, r.host) for r in rows}


#: A grading where the two visible checks went differently, each with a message to spot
LOST = {
    "sshd_runs": ("fail", "REASON-sshd: sshd is not running"),
    "hostname_file": ("pass", ""),
    "grader_only": ("fail", "HIDDEN-REASON of the hidden check"),
}


# -- sign-in links ---------------------------------------------------------------------------


def test_a_forged_reused_expired_or_altered_link_signs_nobody_in(web, monkeypatch):
    good = web.link("student", "amy")
    altered = good[:-1] + ("A" if good[-1] != "A" else "B")
    forged = "x" * 43
    short = web.link("student", "ben", timedelta(minutes=5))
    for token in (forged, altered, "", "%00", "a" * 5000):
        client = web.browser()
        csrf = csrf_of(client)
        answer = client.post("/signin", data={"csrftoken": csrf, "token": token})
        assert answer.status_code == 403, (token, answer.text)
        assert client.get("/api/me").status_code == 401  # its session signs nobody in
    first = web.browser()
    assert sign_in(first, good).status_code == 303
    assert me(first)["student"] == "amy"
    again = web.browser()
    assert sign_in(again, good).status_code == 403  # used once, never again
    assert again.get("/api/me").status_code == 401
    at(START + timedelta(minutes=6), monkeypatch)
    late = web.browser()
    assert sign_in(late, short).status_code == 403  # expired
    assert late.get("/api/me").status_code == 401


def test_the_link_made_by_grade_serve_link_signs_in_once(web, capsys):
    code = main(["serve", "link", "ben", "--course", str(web.folder)])
    assert code == 0
    address = capsys.readouterr().out.strip()
    assert address.startswith(f"{BASE}/signin/")
    token = address.rsplit("/", 1)[1]
    client = web.browser()
    assert sign_in(client, token).status_code == 303
    assert me(client)["student"] == "ben"
    assert sign_in(web.browser(), token).status_code == 403


def test_opening_a_link_signs_nobody_in_and_uses_up_nothing(web):
    """A mail scanner that follows the link (a GET, or a HEAD) leaves it for the student."""
    token = web.link("student", "amy")
    scanner = web.browser()
    for _ in range(3):
        assert scanner.get(f"/signin/{token}").status_code == 200
        assert scanner.head(f"/signin/{token}").status_code in (200, 405)
    assert scanner.get("/api/me").status_code == 401
    assert scanner.get("/labs/basics").status_code == 401
    assert scanner.get("/signin", params={"token": token}).status_code in (404, 405)
    student = web.browser()
    assert sign_in(student, token).status_code == 303
    assert me(student)["student"] == "amy"


def test_a_link_of_staff_no_longer_named_in_course_toml_signs_nobody_in(web):
    token = web.link("staff", "anna")
    text = (web.folder / "course.toml").read_text().replace('staff = ["anna"]', "staff = []")
    (web.folder / "course.toml").write_text(text)
    with served(web.folder) as (_, client):
        assert sign_in(client, token).status_code == 403
        assert client.get("/api/me").status_code == 401


# -- sessions --------------------------------------------------------------------------------


def test_the_session_id_changes_at_sign_in_and_a_planted_one_never_signs_in(web):
    planted = "0123456789abcdef0123456789abcdef"
    client = web.browser()
    plant(client, planted)
    assert client.get("/").status_code == 200
    assert client.get("/api/me").status_code == 401
    answer = sign_in(client, web.link("student", "amy"))
    assert answer.status_code == 303
    given = client.cookies.get("grader_session")
    assert given and given != planted
    cookie = answer.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    # the attacker's browser, holding the id it planted, is signed in as nobody
    attacker = web.browser()
    plant(attacker, planted)
    assert attacker.get("/api/me").status_code == 401
    assert me(client)["student"] == "amy"


def test_sign_out_ends_the_session_for_whoever_holds_its_cookie(web):
    client = web.signed_in("student", "amy")
    stolen = client.cookies.get("grader_session")
    csrf = me(client)["csrf"]
    assert client.post("/signout", data={"csrftoken": csrf}).status_code == 303
    assert client.get("/api/me").status_code == 401
    thief = web.browser()
    plant(thief, stolen)
    assert thief.get("/api/me").status_code == 401


def test_a_session_ends_after_a_day_without_use(web, monkeypatch):
    client = web.signed_in("student", "amy")
    at(START + timedelta(hours=23), monkeypatch)
    assert client.get("/api/me").status_code == 200  # used: a day from now again
    at(START + timedelta(hours=46), monkeypatch)
    assert client.get("/api/me").status_code == 200
    at(START + timedelta(hours=71), monkeypatch)
    assert client.get("/api/me").status_code == 401


def test_a_page_that_changes_nothing_writes_its_session_once_in_ten_minutes(web, monkeypatch):
    """Each write waits for the book's writer (a class's gradings being recorded): an unchanged
    session is written again only when its end was last pushed on ten minutes ago or more."""
    client = web.signed_in("student", "amy")
    client.get("/api/me")

    def ends() -> set[str]:
        book = Book(f"sqlite:///{web.folder / 'gradebook.sqlite'}", root=web.folder)
        try:
            with book.engine.connect() as connection:
                return {str(r[0]) for r in connection.execute(sa.select(web_sessions.c.expires_at))}
        finally:
            book.close()

    first = ends()
    at(START + timedelta(minutes=5), monkeypatch)
    assert client.get("/api/me").status_code == 200
    assert ends() == first  # not written
    at(START + timedelta(minutes=11), monkeypatch)
    assert client.get("/api/me").status_code == 200
    assert ends() != first  # pushed on
    at(START + timedelta(minutes=11) + timedelta(days=1) - timedelta(minutes=1), monkeypatch)
    assert client.get("/api/me").status_code == 200  # a day from its last write, not its first


def test_signing_in_again_ends_the_session_it_replaces(web):
    client = web.signed_in("student", "amy")
    before = client.cookies.get("grader_session")
    assert sign_in(client, web.link("student", "ben")).status_code == 303
    assert me(client)["student"] == "ben"
    old = web.browser()
    plant(old, before)
    assert old.get("/api/me").status_code == 401


def test_staff_taken_off_the_course_lose_staff_access_at_once(web):
    client = web.signed_in("staff", "anna")
    assert client.get("/api/book").status_code == 200
    text = (web.folder / "course.toml").read_text().replace('staff = ["anna"]', "staff = []")
    (web.folder / "course.toml").write_text(text)
    with served(web.folder) as (_, again):
        plant(again, client.cookies.get("grader_session"))
        assert again.get("/api/book").status_code in (401, 404)
        assert again.get("/staff/queue").status_code in (401, 404)


def off_the_roster(web: Web, student: str) -> None:
    roster = (web.folder / "class.csv").read_text().splitlines(keepends=True)
    kept = [line for line in roster if not line.startswith(f"{student},")]
    (web.folder / "class.csv").write_text("".join(kept))


def test_a_student_taken_off_the_roster_sees_nothing_more(web):
    client = web.signed_in("student", "cat")
    off_the_roster(web, "cat")
    with served(web.folder) as (_, again):
        plant(again, client.cookies.get("grader_session"))
        assert again.get("/api/me").status_code in (401, 404)
        assert again.get("/labs/basics").status_code in (401, 404)
        token = csrf_of(again)
        answer = again.post("/api/grade", json={"lab": "basics"}, headers={"x-csrf-token": token})
        assert answer.status_code in (401, 404)
    assert requests_of(web.folder, "cat") == []


def test_the_home_page_of_a_student_taken_off_the_roster_is_no_server_error(web):
    client = web.signed_in("student", "cat")
    off_the_roster(web, "cat")
    with served(web.folder) as (_, again):
        plant(again, client.cookies.get("grader_session"))
        answer = again.get("/")
        assert answer.status_code in (200, 401, 404), answer.text


# -- open redirects --------------------------------------------------------------------------


def assert_stays_here(answer: Any) -> None:
    """A redirect, if any, to a page of this site."""
    where = answer.headers.get("location")
    if where is None:
        return
    assert where.startswith("/") and not where.startswith(("//", "/\\")), where


def test_no_parameter_sends_anyone_to_another_site(web):
    evil = ["https://evil.example/", "//evil.example", "/\\evil.example", "https:evil.example"]
    token = web.link("student", "amy")
    client = web.browser()
    csrf = csrf_of(client)
    for target in evil:
        for key in ("next", "return_to", "redirect", "url"):
            assert_stays_here(client.get("/", params={key: target}))
            assert_stays_here(client.get(f"/signin/{token}", params={key: target}))
    answer = client.post(
        "/signin?next=https://evil.example/",
        data={"csrftoken": csrf, "token": token, "next": "https://evil.example/"},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"
    csrf = me(client)["csrf"]
    for target in evil:
        answer = client.post(
            "/labs/basics/grade", params={"next": target}, data={"csrftoken": csrf, "next": target}
        )
        assert_stays_here(answer)
    answer = client.post("/signout?next=//evil.example", data={"csrftoken": csrf, "next": "//x"})
    assert answer.headers["location"] == "/"


def test_a_redirect_never_names_the_host_the_browser_was_told(web):
    """A Host header of another site (a poisoned cache, a proxy passing it on) leads nowhere."""
    client = web.signed_in("student", "amy")
    for path in ("/labs/basics/", "/requests/1/", "/api/me/", "/staff/queue/"):
        answer = client.get(path, headers={"host": "evil.example"})
        where = answer.headers.get("location", "")
        assert "evil.example" not in where, (path, where)


# -- cross-site requests ---------------------------------------------------------------------


def test_a_post_without_the_sessions_csrf_token_is_refused_and_changes_nothing(web):
    amy = web.signed_in("student", "amy")
    anna = web.signed_in("staff", "anna")
    record(web.folder, "amy", "basics", LOST)
    ben = web.signed_in("student", "ben")
    bens = me(ben)["csrf"]
    assert bens != me(amy)["csrf"]
    before = web.tables()
    attempts: list[tuple[TestClient, str, dict[str, Any]]] = [
        (amy, "/api/grade", {"json": {"lab": "basics"}}),
        (amy, "/api/grade", {"json": {"lab": "basics"}, "headers": {"x-csrf-token": bens}}),
        (amy, "/api/grade", {"json": {"lab": "basics"}, "headers": {"x-csrf-token": ""}}),
        # what a cross-site form can send: text/plain that reads as JSON
        (amy, "/api/grade", {"content": b'{"lab": "basics", "x": "="}',
                             "headers": {"content-type": "text/plain"}}),
        (amy, "/labs/basics/grade", {"data": {}}),
        (amy, "/labs/basics/grade", {"data": {"csrftoken": bens}}),
        (amy, "/labs/basics/grade", {"data": {"csrftoken": "forged"}}),
        (anna, "/staff/students/amy/labs/basics/override",
         {"data": {"value": "3", "reason": "cross-site", "csrftoken": bens}}),
        (anna, "/staff/students/amy/labs/basics/override",
         {"data": {"value": "3", "reason": "cross-site"}}),
        (anna, "/staff/labs/held/release", {"data": {"csrftoken": bens}}),
        (anna, "/api/grade", {"json": {"lab": "basics", "student": "ben"}}),
        (amy, "/signout", {"data": {"csrftoken": bens}}),
    ]  # fmt: skip
    for client, path, sent in attempts:
        answer = client.post(path, **sent)
        assert answer.status_code == 403, (path, sent, answer.status_code, answer.text)
    assert web.tables() == before
    assert me(amy)["student"] == "amy"  # still signed in: the forged sign-out did nothing


def test_a_sign_in_without_cookies_is_refused(web):
    """A sign-in posted from another site (a login CSRF: the victim signed in as the
    attacker), with no cookie of ours, signs nobody in and uses the link up not."""
    token = web.link("student", "amy")
    bare = web.browser()
    answer = bare.post("/signin", data={"token": token})
    assert answer.status_code == 403
    answer = bare.post("/signin", data={"token": token, "csrftoken": "x"})
    assert answer.status_code == 403
    assert bare.get("/api/me").status_code == 401
    assert sign_in(web.browser(), token).status_code == 303  # the link was not used up


def test_a_post_without_cookies_reaches_nothing(web):
    """asgi-csrf lets a POST with no cookie at all through (no session to ride on): every
    such POST finds nobody signed in."""
    before = web.tables()
    bare = web.browser()
    for path in (
        "/api/grade",
        "/labs/basics/grade",
        "/staff/labs/held/release",
        "/staff/students/amy/labs/basics/override",
        "/staff/students/amy/labs/basics/grade",
    ):
        answer = bare.post(path, json={"lab": "basics"})
        assert answer.status_code in (401, 403), (path, answer.status_code)
        answer = bare.post(path, data={"lab": "basics", "value": "1", "reason": "x"})
        assert answer.status_code in (401, 403), (path, answer.status_code)
    assert web.tables() == before


# -- bytes a browser or curl can send ---------------------------------------------------------


def test_a_multipart_form_is_refused_or_read_never_a_server_error(web):
    client = web.signed_in("student", "amy")
    csrf = me(client)["csrf"]
    before = web.tables()
    answer = client.post("/labs/basics/grade", files={"csrftoken": (None, "forged")})
    assert answer.status_code == 403, answer.status_code
    answer = client.post("/labs/basics/grade", files={"csrftoken": (None, csrf)})
    assert answer.status_code in (303, 400, 403, 415), answer.status_code
    assert len(requests_of(web.folder)) <= 1
    assert {k: v for k, v in web.tables().items() if k != "requests"} == {
        k: v for k, v in before.items() if k != "requests"
    }


def test_bytes_that_are_not_utf8_or_a_broken_content_type_are_a_400_never_a_500(web):
    anyone = web.browser()
    csrf_of(anyone)  # any cookie at all: asgi-csrf then reads the body
    for path in ("/signin", "/labs/basics/grade", "/api/grade"):
        for body, kind in (
            (b"csrftoken=\xff\xfe&token=\xc3", "application/x-www-form-urlencoded"),
            (b"csrftoken=x", "multipart/form-data"),
            (b"csrftoken=x", "multipart/form-data;boundary=x"),
        ):
            answer = anyone.post(path, content=body, headers={"content-type": kind})
            assert 400 <= answer.status_code < 500, (path, kind, answer.status_code)


def test_a_body_too_large_for_any_form_is_refused_unread(web):
    huge = 32 * 1024 * 1024  # no form or JSON of this server comes near
    anyone = web.browser()
    csrf_of(anyone)
    answer = anyone.post(
        "/signin",
        content=b"token=x&csrftoken=" + b"a" * huge,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 413, answer.status_code
    client = web.signed_in("student", "amy")
    csrf = me(client)["csrf"]
    answer = client.post(
        "/api/grade",
        content=b'{"lab": "basics", "x": "' + b"a" * huge + b'"}',
        headers={"x-csrf-token": csrf, "content-type": "application/json"},
    )
    assert answer.status_code == 413, answer.status_code
    assert requests_of(web.folder) == []


def test_a_csrf_token_that_is_not_ascii_is_a_403_never_a_500(web):
    anyone = web.browser()
    answer = anyone.post(
        "/api/grade", json={"lab": "basics"}, headers={"x-csrf-token": b"\xc3\xa9"}
    )
    assert answer.status_code in (401, 403), answer.status_code
    csrf_of(anyone)
    answer = anyone.post("/signin", data={"csrftoken": "\u00e9", "token": "x" * 40})
    assert answer.status_code == 403, answer.status_code


def test_json_of_the_wrong_shape_is_a_400_and_queues_nothing(web):
    client = web.signed_in("student", "amy")
    csrf = me(client)["csrf"]
    bodies: list[bytes] = [
        b"", b"null", b"[]", b'"basics"', b"{", b'{"lab": ["basics"]}', b'{"lab": 1}',
        b'{"lab": null}', b'{"lab": {"$ne": 1}}', b'{"lab": "basics", "student": 5}',
        b'{"lab": "basics", "student": ["amy"]}', b'{"lab": "basics", "student": {"x": 1}}',
        b'{"lab": "\\ud800"}', b"\xff\xfe{", b'{"lab": "basics"' + b" " * 10 + b"}}",
        json.dumps({"lab": "b" * 100_000}).encode(), b'{"lab": "basics", "lab": 1}',
    ]  # fmt: skip
    for body in bodies:
        answer = client.post(
            "/api/grade",
            content=body,
            headers={"x-csrf-token": csrf, "content-type": "application/json"},
        )
        assert answer.status_code in (400, 404, 413), (body[:40], answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/json")
        assert isinstance(answer.json()["error"], str)
    assert requests_of(web.folder) == []


def test_a_lab_id_with_path_tricks_or_of_any_length_is_simply_not_there(web):
    client = web.signed_in("student", "amy")
    record(web.folder, "amy", "basics", LOST)
    csrf = me(client)["csrf"]
    odd = [
        "%2e%2e",
        "..%2f..%2fcourse.toml",
        "basics%00",
        "basics%2f..",
        "BASICS",
        "basics%20",
        "%ff%fe",
        "%c0%ae%c0%ae",
        "a" * 10_000,
        "%3Cscript%3E",
        "basics;x",
    ]
    for lab in odd:
        assert client.get(f"/labs/{lab}").status_code == 404, lab
        assert client.get(f"/labs/{lab}/gradings/1").status_code == 404, lab
        answer = client.post(f"/labs/{lab}/grade", data={"csrftoken": csrf})
        assert answer.status_code == 404, (lab, answer.status_code)
    for path in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/%2e%2e/course.toml",
        "/course.toml",
        "/gradebook.sqlite",
        "/web.key",
        "/signing.key",
        "/runs/",
        "/static/",
        "/static/../templates/base.html.j2",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
    assert requests_of(web.folder) == []


def test_json_nested_deeply_is_a_400_never_a_500(web):
    client = web.signed_in("student", "amy")
    csrf = me(client)["csrf"]
    # deep enough for json.loads' recursion, small enough to be read (a body is 64 KiB at most)
    for body in (b"[" * 15_000 + b"]" * 15_000, b'{"a":' * 6_000 + b"1" + b"}" * 6_000):
        answer = client.post(
            "/api/grade",
            content=body,
            headers={"x-csrf-token": csrf, "content-type": "application/json"},
        )
        assert answer.status_code == 400, answer.status_code
    assert requests_of(web.folder) == []


def test_a_request_id_of_any_size_is_a_404_never_a_500(web):
    client = web.signed_in("student", "amy")
    for number in ("0", "00001", "9" * 19, "9" * 30):
        assert client.get(f"/api/requests/{number}").status_code == 404, number
        assert client.get(f"/requests/{number}").status_code == 404, number
    assert client.get("/api/requests/-1").status_code == 404
    assert client.get("/labs/basics/gradings/" + "9" * 30).status_code == 404


# -- nobody signed in ------------------------------------------------------------------------

API = [("GET", "/api/me"), ("GET", "/api/book"), ("POST", "/api/grade"),
       ("GET", "/api/requests/1")]  # fmt: skip
PAGES = [
    ("GET", "/labs/basics"), ("GET", "/labs/basics/gradings/1"), ("GET", "/requests/1"),
    ("GET", "/staff/queue"), ("GET", "/staff/students/amy"),
    ("GET", "/staff/students/amy/labs/basics/gradings/1"), ("POST", "/labs/basics/grade"),
    ("POST", "/staff/labs/held/release"), ("POST", "/staff/students/amy/labs/basics/override"),
    ("POST", "/staff/students/amy/labs/basics/grade"),
]  # fmt: skip


def test_without_a_session_the_api_is_401_and_every_page_asks_to_sign_in(web):
    amy = web.signed_in("student", "amy")
    assert ask(amy, "basics").status_code == 202
    record(web.folder, "amy", "basics", LOST)
    before = web.tables()
    for cookie in (None, "0" * 32, "not-a-session", "x" * 4000):
        client = web.browser()
        csrf = csrf_of(client)  # past the CSRF layer: the session is what is missing
        if cookie is not None:
            plant(client, cookie)
        for method, path in API:
            answer = client.request(method, path, json={"lab": "basics"},
                                    headers={"x-csrf-token": csrf})  # fmt: skip
            assert answer.status_code == 401, (cookie, path, answer.status_code)
            assert answer.json() == {"error": "sign in first"}
        for method, path in PAGES:
            answer = client.request(method, path, data={"csrftoken": csrf, "value": "1",
                                                        "reason": "x"})  # fmt: skip
            assert answer.status_code == 401, (cookie, path, answer.status_code)
            assert "Open the sign-in link" in answer.text
            assert "amy" not in answer.text.replace("/staff/students/amy", "")
        home = client.get("/")
        assert home.status_code == 200 and "Open the sign-in link" in home.text
    assert web.tables() == before


# -- a student and the others ----------------------------------------------------------------


def test_a_student_sees_nothing_of_another_student(web):
    """ben's marks, lab page, grading report and request are not there for amy: 404, as for
    what does not exist, and the answer the same for a student who is and one who is not."""
    ben = web.signed_in("student", "ben")
    asked = ask(ben, "basics").json()["request"]
    run = record(web.folder, "ben", "basics", LOST)
    amy = web.signed_in("student", "amy")
    assert "ben" not in json.dumps(me(amy))
    home = amy.get("/").text
    assert "Ben" not in home and "ben" not in home
    hers = ask(amy, "basics").json()["request"]
    assert amy.get(f"/api/requests/{hers}").status_code == 200
    for path in (f"/api/requests/{asked}", f"/requests/{asked}", f"/labs/basics/gradings/{run}",
                 f"/staff/students/ben/labs/basics/gradings/{run}", "/staff/students/ben",
                 "/api/book", "/staff/queue"):  # fmt: skip
        answer = amy.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "Ben" not in answer.text and "REASON" not in answer.text
    # whether a student exists is not hers to learn: ben's pages answer as nobody's do
    csrf = me(amy)["csrf"]

    def answers(student: str) -> list[tuple[int, str]]:
        found = []
        for method, path, sent in (
            ("GET", f"/staff/students/{student}", {}),
            ("GET", f"/staff/students/{student}/labs/basics/gradings/{run}", {}),
            ("POST", f"/staff/students/{student}/labs/basics/grade", {"data": {"csrftoken": csrf}}),
            ("POST", f"/staff/students/{student}/labs/basics/override",
             {"data": {"csrftoken": csrf, "value": "1", "reason": "x"}}),
            ("POST", "/api/grade", {"json": {"lab": "basics", "student": student},
                                    "headers": {"x-csrf-token": csrf}}),
        ):  # fmt: skip
            answer = amy.request(method, path, **sent)
            found.append((answer.status_code, answer.text.replace(student, "ID")))
        return found

    for there, not_there in (("ben", "zed"), ("cat", "amy2"), ("ben", "Ben")):
        assert answers(there) == answers(not_there)
        assert {status for status, _ in answers(there)} == {404}, answers(there)
    assert [r.student for r in requests_of(web.folder)] == ["amy", "ben"]  # none more


def test_every_staff_route_answers_a_student_404_whatever_it_is_sent(web):
    amy = web.signed_in("student", "amy")
    csrf = me(amy)["csrf"]
    for value in ("x", "", "nan", "1e999"):
        answer = amy.post("/staff/students/amy/labs/basics/override",
                          data={"csrftoken": csrf, "value": value, "reason": "x"})  # fmt: skip
        assert answer.status_code == 404, (value, answer.status_code)


def test_a_student_cannot_queue_a_grading_of_anothers_vm(web):
    amy = web.signed_in("student", "amy")
    csrf = me(amy)["csrf"]
    for whose in ("ben", "cat", "zed", "", " amy", "amy ", "AMY", "amy\x00", "../ben"):
        answer = amy.post("/api/grade", json={"lab": "basics", "student": whose},
                          headers={"x-csrf-token": csrf})  # fmt: skip
        assert answer.status_code == 404, (whose, answer.status_code)
        assert answer.json() == {"error": "Not found."}
        answer = amy.post(f"/staff/students/{quote(whose or 'x', safe='')}/labs/basics/grade",
                          data={"csrftoken": csrf})  # fmt: skip
        assert answer.status_code == 404, (whose, answer.status_code)
    assert requests_of(web.folder) == []
    # her own, named or not, is hers
    assert ask(amy, "basics", student="amy").status_code == 202
    assert [(r.student, r.asked_by) for r in requests_of(web.folder)] == [("amy", "amy")]


def test_nothing_a_student_sends_names_the_host_to_grade(web):
    """A request carries a lab (and for staff a student of the roster): the host graded is the
    roster's. Whatever names a host in the JSON, the form, the query or the headers is
    ignored, and the worker connects to the roster's address only."""
    amy = web.signed_in("student", "amy")
    csrf = me(amy)["csrf"]
    elsewhere = {
        "host": "203.0.113.9",
        "address": "203.0.113.9",
        "target": "203.0.113.9:22",
        "hosts": ["203.0.113.9"],
        "port": 2222,
        "user": "root",
        "identity": "/etc/shadow",
    }
    answer = amy.post(
        "/api/grade?host=203.0.113.9",
        json={"lab": "basics", **elsewhere},
        headers={"x-csrf-token": csrf, "x-forwarded-host": "203.0.113.9", "forwarded": "for=x"},
    )
    assert answer.status_code == 202
    again = amy.post(
        "/labs/basics/grade?host=203.0.113.9",
        data={"csrftoken": csrf, **{k: str(v) for k, v in elsewhere.items()}},
    )
    assert again.status_code == 303  # the same request, asked again
    [asked] = requests_of(web.folder)
    assert (asked.student, asked.lab, asked.asked_by) == ("amy", "basics", "amy")
    # the worker grades amy's roster address (127.0.0.1, where nothing listens): unreachable
    done = grade_next(web.folder)
    assert done is not None and done.state == queue.NOT_GRADED, done
    assert done.reason and done.reason.startswith("not graded"), done.reason
    assert graded_hosts(web.folder) == {("amy", "127.0.0.1")}
    assert "203.0.113.9" not in json.dumps(web.tables(), default=str)


# -- a flood of requests ---------------------------------------------------------------------


def set_state(folder: Path, request_id: int, state: str) -> None:
    """A request's grading over (as a worker ends it), without a VM."""
    book = Book(f"sqlite:///{folder / 'gradebook.sqlite'}", root=folder)
    try:
        with book.engine.begin() as connection:
            connection.execute(
                sa.update(book_requests).where(book_requests.c.id == request_id).values(state=state)
            )
    finally:
        book.close()


def test_a_flood_from_one_student_is_limited_and_costs_the_others_nothing(web, monkeypatch):
    amy, ben = web.signed_in("student", "amy"), web.signed_in("student", "ben")
    first = ask(amy, "basics")
    assert first.status_code == 202 and first.json()["again"] is False
    asked = first.json()["request"]
    # a double click, a reload, a script in a loop: the same request, queued once
    for _ in range(20):
        again = ask(amy, "basics")
        assert again.status_code == 202 and again.json() == {"request": asked, "again": True}
    form = amy.post("/labs/basics/grade", data={"csrftoken": me(amy)["csrf"]})
    assert form.status_code == 303 and form.headers["location"] == f"/requests/{asked}"
    assert len(requests_of(web.folder, "amy")) == 1
    set_state(web.folder, asked, queue.DONE)
    at(START + timedelta(minutes=1), monkeypatch)
    refused = ask(amy, "basics")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == 9 * 60 + 1
    assert refused.json()["retry_after"] == 9 * 60 + 1
    page = amy.post("/labs/basics/grade", data={"csrftoken": me(amy)["csrf"]})
    assert page.status_code == 429 and page.headers["retry-after"] == str(9 * 60 + 1)
    # another student is not kept waiting by her
    assert ask(ben, "basics").status_code == 202
    # a refused request does not restart the wait
    for minutes in (2, 3, 4, 5):
        at(START + timedelta(minutes=minutes), monkeypatch)
        assert ask(amy, "basics").status_code == 429
    assert int(ask(amy, "basics").headers["retry-after"]) == 5 * 60 + 1
    at(START + timedelta(minutes=10), monkeypatch)
    assert ask(amy, "basics").status_code == 202
    assert [r.student for r in requests_of(web.folder)].count("amy") == 2


def test_the_days_limit_holds_and_what_was_not_graded_uses_none_up(web, monkeypatch):
    amy = web.signed_in("student", "amy")
    for n in range(3):  # basics: at most 3 a day
        at(START + timedelta(minutes=10 * n), monkeypatch)
        answer = ask(amy, "basics")
        assert answer.status_code == 202, (n, answer.text)
        set_state(web.folder, answer.json()["request"], queue.DONE)
    at(START + timedelta(minutes=30), monkeypatch)
    refused = ask(amy, "basics")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == 24 * 3600 - 30 * 60 + 1
    at(START + timedelta(days=1, seconds=1), monkeypatch)
    answer = ask(amy, "basics")
    assert answer.status_code == 202
    set_state(web.folder, answer.json()["request"], queue.NOT_GRADED)  # her VM was down
    again = ask(amy, "basics")
    assert again.status_code == 202 and again.json()["again"] is False


def test_a_worker_grades_requests_of_one_lab_together_each_on_its_own_ask_time(web):
    """grade serve's graders take up to their share of the waiting requests of one lab (one a
    student, oldest first) and grade them as one class run; each report keeps when its own
    student asked (lateness is judged by it), and a request of another lab waits its turn."""
    clients = {name: web.signed_in("student", name) for name in ("amy", "ben", "cat")}
    asked = {name: ask(clients[name], "basics").json()["request"] for name in ("amy", "ben")}
    other = ask(clients["cat"], "later").json()["request"]
    with open_course(CourseAt(web.folder), Actor("web")) as course:
        done = work_one(course, "test-worker", quick(web.folder), timedelta(minutes=5), most=3)
    assert sorted(r.id for r in done) == sorted(asked.values())
    assert {r.state for r in done} == {queue.NOT_GRADED}  # nothing listens where they are
    when = {r.student: r.asked_at for r in requests_of(web.folder)}
    book = Book(f"sqlite:///{web.folder / 'gradebook.sqlite'}", root=web.folder)
    try:
        with book.engine.connect() as connection:
            rows = connection.execute(
                sa.select(reports.c.student, reports.c.run_id, reports.c.asked_at)
            ).all()
    finally:
        book.close()
    assert len({r.run_id for r in rows}) == 1  # one class run
    assert {r.student: datetime.fromisoformat(r.asked_at) for r in rows} == {
        s: when[s] for s in asked
    }
    [waiting] = [r for r in requests_of(web.folder) if r.id == other]
    assert waiting.state == queue.QUEUED and waiting.attempts == 0


def test_requests_sent_at_once_queue_one_grading(web, monkeypatch):
    amy = web.signed_in("student", "amy")
    csrf = me(amy)["csrf"]
    cookies = dict(amy.cookies.items())
    together = threading.Barrier(2, timeout=5)
    add = queue.add

    def held(*args: Any) -> queue.Request:
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait()  # both requests are past every check ask() makes
        return add(*args)

    monkeypatch.setattr(queue, "add", held)
    answers: list[tuple[int, Any]] = []

    def one() -> None:
        client = web.browser()
        for name, value in cookies.items():
            plant(client, value, name)
        answer = client.post("/api/grade", json={"lab": "basics"},
                             headers={"x-csrf-token": csrf})  # fmt: skip
        answers.append((answer.status_code, answer.json().get("request")))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queued = [r.id for r in requests_of(web.folder, "amy")]
    assert (len(queued), sorted(set(answers))) == (1, [(202, queued[0])]), answers


def test_a_lab_that_takes_no_requests_says_so(folder):
    text = (folder / "course.toml").read_text()
    (folder / "course.toml").write_text(
        text.replace('feedback = "after_due"', 'feedback = "after_due"\nrequests = { per_day = 0 }')
    )
    with served(folder) as (app, first):
        web = Web(app, folder, first)
        amy = web.signed_in("student", "amy")
        answer = ask(amy, "later")
        assert answer.status_code in (409, 429), answer.status_code
        assert "Retry-After" not in answer.headers or int(answer.headers["retry-after"]) > 0
        page = amy.post("/labs/later/grade", data={"csrftoken": me(amy)["csrf"]})
        assert page.status_code in (409, 429), page.status_code
    assert requests_of(folder) == []


# -- after the due time ----------------------------------------------------------------------


def test_after_the_due_time_a_closed_lab_refuses_and_a_late_one_asks_to_confirm(web, monkeypatch):
    at(DUE + timedelta(hours=5), monkeypatch)
    amy = web.signed_in("student", "amy")
    closed = ask(amy, "closed")
    assert closed.status_code == 409 and "takes no late work" in closed.json()["error"]
    assert ask(amy, "closed", confirm_late=True).status_code == 409
    page = amy.post(
        "/labs/closed/grade", data={"csrftoken": me(amy)["csrf"], "confirm_late": "yes"}
    )
    assert page.status_code == 409
    assert "closed" in amy.get("/labs/closed").text
    assert requests_of(web.folder) == []
    late = ask(amy, "basics")
    assert late.status_code == 409
    assert late.json()["confirm"] is True and late.json()["penalty"] == pytest.approx(0.1)
    assert "10%" in late.json()["error"]
    for almost in ("true", 1, "yes", [True]):  # only JSON's true confirms
        assert ask(amy, "basics", confirm_late=almost).status_code == 409
    form = amy.post("/labs/basics/grade", data={"csrftoken": me(amy)["csrf"]})
    assert form.status_code == 409 and "10%" in form.text and 'name="confirm_late"' in form.text
    assert requests_of(web.folder) == []
    confirmed = ask(amy, "basics", confirm_late=True)
    assert confirmed.status_code == 202
    [asked] = requests_of(web.folder)
    assert asked.asked_at == DUE + timedelta(hours=5)


# -- what the book and the VMs say, shown ----------------------------------------------------

MARKUP = "<script>alert('vm')</script><img src=x onerror=alert(2)>"
CONTROLS = "\x1b[2J\x1b]52;c;ZXZpbA==\x07\r\b\u202e\x9b"
HOSTILE = {
    "sshd_runs": ("fail", f"sshd said {MARKUP} and {CONTROLS} end"),
    "hostname_file": ("pass", ""),
    "grader_only": ("fail", "hidden"),
}
RAW = ("<script>alert(", "<img src=x", "\x1b", "\x07", "\b", "\u202e", "\x9b", "\r")


def assert_shown_as_text(text: str, where: str) -> None:
    for raw in RAW:
        assert raw not in text, (where, raw)


def test_everything_from_the_book_or_a_vm_is_shown_as_text(web):
    run = record(web.folder, "amy", "basics", HOSTILE, host=f"vm{MARKUP}{CONTROLS}")
    anna = web.signed_in("staff", "anna")
    csrf = me(anna)["csrf"]
    override = anna.post("/staff/students/amy/labs/basics/override",
                         data={"csrftoken": csrf, "check": "hostname_file", "value": "0.5",
                               "reason": f"careless {MARKUP}"})  # fmt: skip
    assert override.status_code == 303, override.text
    amy = web.signed_in("student", "amy")
    asked = ask(amy, "basics").json()["request"]
    book = Book(f"sqlite:///{web.folder / 'gradebook.sqlite'}", root=web.folder)
    with book.engine.begin() as connection:  # as a worker writes what a VM answered
        connection.execute(
            sa.update(book_requests).values(reason=f"not graded: {MARKUP}{CONTROLS}")
        )
    book.close()
    pages = {
        "amy /": amy.get("/"),
        "amy lab": amy.get("/labs/basics"),
        "amy report": amy.get(f"/labs/basics/gradings/{run}"),
        "amy request": amy.get(f"/requests/{asked}"),
        "anna /": anna.get("/"),
        "anna queue": anna.get("/staff/queue"),
        "anna report": anna.get(f"/staff/students/amy/labs/basics/gradings/{run}"),
        "anna request": anna.get(f"/requests/{asked}"),
    }
    for where, answer in pages.items():
        assert answer.status_code == 200, (where, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), where
        assert_shown_as_text(answer.text, where)
        assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in answer.text or (
            "report" in where
        ), where
    assert "Amy &lt;img src=x onerror=alert(1)&gt;" in pages["amy /"].text
    assert "&lt;script&gt;alert(&#39;vm&#39;)" in pages["amy lab"].text  # the check's reason
    assert "careless &lt;script&gt;" in pages["amy lab"].text  # staff's reason
    assert "&lt;script&gt;" in pages["amy request"].text
    for where, path in (("me", "/api/me"), ("request", f"/api/requests/{asked}")):
        answer = amy.get(path)
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.headers["x-content-type-options"] == "nosniff"
        for raw in RAW[2:]:  # markup is data in JSON; a control character is an escape
            assert raw not in answer.text, (where, raw)
    assert me(amy)["name"] == HOSTILE_NAME  # the name itself, as data
    book_json = anna.get("/api/book")
    for raw in RAW[2:]:
        assert raw not in book_json.text


def test_staff_see_a_students_page_with_their_gradings_as_text(web):
    record(web.folder, "amy", "basics", HOSTILE, host=f"vm{MARKUP}{CONTROLS}")
    anna = web.signed_in("staff", "anna")
    answer = anna.get("/staff/students/amy")
    assert answer.status_code == 200, answer.status_code
    assert_shown_as_text(answer.text, "staff's page of amy")
    assert "&lt;script&gt;alert(&#39;title&#39;)" in answer.text


# -- secrets ---------------------------------------------------------------------------------


def crawl(web: Web, student: TestClient, staff: TestClient, asked: int) -> dict[str, str]:
    """Every page and JSON a student and staff reach, and the error pages, by name."""
    found = {}
    for who, client, paths in (
        ("amy", student, ["/", "/labs/basics", "/labs/later", "/labs/held", "/labs/closed",
                          f"/requests/{asked}", f"/api/requests/{asked}", "/api/me",
                          "/labs/nope", "/requests/999", "/api/requests/999", "/staff/queue"]),
        ("anna", staff, ["/", "/staff/queue", "/api/book", "/api/me", f"/requests/{asked}",
                         f"/api/requests/{asked}", "/staff/students/cat", "/staff/students/zed",
                         "/staff/students/ben/labs/basics/gradings/1"]),
    ):  # fmt: skip
        for path in paths:
            answer = client.get(path)
            assert answer.status_code < 500, (who, path, answer.status_code)
            found[f"{who} {path}"] = answer.text + json.dumps(dict(answer.headers))
    csrf = me(staff)["csrf"]
    override = "/staff/students/amy/labs/basics/override"
    for path, data in (
        ("/staff/students/zed/labs/basics/override", {"value": "1", "reason": "x"}),
        (override, {"value": "99", "reason": "x"}),
        (override, {"check": "nope", "value": "1", "reason": "x"}),
        ("/staff/labs/basics/release", {}),
        ("/staff/students/zed/labs/basics/grade", {}),
        ("/staff/students/amy/labs/nope/grade", {}),
    ):  # fmt: skip
        answer = staff.post(path, data={"csrftoken": csrf, **data})
        assert answer.status_code < 500, (path, answer.status_code)
        found[f"anna POST {path} {data}"] = answer.text
    return found


def secrets_of(web: Web, identity: Path) -> dict[str, str]:
    return {
        "the lab's variable from the environment": SECRET_VALUE,
        "the SSH password": SSH_PASSWORD,
        "web.key": (web.folder / SECRET_FILE).read_text().strip(),
        "signing.key": (web.folder / KEY_FILE).read_text().strip(),
        "the identity key's folder": str(identity.parent),
    }


def test_no_page_json_or_log_line_shows_a_secret(web, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    Key(web.folder / KEY_FILE).prepared()
    identity = web.folder.parent / "staff-only-keys" / "id_grader"
    identity.parent.mkdir()
    write_key(identity)
    amy, anna = web.signed_in("student", "amy"), web.signed_in("staff", "anna")
    asked = ask(amy, "basics").json()["request"]
    done = grade_next(web.folder, identity=identity, password=SSH_PASSWORD)
    assert done is not None and done.state == queue.NOT_GRADED, done
    shown = crawl(web, amy, anna, asked)
    logged = caplog.text + "".join(capsys.readouterr())
    for name, secret in secrets_of(web, identity).items():
        assert len(secret) > 8
        for where, text in shown.items():
            assert secret not in text, (name, where)
        assert secret not in logged, name


def test_our_sides_errors_show_a_student_no_path_of_ours(web, monkeypatch):
    amy = web.signed_in("student", "amy")
    identity = web.folder.parent / "staff-only-keys" / "id_grader"  # not there (moved)
    asked = ask(amy, "basics").json()["request"]
    done = None
    for _ in range(3):  # the tries our side makes before it says it could not grade it
        done = grade_next(web.folder, identity=identity)
    assert done is not None and done.state == queue.NOT_GRADED, done
    for path in (f"/requests/{asked}", f"/api/requests/{asked}", "/labs/basics"):
        text = amy.get(path).text
        assert str(identity.parent) not in text, path
        assert str(web.folder.parent) not in text, path


# -- what a student sees, and when -----------------------------------------------------------

SEEN = {
    "sshd_runs": ("fail", "REASON-sshd: sshd is not running"),
    "hostname_file": ("pass", "PASSED-hostname"),
    "grader_only": ("pass", "HIDDEN-REASON of the hidden check"),
}


def everything_of(client: TestClient, lab: str, run: int) -> tuple[str, int, str]:
    """The lab's page, the report's status, and the JSON a student reads."""
    page = client.get(f"/labs/{lab}")
    assert page.status_code == 200
    report = client.get(f"/labs/{lab}/gradings/{run}")
    return page.text, report.status_code, json.dumps(me(client))


def test_after_due_before_the_due_time_shows_what_lost_marks_but_not_why(web, monkeypatch):
    run = record(web.folder, "amy", "later", SEEN)
    amy = web.signed_in("student", "amy")
    page, report, api = everything_of(amy, "later", run)
    assert "sshd_runs" in page and "1 / 4" not in page  # which check lost marks
    assert "2 / 4" in page  # the mark (the hidden check counted)
    for hidden in ("REASON-sshd", "HINT-sshd", "PASSED-hostname", "hostname_file",
                   "HIDDEN-REASON", "grader_only", f"/labs/later/gradings/{run}"):  # fmt: skip
        assert hidden not in page, hidden
        assert hidden not in api, hidden
    assert report == 404
    at(DUE + timedelta(minutes=1), monkeypatch)
    amy = web.signed_in("student", "amy")
    page, report, api = everything_of(amy, "later", run)
    assert "REASON-sshd" in page and "HINT-sshd" in page
    assert report == 200
    shown = amy.get(f"/labs/later/gradings/{run}").text
    assert "REASON-sshd" in shown and "HIDDEN-REASON" not in shown and "grader_only" not in shown


def test_on_release_shows_the_mark_only_until_staff_release_it(web, capsys):
    run = record(web.folder, "amy", "held", SEEN)
    amy = web.signed_in("student", "amy")
    page, report, api = everything_of(amy, "held", run)
    assert "2 / 4" in page
    for hidden in ("REASON-sshd", "HINT-sshd", "sshd_runs", "PASSED-hostname",
                   "HIDDEN-REASON", "grader_only", f"/labs/held/gradings/{run}"):  # fmt: skip
        assert hidden not in page, hidden
        assert hidden not in api, hidden
    assert report == 404
    # a student cannot release it; a release by staff from the web is refused cross-site
    assert (
        amy.post("/staff/labs/held/release", data={"csrftoken": me(amy)["csrf"]}).status_code == 404
    )
    assert everything_of(amy, "held", run)[1] == 404
    assert main(["book", "release", "held", "--course", str(web.folder), "--by", "anna"]) == 0
    capsys.readouterr()
    page, report, api = everything_of(amy, "held", run)
    assert "REASON-sshd" in page and "HINT-sshd" in page and report == 200
    assert "HIDDEN-REASON" not in page and "grader_only" not in page
    book = Book(f"sqlite:///{web.folder / 'gradebook.sqlite'}", root=web.folder)
    with book.engine.connect() as connection:
        released = connection.execute(sa.select(releases)).all()
    book.close()
    assert [(r.lab, r.made_by) for r in released] == [("held", "anna")]


def test_a_hidden_check_is_only_counted_for_a_student(web):
    hidden = {**SEEN, "grader_only": ("error", "HIDDEN-REASON: could not run")}
    run = record(web.folder, "amy", "basics", hidden)
    amy = web.signed_in("student", "amy")
    page, report, api = everything_of(amy, "basics", run)
    assert report == 200
    shown = amy.get(f"/labs/basics/gradings/{run}").text
    for where, text in (
        ("page", page),
        ("api", api),
        ("report", shown),
        ("home", amy.get("/").text),
        ("request", amy.get("/api/requests/1").text),
    ):
        assert "HIDDEN-REASON" not in text, where
        assert "grader_only" not in text, where
        assert "Title of grader_only" not in text, where
    assert "1 more check is marked by your instructor" in page
    assert "REASON-sshd" in page  # what she may see, she sees
    anna = web.signed_in("staff", "anna")
    staff = anna.get(f"/staff/students/amy/labs/basics/gradings/{run}").text
    assert "HIDDEN-REASON" in staff  # staff see the instructor's view


# -- staff's actions -------------------------------------------------------------------------


def history_of(folder: Path, student: str) -> list[dict[str, Any]]:
    with open_course(CourseAt(folder), Actor("test")) as course:
        return list(course.book.history(student))


def test_staff_actions_are_recorded_by_whoever_is_signed_in_and_refused_to_a_student(web):
    record(web.folder, "amy", "basics", SEEN)
    amy, anna = web.signed_in("student", "amy"), web.signed_in("staff", "anna")
    before = web.tables()
    csrf = me(amy)["csrf"]
    override = "/staff/students/amy/labs/basics/override"
    for path, data in (
        (override, {"value": "4", "reason": "mine"}),
        (override, {"check": "sshd_runs", "value": "2", "reason": "x"}),
        ("/staff/students/ben/labs/basics/override", {"value": "0", "reason": "x"}),
        ("/staff/labs/held/release", {}),
    ):  # fmt: skip
        answer = amy.post(path, data={"csrftoken": csrf, **data})
        assert answer.status_code == 404, (path, answer.status_code)
    assert web.tables() == before
    csrf = me(anna)["csrf"]
    for bad in ({"value": "nan", "reason": "x"}, {"value": "inf", "reason": "x"},
                {"value": "3", "reason": " "}, {"value": "3"}, {"value": "99", "reason": "x"},
                {"check": "grader_only", "value": "5", "reason": "x"}):  # fmt: skip
        answer = anna.post(
            "/staff/students/amy/labs/basics/override", data={"csrftoken": csrf, **bad}
        )
        assert answer.status_code == 400, (bad, answer.status_code)
    assert web.tables() == before
    answer = anna.post(
        "/staff/students/amy/labs/basics/override",
        data={"csrftoken": csrf, "check": "sshd_runs", "value": "2", "reason": "sshd was fine"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/students/amy"
    [made] = [e for e in history_of(web.folder, "amy") if e["kind"] == "override"]
    assert (made["by"], made["reason"], made["check"]) == ("anna", "sshd was fine", "sshd_runs")
    assert (
        "4 / 4" in amy.get("/labs/basics").text
        and "set by anna: sshd was fine" in amy.get("/labs/basics").text
    )
    asked = anna.post("/staff/students/ben/labs/basics/grade", data={"csrftoken": csrf})
    assert asked.status_code == 303
    [request] = requests_of(web.folder, "ben")
    assert (request.student, request.asked_by) == ("ben", "anna")
    answer = ask(anna, "basics", student="ben")
    assert answer.status_code == 202 and answer.json() == {"request": request.id, "again": True}


# -- what every answer says of itself --------------------------------------------------------


def test_every_answer_carries_the_security_headers_and_private_ones_are_not_cached(web):
    amy = web.signed_in("student", "amy")
    anyone = web.browser()
    answers = {
        "home": amy.get("/"), "lab": amy.get("/labs/basics"), "me": amy.get("/api/me"),
        "404": amy.get("/labs/nope"), "401": anyone.get("/labs/basics"),
        "403": amy.post("/api/grade", json={"lab": "basics"}),
        "static": amy.get("/static/style.css"), "no route": amy.get("/nowhere"),
        "sign-in page": anyone.get("/signin/" + "x" * 40),
    }  # fmt: skip
    for where, answer in answers.items():
        headers = answer.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], where
        assert headers["x-frame-options"] == "DENY", where
        assert headers["referrer-policy"] == "no-referrer", where
        assert headers["x-content-type-options"] == "nosniff", where
    for where in ("home", "lab", "me", "sign-in page"):
        assert answers[where].headers["cache-control"] == "no-store", where


def test_a_sign_in_token_in_the_address_is_shown_as_text(web):
    for token in ('"><img src=x onerror=alert(1)>', "x' onmouseover='alert(1)", "\x1b[2J"):
        answer = web.browser().get(f"/signin/{quote(token, safe='')}")
        assert answer.status_code == 200
        assert "<img src=x" not in answer.text and "' onmouseover='" not in answer.text
        assert "\x1b" not in answer.text


def test_over_https_every_cookie_is_secure(folder):
    with served(folder, public_url="https://grader.example.edu") as (app, first):
        web = Web(app, folder, first)
        client = TestClient(app, base_url="https://grader.example.edu", follow_redirects=False)
        token = web.link("student", "amy")
        page = client.get(f"/signin/{token}")
        assert "secure" in page.headers["set-cookie"].lower()  # the CSRF cookie
        answer = sign_in(client, token)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"].lower()
        assert "grader_session=" in cookie and "secure" in cookie and "httponly" in cookie


def test_a_csrf_token_is_good_only_for_the_session_it_was_given_to(web):
    """A token one student got from the server is good for their session only: in a staff
    member's browser (sent by a page of a sibling subdomain, say) it posts nothing. (It was
    asgi-csrf's double-submit cookie, bound to no session: review finding 1.)"""
    mallory = web.signed_in("student", "ben")
    token = csrf_of(mallory)
    anna = web.signed_in("staff", "anna")
    record(web.folder, "ben", "basics", SEEN)
    before = web.tables()
    answer = anna.post(
        "/staff/students/ben/labs/basics/override",
        data={"csrftoken": token, "value": "4", "reason": "forged"},
    )
    assert answer.status_code == 403, answer.status_code
    assert web.tables() == before


# -- the queue while the course is held ------------------------------------------------------


def hold_the_course_while_a_worker_runs(
    web: Web, seconds: float, until: Callable[[], bool] = lambda: False
) -> None:
    """``grade course due`` holds the course (as ta-anna) while one worker of the web runs, for
    ``seconds`` or until ``until()``."""
    config = WebConfig(CourseAt(web.folder), graders=1, poll=0.2, connection=quick(web.folder))
    with (
        open_course(CourseAt(web.folder), Actor("ta-anna")) as course,
        course_lock(course.book, "course due", wait=0),
    ):
        workers = Workers(course, config)
        workers.start()
        stop = time.monotonic() + seconds
        while time.monotonic() < stop and not until():
            time.sleep(0.05)
        workers.join()


def test_a_worker_waits_while_the_course_is_held(web):
    amy = web.signed_in("student", "amy")
    asked = ask(amy, "basics").json()["request"]
    hold_the_course_while_a_worker_runs(web, 1.5)
    [request] = requests_of(web.folder)
    assert request.state == queue.QUEUED  # waits for the course, untried
    assert request.attempts == 0
    assert len(request.phases) <= 2 + 2 * 10, len(request.phases)  # a turn each poll at most
    assert len(amy.get(f"/api/requests/{asked}").text) < 10_000


def test_a_request_waiting_for_the_course_shows_nothing_of_who_holds_it(web):
    """(Review finding 8: the worker put it back saying who held the course. A worker now
    takes nothing while the course is held: the request waits untouched.)"""
    amy = web.signed_in("student", "amy")
    asked = ask(amy, "basics").json()["request"]
    hold_the_course_while_a_worker_runs(web, 2)
    waiting = requests_of(web.folder)[0]
    assert (waiting.state, waiting.reason, waiting.attempts) == (queue.QUEUED, None, 0)
    for path in (f"/requests/{asked}", f"/api/requests/{asked}", "/labs/basics"):
        text = amy.get(path).text
        assert "ta-anna" not in text, path
        assert f"on {socket.gethostname()} (pid {os.getpid()})" not in text, path


# -- links in bulk, and the files that stay private ------------------------------------------


def test_links_for_the_roster_are_private_and_each_signs_in_its_student_once(web, capsys):
    out = web.folder.parent / "links.csv"
    assert main(["serve", "link", "--roster", "--out", str(out), "--course", str(web.folder)]) == 0
    capsys.readouterr()
    assert out.stat().st_mode & 0o077 == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["student"] for r in rows] == ["amy", "ben", "cat"]
    for row in rows:
        token = row["address"].rsplit("/", 1)[1]
        client = web.browser()
        assert sign_in(client, token).status_code == 303
        assert me(client)["student"] == row["student"]
    for name in (SECRET_FILE, "gradebook.sqlite"):
        assert (web.folder / name).stat().st_mode & 0o077 == 0, name


def test_a_staff_link_lasts_an_hour_and_one_link_signs_in_once_from_two_tabs(web, monkeypatch):
    staff = web.link("staff", "anna")
    at(START + timedelta(minutes=61), monkeypatch)
    assert sign_in(web.browser(), staff).status_code == 403
    token = web.link("student", "amy")
    tabs = [web.browser() for _ in range(4)]
    forms = []
    for tab in tabs:
        page = tab.get(f"/signin/{token}")
        found = re.search(r'name="csrftoken" value="([^"]+)"', page.text)
        assert found is not None
        forms.append(found.group(1))
    together = threading.Barrier(len(tabs))
    statuses: list[int] = []

    def press(tab: TestClient, csrf: str) -> None:
        together.wait()
        statuses.append(tab.post("/signin", data={"csrftoken": csrf, "token": token}).status_code)

    threads = [threading.Thread(target=press, args=pair) for pair in zip(tabs, forms, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303, 403, 403, 403]
    assert sum(tab.get("/api/me").status_code == 200 for tab in tabs) == 1
