"""The course as an LTI 1.3 tool, against an LTI platform this project did not write
(``lti1p3platform``, played on loopback by tests/lti_platform.py) and against a hostile one:
one test (at least) for each line of issue 35's "Bad input and hostile use", and for each
quirk of a real LMS the tool must cope with.

The tool runs in-process (starlette's TestClient, the web's own graders and outbox thread off:
the tests feed and push the outbox themselves); the platform is a real HTTP server on loopback,
which the tool reaches for its keys, tokens and services as it would reach an LMS. A grading is
a report recorded into the book as a grading records it (no VM needed).
"""

from __future__ import annotations

import json
import logging
import re
import stat
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import sqlalchemy as sa
from starlette.testclient import TestClient

from grader.actions import lms
from grader.actions.book import open_course
from grader.actions.common import Actor, CourseAt
from grader.cli import main
from grader.course.book import Book, metadata
from grader.course.lti import keys, services
from grader.course.lti import launch as launching
from grader.course.lti.launch import (
    CONTEXT,
    CUSTOM,
    DEEP_LINKING,
    DEPLOYMENT,
    MESSAGE_TYPE,
    RESOURCE_LINK,
    ROLES,
    VERSION,
)
from grader.web.lti import state_cookie
from tests.lti_platform import INSTRUCTOR, LEARNER, Platform, User
from tests.test_web import BASE, CHECKS, RUBRIC, START, at, browser_of, record, served

DUE = "2026-12-02T12:00:00+00:00"
ALL_PASS = {"sshd_runs": ("pass", "ok"), "hostname_file": ("pass", "ok"),
            "grader_only": ("fail", "hidden reason")}  # fmt: skip
LIS_ROLES = "http://purl.imsglobal.org/vocab/lis/v2/"
HOSTILE = "Eve <img src=x onerror=alert(1)> \x1b[31m\u202eevil"


def course_toml(platform: Platform, match: str = "email") -> str:
    return f"""\
title = "Systems 2026"
roster = "class.csv"
staff = ["anna", "tara@uni.example"]

[[labs]]
id = "basics"
rubric = "lab/rubric.toml"
due = {DUE}
policy = "best"

[[labs]]
id = "held"
rubric = "lab/rubric.toml"
due = {DUE}
policy = "best"
feedback = "on_release"

{platform.toml(match)}"""


@pytest.fixture
def platform() -> Iterator[Platform]:
    made = Platform(BASE)
    made.users = {u.sub: u for u in (
        User("lms-amy-7f3a", "Amy Adams", [LEARNER], "amy@uni.example", "s100", "amy",
             nrps_id="1001"),
        User("lms-ben-91c2", "Ben Baker", [LEARNER], None, "s200", "ben"),  # no email
        User("lms-anna-0001", "Anna Staff", [INSTRUCTOR], "anna@uni.example", None, "anna"),
        User("lms-eve-6666", HOSTILE, [LEARNER], "eve@elsewhere.example", "s999", "eve"),
    )}  # fmt: skip
    # a link to the basics lab placed by hand (no line item): what a launch opens by default
    made.links["link-0"] = {"title": "basics", "custom": {"lab": "basics"}, "lineitem": None}
    with made.running():
        yield made


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, platform: Platform) -> Path:
    at(START, monkeypatch)
    for name in ("GRADER_DB", "GRADER_COURSE"):
        monkeypatch.delenv(name, raising=False)
    course = tmp_path / "course"
    (course / "lab" / "checks").mkdir(parents=True)
    (course / "lab" / "rubric.toml").write_text(RUBRIC)
    (course / "lab" / "checks" / "test_basics.py").write_text(CHECKS)
    (course / "course.toml").write_text(course_toml(platform))
    (course / "class.csv").write_text(
        "student,host,name,email,id number\n"
        "amy,127.0.0.1,Amy Adams,AMY@uni.example,s100\n"
        "ben,127.0.0.2,Ben Baker,ben@uni.example,s200\n"
        "cat,127.0.0.3,Cat Carter,cat@uni.example,s300\n"
    )
    monkeypatch.setenv("WEB_TEST_LAB_SECRET", "x")
    assert main(["serve", "lti-keys", "--course", str(course)]) == 0
    platform.tool_jwks = lambda: keys.jwks(course)
    services.forget_tokens()
    # each test's platform has keys of its own, at a port an earlier test's may have had: the
    # process's key-set clients (one per address, refetched at most every 10 s) start empty
    monkeypatch.setattr(launching, "_clients", {})
    return course


@pytest.fixture
def tool(folder: Path) -> Iterator[Any]:
    with served(folder, lms_every=0) as (app, _):
        yield app


def book_of(folder: Path) -> Book:
    return Book(f"sqlite:///{folder / 'gradebook.sqlite'}", root=folder)


def tables(folder: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table but the sessions' and the logins' (whose state a launch uses up)."""
    book = book_of(folder)
    try:
        with book.engine.connect() as connection:
            return {
                name: sorted(map(tuple, connection.execute(sa.select(table))), key=repr)
                for name, table in metadata.tables.items()
                if name not in ("web_sessions", "lti_logins")
            }
    finally:
        book.close()


# -- driving a launch as a browser would ---------------------------------------------------------


def begin(
    client: TestClient, platform: Platform, sub: str, link: str = "link-0", **hint: str
) -> dict[str, str]:
    """A user opens a link in the LMS: the platform's login initiation, the tool's login (the
    state's cookie set in ``client``), the platform's authorization; the launch form's fields
    (id_token, state) and the nonce the tool asked for."""
    hint = {"link": link, **hint} if "deep" not in hint else hint
    started = requests.get(f"{platform.url}/course/launch", params={"user": sub, **hint},
                           allow_redirects=False, timeout=10)  # fmt: skip
    assert started.status_code == 302, started.text
    to_tool = started.headers["location"]
    assert to_tool.startswith(f"{BASE}/lti/login?"), to_tool
    login = client.get(to_tool.removeprefix(BASE))
    assert login.status_code == 302, login.text
    query = parse_qs(urlsplit(login.headers["location"]).query)
    authorized = requests.get(login.headers["location"], timeout=10)
    assert authorized.status_code == 200, authorized.text
    fields = dict(re.findall(r'name=(\w+) value="([^"]*)"', authorized.text))
    return {**fields, "nonce": query["nonce"][0]}


def launch(client: TestClient, platform: Platform, sub: str, **hint: str) -> Any:
    fields = begin(client, platform, sub, **hint)
    return client.post("/lti/launch", data={"id_token": fields["id_token"],
                                            "state": fields["state"]})  # fmt: skip


def me(client: TestClient) -> dict[str, Any]:
    answer = client.get("/api/me")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def place(tool: Any, platform: Platform, lab: str = "basics") -> str:
    """Staff add the tool in the LMS and pick the lab: the launch answers with the picker (a
    form a lab, each posting its signed deep linking response to the LMS: nothing comes back
    to the tool, so it works in the LMS's frame, where the tool has no cookie); the resource
    link the platform placed."""
    anna = browser_of(tool)
    answer = launch(anna, platform, "lms-anna-0001", deep="1")
    assert answer.status_code == 200, answer.text
    policy = answer.headers["content-security-policy"]
    assert f"form-action {platform.url};" in policy and f"frame-ancestors {platform.url};" in policy
    assert "x-frame-options" not in answer.headers  # the LMS frames the picker
    form = re.search(
        r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="JWT" '
        rf'value="([^"]+)">\s*<button type="submit">Place {lab}: ',
        answer.text,
    )
    assert form is not None, answer.text
    assert form.group(1) == f"{platform.url}/deep-link-return"
    back = requests.post(form.group(1), data={"JWT": form.group(2)}, timeout=10)
    assert back.status_code == 200, back.text
    return list(platform.links)[-1]


def feed_and_push(folder: Path) -> lms.Pushed:
    with open_course(CourseAt(folder), Actor("web")) as course:
        lms.feed(course)
        return lms.push(course)


# -- course.toml's [[lti]] ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda t: t.replace("client_id =", "clientid ="),
         r"lti\[0\]\.clientid: unknown key \(did you mean 'client_id'\?\)"),
        (lambda t: t.replace('key_set_url = "http://127.0.0.1', 'key_set_url = "http://lms.example'),
         r"lti\[0\]\.key_set_url: http://lms\.example\S* is not https"),
        (lambda t: t.replace('match = "email"', 'match = "emial"'),
         r"lti\[0\]\.match: 'emial' is neither one of email, sis_id, username "
         r"\(did you mean 'email'\?\)"),
        (lambda t: t.replace('client_id = "grader-tool-1"', 'client_id = "a\\u001b[2Jb"'),
         r"lti\[0\]\.client_id: holds a control character \(U\+001B\)"),
        (lambda t: t + t[t.index("[[lti]]"):],
         r"lti\[1\]: \S+ with client_id 'grader-tool-1' is registered twice"),
    ],
)  # fmt: skip
def test_a_bad_lti_table_is_refused_by_file_line_and_key(folder, capsys, change, said):
    toml = folder / "course.toml"
    toml.write_text(change(toml.read_text()))
    assert main(["book", "show", "--course", str(folder)]) == 2
    err = capsys.readouterr().err
    assert re.search(rf"course\.toml:\d+: {said}", err), err
    assert "Traceback" not in err


# -- the tool's keys and registration --------------------------------------------------------------


def test_the_private_key_stays_in_the_course_folder_and_rotation_keeps_the_old_one_published(
    folder, tool, capsys, monkeypatch
):
    where = folder / keys.FOLDER
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE((where / keys.CURRENT).stat().st_mode) == 0o600
    private = (where / keys.CURRENT).read_text()
    client = browser_of(tool)
    published = client.get("/lti/jwks").json()["keys"]
    assert len(published) == 1 and set(published[0]) == {"kty", "n", "e", "kid", "alg", "use"}
    first = published[0]["kid"]
    capsys.readouterr()
    assert main(["serve", "lti-keys", "--rotate", "--course", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"Published at /lti/jwks: {keys.keys(folder)[0].kid}, {first}" in out
    assert [k["kid"] for k in client.get("/lti/jwks").json()["keys"]][1] == first
    at(START + timedelta(days=2), monkeypatch)  # past the day a retired key stays
    assert main(["serve", "lti-keys", "--course", str(folder)]) == 0
    assert "Deleted" in capsys.readouterr().out
    assert [k["kid"] for k in client.get("/lti/jwks").json()["keys"]] != [first]
    # the private key is on no page, in no config, in no output
    body = private.split("-----")[2].replace("\n", "")
    for lms_name in ("moodle", "canvas", "brightspace"):
        assert main(["serve", "lti-config", "--lms", lms_name, "--course", str(folder)]) == 0
    shown = capsys.readouterr().out + client.get("/lti/jwks").text
    assert body[:40] not in shown.replace("\n", "") and "PRIVATE" not in shown


def test_two_rotations_in_one_second_keep_both_retired_keys_published(folder, tool):
    client = browser_of(tool)
    kids = [client.get("/lti/jwks").json()["keys"][0]["kid"]]
    for _ in range(2):  # the clock stands still: the same second
        assert main(["serve", "lti-keys", "--rotate", "--course", str(folder)]) == 0
        kids.insert(0, keys.keys(folder)[0].kid)
    assert [k["kid"] for k in client.get("/lti/jwks").json()["keys"]] == kids


def test_lti_config_prints_what_each_lms_asks_for(folder, capsys):
    public = "https://grades.example.edu"
    assert main(["serve", "lti-config", "--lms", "moodle", "--public-url", public,
                 "--course", str(folder)]) == 0  # fmt: skip
    moodle = capsys.readouterr().out
    for line in (f"Tool URL   {public}/lti/launch", f"Public keyset   {public}/lti/jwks",
                 f"Initiate login URL   {public}/lti/login",
                 f"Redirection URI(s)   {public}/lti/launch"):  # fmt: skip
        assert re.search(
            line.replace("   ", r"\s+").replace("(", r"\(").replace(")", r"\)"), moodle
        ), moodle
    assert "IMS LTI Assignment and Grade Services" in moodle
    assert main(["serve", "lti-config", "--lms", "canvas", "--public-url", public,
                 "--course", str(folder)]) == 0  # fmt: skip
    canvas = capsys.readouterr().out
    key = json.loads(canvas[canvas.index("{") :])
    assert key["oidc_initiation_url"] == f"{public}/lti/login"
    assert key["public_jwk_url"] == f"{public}/lti/jwks"
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in key["scopes"]
    assert main(["serve", "lti-config", "--lms", "canvas", "--public-url", "http://lms.example",
                 "--course", str(folder)]) == 2  # fmt: skip


def test_the_readme_shows_what_lti_config_prints_for_moodle_and_canvas(folder, capsys):
    """The README's "From the LMS" prints each LMS's lti-config as the command prints it."""
    toml = folder / "course.toml"
    toml.write_text(toml.read_text().replace('title = "Systems 2026"',
                                             'title = "Computer Systems 2026"'))  # fmt: skip
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    shown = {
        which: block
        for which, block in re.findall(
            r"\$ grade serve lti-config --lms (\w+) --public-url https://grades\.example\.edu\n"
            r"(.*?)\n *```",
            readme,
            re.S,
        )
    }
    assert set(shown) == {"moodle", "canvas"}, list(shown)
    for which, block in shown.items():
        assert main(["serve", "lti-config", "--lms", which, "--public-url",
                     "https://grades.example.edu", "--course", str(folder)]) == 0  # fmt: skip
        printed = capsys.readouterr().out
        indent = min(len(x) - len(x.lstrip()) for x in block.splitlines() if x.strip())
        assert [x[indent:] for x in block.splitlines()] == printed.rstrip("\n").splitlines(), which


# -- launches --------------------------------------------------------------------------------------


def test_a_student_launch_opens_a_session_on_the_lab_and_binds_their_lms_user(
    tool, platform, folder
):
    link = place(tool, platform)
    amy = browser_of(tool)
    amy.cookies.set("grader_session", "planted-by-somebody", domain="127.0.0.1")
    answer = launch(amy, platform, "lms-amy-7f3a", link=link)
    assert answer.status_code == 303 and answer.headers["location"] == "/labs/basics"
    assert amy.cookies.get("grader_session") != "planted-by-somebody"  # a new session id
    assert me(amy)["student"] == "amy"
    assert amy.get("/labs/basics").status_code == 200
    # later launches find amy by her LMS user, whatever her email says now
    platform.users["lms-amy-7f3a"].email = "amy.adams@new.example"
    again = browser_of(tool)
    assert launch(again, platform, "lms-amy-7f3a", link=link).status_code == 303
    assert me(again)["student"] == "amy"
    book = book_of(folder)
    with book.engine.connect() as c:
        bound = c.execute(sa.text("SELECT sub, student, matched_by FROM lti_users")).all()
    book.close()
    assert [tuple(b) for b in bound] == [("lms-amy-7f3a", "amy", "email = amy@uni.example")]


def test_staff_place_a_lab_by_deep_link_with_its_line_item(tool, platform):
    link = place(tool, platform, "basics")
    item = platform.placed[-1]
    assert item["type"] == "ltiResourceLink" and item["custom"] == {"lab": "basics"}
    assert item["lineItem"] == {"label": "basics: Lab 1: the basics", "scoreMaximum": 4.0,
                                "resourceId": "basics", "tag": "grade"}  # fmt: skip
    # opened in a window of its own (the tool's pages refuse frames): the platform is asked so
    assert item["window"] == {"targetName": "_blank"}
    assert platform.items_of("basics")[0]["resourceLinkId"] == link
    # only the picker may be framed, and only by the LMS that asked for it
    anna = browser_of(tool)
    launch(anna, platform, "lms-anna-0001", link=link)
    for path in ("/", "/staff/lti"):
        answer = anna.get(path)
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        assert answer.headers["x-frame-options"] == "DENY", path


def test_a_user_the_roster_lacks_gets_a_clear_page_and_staff_see_the_claim_as_text(
    tool, platform, folder, caplog
):
    link = place(tool, platform)
    eve = browser_of(tool)
    with caplog.at_level(logging.WARNING, logger="grader.lti"):
        answer = launch(eve, platform, "lms-eve-6666", link=link)
    assert answer.status_code == 403 and "This course does not have you" in answer.text
    assert eve.get("/api/me").status_code == 401  # signed in as nobody
    assert any("does not have" in r.getMessage() for r in caplog.records)
    anna = browser_of(tool)
    launch(anna, platform, "lms-anna-0001", link=link)
    page = anna.get("/staff/lti")
    assert page.status_code == 200
    assert "email &#39;eve@elsewhere.example&#39;: no student of the roster has it" in page.text
    assert "<img src=x" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "\x1b" not in page.text and "\u202e" not in page.text
    # a student has no such page
    amy = browser_of(tool)
    launch(amy, platform, "lms-amy-7f3a", link=link)
    assert amy.get("/staff/lti").status_code == 404


@pytest.mark.parametrize(
    ("roles", "role"),
    [
        (["Learner"], "student"),  # the simple names LTI 1.3 lets a platform send
        (["Instructor"], "staff"),
        ([LIS_ROLES + "membership/Instructor#TeachingAssistant"], "staff"),
        (["TeachingAssistant"], "staff"),
        ([LIS_ROLES + "membership#Administrator"], "staff"),
        ([LIS_ROLES + "membership#Mentor"], None),
        # a content developer (Canvas's "Designer") is not staff: a Learner who is one too
        # is a student
        ([LEARNER, LIS_ROLES + "membership#ContentDeveloper"], "student"),
        (["Learner", "ContentDeveloper"], "student"),
    ],
)
def test_roles_by_their_full_or_simple_names(tool, platform, roles, role):
    link = place(tool, platform)
    who = "lms-anna-0001" if role == "staff" else "lms-amy-7f3a"
    platform.users[who].roles = roles
    client = browser_of(tool)
    answer = launch(client, platform, who, link=link)
    if role is None:
        assert answer.status_code == 403, answer.text
        assert client.get("/api/me").status_code == 401
    else:
        assert answer.status_code == 303, answer.text
        assert me(client)["role"] == role


def test_staff_not_named_in_course_toml_are_not_let_in(tool, platform):
    link = place(tool, platform)
    platform.users["lms-zed-1"] = User("lms-zed-1", "Zed", [INSTRUCTOR], "zed@uni.example",
                                       None, "zed")  # fmt: skip
    zed = browser_of(tool)
    answer = launch(zed, platform, "lms-zed-1", link=link)
    assert answer.status_code == 403 and "staff list does not name you" in answer.text
    assert zed.get("/api/me").status_code == 401


def test_staff_are_known_by_lms_user_name_or_whole_email_never_an_emails_first_part(tool, platform):
    """Any instructor of any LMS course under the deployment may choose an email: anna@
    anywhere is not course.toml's anna."""
    link = place(tool, platform)
    platform.users["lms-mal-1"] = User("lms-mal-1", "Mallory", [INSTRUCTOR],
                                       "anna@attacker.example", None, None)  # fmt: skip
    mallory = browser_of(tool)
    answer = launch(mallory, platform, "lms-mal-1", link=link)
    assert answer.status_code == 403 and "staff list does not name you" in answer.text
    assert mallory.get("/api/me").status_code == 401
    # course.toml's staff "tara@uni.example": named by her whole email (and no LMS user name)
    platform.users["lms-tara-1"] = User("lms-tara-1", "Tara", [INSTRUCTOR], "tara@uni.example",
                                        None, None)  # fmt: skip
    tara = browser_of(tool)
    assert launch(tara, platform, "lms-tara-1", link=link).status_code == 303
    assert me(tara)["role"] == "staff" and me(tara)["name"] == "tara@uni.example"


class Redirecting:
    """A service on loopback that answers every request with a redirect to another origin
    (localhost, another name of the same machine), and notes each request and its token."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen: list[tuple[str, str, str | None]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                seen.append((self.command, self.path, self.headers.get("authorization")))
                self.send_response(307)
                port = self.server.server_address[1]
                self.send_header("Location", f"http://localhost:{port}/landed{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_service_that_redirects_is_not_followed_with_the_token(tool, platform, folder):
    """The token and the score go to the address the LMS gave, never where a redirect points."""
    elsewhere = Redirecting()
    try:
        amy = browser_of(tool)
        fields = begin(amy, platform, "lms-amy-7f3a")
        claims = claims_for(platform, fields["nonce"], **{
            CONTEXT: {"id": "course-redirecting"},
            "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint": {
                "lineitems": f"{elsewhere.url}/li", "lineitem": f"{elsewhere.url}/li/1",
                "scope": [services.SCORE, services.LINEITEM]},
        })  # fmt: skip
        answer = amy.post("/lti/launch", data={"id_token": platform.sign(claims),
                                                "state": fields["state"]})  # fmt: skip
        assert answer.status_code == 303, answer.text
        record(folder, "amy", "basics", ALL_PASS)
        pushed = feed_and_push(folder)
        asked = [path for _, path, _ in elsewhere.seen]
        assert "/li/1/scores" in asked, asked  # the LMS's address was asked, with its token
        assert not [p for p in asked if p.startswith("/landed")], asked  # the redirect was not
        assert pushed.sent == 0 and pushed.refused >= 1, pushed
    finally:
        elsewhere.server.shutdown()
        elsewhere.server.server_close()


# -- hostile launches: refused, nothing recorded, a page that says so, a log line ------------------


def claims_for(platform: Platform, nonce: str, **over: Any) -> dict[str, Any]:
    moment = int(time.time())
    found = {
        "iss": platform.issuer, "aud": platform.client_id, "azp": platform.client_id,
        "sub": "lms-amy-7f3a", "email": "amy@uni.example", "iat": moment, "exp": moment + 300,
        "nonce": nonce, MESSAGE_TYPE: "LtiResourceLinkRequest", VERSION: "1.3.0",
        DEPLOYMENT: platform.deployment_id, ROLES: [LEARNER], RESOURCE_LINK: {"id": "link-1"},
        CUSTOM: {"lab": "basics"}, CONTEXT: {"id": "course-1"},
    }  # fmt: skip
    found.update(over)
    return {k: v for k, v in found.items() if v is not None}


def _public_pem(platform: Platform) -> bytes:
    from tests.lti_platform import public_pem

    return public_pem(platform.private).encode()


def _other_key() -> str:
    from tests.lti_platform import private_pem

    return private_pem()


#: Each hostile id_token: made from the platform, the nonce and the state the tool asked for
FORGED: dict[str, Callable[[Platform, str], str]] = {
    "alg none": lambda p, n: jwt.encode(
        claims_for(p, n),
        None,
        algorithm="none",
        headers={"kid": p.config().get_registration().get_kid()},
    ),
    "HS256 with the public key": lambda p, n: _hs256(
        claims_for(p, n), _public_pem(p), p.config().get_registration().get_kid()
    ),
    "an unknown key": lambda p, n: jwt.encode(
        claims_for(p, n), _other_key(), algorithm="RS256", headers={"kid": "no-such-kid"}
    ),
    "another platform's key": lambda p, n: jwt.encode(
        claims_for(p, n),
        _other_key(),
        algorithm="RS256",
        headers={"kid": p.config().get_registration().get_kid()},
    ),
    "expired": lambda p, n: p.sign(
        claims_for(p, n, iat=int(time.time()) - 3600, exp=int(time.time()) - 600)
    ),
    "issued in the future": lambda p, n: p.sign(
        claims_for(p, n, iat=int(time.time()) + 3600, exp=int(time.time()) + 4000)
    ),
    "the wrong audience": lambda p, n: p.sign(claims_for(p, n, aud="another-tool", azp=None)),
    "the wrong azp": lambda p, n: p.sign(claims_for(p, n, aud=[p.client_id, "x"], azp="x")),
    "the wrong deployment": lambda p, n: p.sign(claims_for(p, n, **{DEPLOYMENT: "deployment-8"})),
    "another nonce": lambda p, n: p.sign(claims_for(p, n + "x")),
    "a Learner claiming staff by a custom parameter": lambda p, n: p.sign(
        claims_for(p, n, **{CUSTOM: {"lab": "basics", "role": "Instructor"}})
    ),
    "a lab not in the course": lambda p, n: p.sign(claims_for(p, n, **{CUSTOM: {"lab": "lab99"}})),
    "a student's deep linking request": lambda p, n: p.sign(
        claims_for(
            p,
            n,
            **{
                MESSAGE_TYPE: "LtiDeepLinkingRequest",
                DEEP_LINKING: {"deep_link_return_url": f"{p.url}/deep-link-return"},
            },
        )
    ),
    "a deep link return address that is no address": lambda p, n: p.sign(
        claims_for(
            p,
            n,
            sub="lms-anna-0001",
            **{
                ROLES: [INSTRUCTOR],
                MESSAGE_TYPE: "LtiDeepLinkingRequest",
                DEEP_LINKING: {"deep_link_return_url": "https://lms.example; script-src *"},
            },
        )
    ),
    "another LTI version": lambda p, n: p.sign(claims_for(p, n, **{VERSION: "1.1"})),
    "no sub": lambda p, n: p.sign(claims_for(p, n, sub=None)),
}


def _hs256(claims: dict[str, Any], key: bytes, kid: str) -> str:
    """HS256 keyed with the public key's PEM: PyJWT itself refuses to make one, so it is made
    from its parts here (the attack a tool that trusts ``alg`` falls to)."""
    import base64
    import hashlib
    import hmac

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = part(json.dumps(claims).encode())
    signed = part(hmac.new(key, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + signed).decode()


@pytest.mark.parametrize("kind", list(FORGED))
def test_a_hostile_launch_is_refused_with_nothing_recorded(tool, platform, folder, caplog, kind):
    before = tables(folder)
    client = browser_of(tool)
    fields = begin(client, platform, "lms-amy-7f3a")
    forged = FORGED[kind](platform, fields["nonce"])
    with caplog.at_level(logging.WARNING, logger="grader.lti"):
        answer = client.post("/lti/launch", data={"id_token": forged, "state": fields["state"]})
    assert answer.status_code == 403, (kind, answer.text)
    assert "This launch from the LMS was refused" in answer.text
    assert client.get("/api/me").status_code == 401
    assert any("LTI launch refused" in r.getMessage() for r in caplog.records), kind
    assert tables(folder) == before, kind
    # the genuine launch still works with the state (not used up by a refusal)
    genuine = client.post("/lti/launch", data={"id_token": fields["id_token"],
                                               "state": fields["state"]})  # fmt: skip
    assert genuine.status_code == 303, kind


def test_a_replayed_launch_state_or_nonce_is_refused(tool, platform, folder, caplog):
    client = browser_of(tool)
    fields = begin(client, platform, "lms-amy-7f3a")
    posted = {"id_token": fields["id_token"], "state": fields["state"]}
    assert client.post("/lti/launch", data=posted).status_code == 303
    before = tables(folder)
    replay = browser_of(tool)
    replay.cookies.set(
        state_cookie(fields["state"]), fields["state"], domain="127.0.0.1", path="/lti/"
    )
    with caplog.at_level(logging.WARNING, logger="grader.lti"):
        again = replay.post("/lti/launch", data=posted)  # the same state and nonce
        assert again.status_code == 403 and "used already" in again.text
        # the old id_token (its nonce) with a state of a new login
        fresh = begin(replay, platform, "lms-amy-7f3a")
        old_nonce = replay.post("/lti/launch", data={"id_token": fields["id_token"],
                                                     "state": fresh["state"]})  # fmt: skip
        assert old_nonce.status_code == 403
    assert replay.get("/api/me").status_code == 401
    assert tables(folder) == before
    assert sum("LTI launch refused" in r.getMessage() for r in caplog.records) == 2


def test_a_launch_posted_by_another_browser_than_began_it_is_refused(tool, platform, folder):
    started = browser_of(tool)
    fields = begin(started, platform, "lms-amy-7f3a")
    other = browser_of(tool)  # no state cookie: a login CSRF
    answer = other.post("/lti/launch", data={"id_token": fields["id_token"],
                                             "state": fields["state"]})  # fmt: skip
    assert answer.status_code == 403 and "did not come back to the browser" in answer.text
    assert other.get("/api/me").status_code == 401


def test_the_login_is_taken_by_post_as_by_get(tool, platform):
    client = browser_of(tool)
    answer = client.post(
        "/lti/login",
        data={
            "iss": platform.issuer,
            "login_hint": "lms-amy-7f3a",
            "target_link_uri": f"{BASE}/lti/launch",
        },
    )
    assert answer.status_code == 302
    sent = parse_qs(urlsplit(answer.headers["location"]).query)
    assert answer.headers["location"].startswith(f"{platform.url}/auth?")
    assert sent["redirect_uri"] == [f"{BASE}/lti/launch"] and sent["prompt"] == ["none"]
    assert sent["client_id"] == [platform.client_id] and len(sent["nonce"][0]) >= 32


def test_a_platform_that_rotates_its_key_is_followed_by_kid(tool, platform, monkeypatch):
    from tests.lti_platform import private_pem

    monkeypatch.setattr(launching, "REFETCH_AFTER", 0.0)
    monkeypatch.setattr(launching, "_clients", {})
    assert launch(browser_of(tool), platform, "lms-amy-7f3a").status_code == 303
    platform.private = private_pem()  # a new key, a new kid: the key set cached has it not
    assert launch(browser_of(tool), platform, "lms-amy-7f3a").status_code == 303


def test_a_login_for_an_unknown_platform_or_deployment_is_refused(tool, platform):
    client = browser_of(tool)
    for params in ({"iss": "https://evil.example", "login_hint": "x"},
                   {"iss": platform.issuer, "login_hint": "x", "lti_deployment_id": "nope"},
                   {"iss": platform.issuer}):  # fmt: skip
        answer = client.get("/lti/login", params=params)
        assert answer.status_code == 400, params
        assert "location" not in answer.headers


# -- marks to the LMS -----------------------------------------------------------------------------


def scored(platform: Platform, lab: str = "basics") -> list[dict[str, Any]]:
    return platform.scores_of(lab)


def test_a_grading_reaches_the_line_item_and_an_override_posts_the_new_score(
    tool, platform, folder
):
    link = place(tool, platform)
    amy = browser_of(tool)
    launch(amy, platform, "lms-amy-7f3a", link=link)
    record(folder, "amy", "basics", {**ALL_PASS, "hostname_file": ("fail", "no /etc/hostname")})
    assert feed_and_push(folder).sent == 1
    [first] = scored(platform)
    assert first["userId"] == "lms-amy-7f3a"
    assert (first["scoreGiven"], first["scoreMaximum"]) == (2, 4)
    assert first["gradingProgress"] == "FullyGraded" and first["activityProgress"] == "Completed"
    assert "hostname_file (0 of 1)" in first["comment"] and "grader_only" not in first["comment"]
    assert first["timestamp"].startswith("2026-11-30T10:00:00")
    # nothing changed: nothing sent again
    assert feed_and_push(folder).sent == 0 and len(scored(platform)) == 1
    # an override posts the new score, with a later time
    assert main(["book", "override", "amy", "basics", "--mark", "3.5", "--reason", "fair",
                 "--course", str(folder)]) == 0  # fmt: skip
    assert feed_and_push(folder).sent == 1
    second = scored(platform)[-1]
    assert second["scoreGiven"] == 3.5 and second["timestamp"] > first["timestamp"]
    assert len(platform.items_of("basics")) == 1  # the deep link's line item, found by the launch
    # the student's page says when the mark last reached the LMS
    assert (
        "Your mark last reached the LMS 2026-11-30T10:00:00Z (3.5)" in amy.get("/labs/basics").text
    )


def test_a_drop_and_a_withdrawn_override_post_the_mark_they_leave(tool, platform, folder):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    record(folder, "amy", "basics", {**ALL_PASS, "sshd_runs": ("fail", "not running")})
    best = record(folder, "amy", "basics", ALL_PASS, when=START + timedelta(hours=1))
    feed_and_push(folder)
    assert scored(platform)[-1]["scoreGiven"] == 3
    assert main(["book", "drop", str(best), "--reason", "not amy's VM",
                 "--course", str(folder)]) == 0  # fmt: skip
    feed_and_push(folder)
    assert scored(platform)[-1]["scoreGiven"] == 1
    assert main(["book", "override", "amy", "basics", "--mark", "4", "--reason", "r",
                 "--course", str(folder)]) == 0  # fmt: skip
    feed_and_push(folder)
    assert main(["book", "withdraw", "amy", "basics", "--reason", "too kind",
                 "--course", str(folder)]) == 0  # fmt: skip
    feed_and_push(folder)
    assert [s["scoreGiven"] for s in scored(platform)] == [3, 1, 4, 1]
    stamps = [s["timestamp"] for s in scored(platform)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4  # each later than the one before


def test_an_incomplete_mark_arrives_as_pending(tool, platform, folder):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    record(folder, "amy", "basics", {**ALL_PASS, "sshd_runs": ("error", "timed out")})
    feed_and_push(folder)
    [score] = scored(platform)
    assert score["gradingProgress"] == "Pending" and score["scoreGiven"] == 1
    assert "Not checked yet (graded again): sshd_runs" in score["comment"]


def test_an_on_release_lab_posts_nothing_until_released(tool, platform, folder):
    place(tool, platform, "held")
    link = list(platform.links)[-1]
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    record(folder, "amy", "held", ALL_PASS)
    feed_and_push(folder)
    assert scored(platform, "held") == []
    assert main(["book", "release", "held", "--course", str(folder)]) == 0
    feed_and_push(folder)
    assert [s["scoreGiven"] for s in scored(platform, "held")] == [3]


def test_the_lms_down_while_a_mark_changes_gets_the_score_once_it_is_up(
    tool, platform, folder, monkeypatch
):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    platform.stop()
    record(folder, "amy", "basics", ALL_PASS)
    for _ in range(3):  # tried, with a growing wait: nothing lost, nothing sent twice
        pushed = feed_and_push(folder)
        assert pushed.sent == 0
        at(START + timedelta(hours=1 + _), monkeypatch)
    assert main(["book", "sync", "--no-read-back", "--course", str(folder)]) == 0
    platform.start()
    at(START + timedelta(hours=6), monkeypatch)  # past the wait after the last try
    assert feed_and_push(folder).sent == 1
    assert feed_and_push(folder).sent == 0
    assert [s["scoreGiven"] for s in scored(platform)] == [3]


def test_the_server_sends_marks_by_itself_even_with_no_graders(platform, folder):
    """grade serve --graders 0 (gradings by grade worker elsewhere) still sends the marks:
    its outbox runs in the server's background process, beside the graders when it has any."""
    with served(folder, lms_every=0.3) as (app, _):
        link = place(app, platform)
        launch(browser_of(app), platform, "lms-amy-7f3a", link=link)
        record(folder, "amy", "basics", ALL_PASS)
        deadline = time.monotonic() + 60
        while not scored(platform) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert [s["scoreGiven"] for s in scored(platform)] == [3]


def test_a_token_address_that_answers_503_is_tried_again_not_taken_for_a_refusal(
    tool, platform, folder, monkeypatch
):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    services.forget_tokens()
    platform.quirks.token_unavailable = True
    record(folder, "amy", "basics", ALL_PASS)
    pushed = feed_and_push(folder)
    assert (pushed.sent, pushed.refused, pushed.waiting) == (0, 0, 1)
    platform.quirks.token_unavailable = False
    at(START + timedelta(hours=1), monkeypatch)  # past the wait
    assert feed_and_push(folder).sent == 1
    assert [s["scoreGiven"] for s in scored(platform)] == [3]


def test_line_items_are_bound_once_when_the_lms_ignores_the_deep_links_and_makes_one_per_ask(
    tool, platform, folder
):
    platform.quirks.ignore_deep_link_lineitem = True
    link = place(tool, platform)
    assert platform.items_of("basics") == []
    for student, sub in (("amy", "lms-amy-7f3a"), ("ben", "lms-ben-91c2")):
        platform.users[sub].email = f"{student}@uni.example"
        launch(browser_of(tool), platform, sub, link=link)
        record(folder, student, "basics", ALL_PASS)
    feed_and_push(folder)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)  # relaunched
    assert main(["book", "override", "amy", "basics", "--mark", "2", "--reason", "r",
                 "--course", str(folder)]) == 0  # fmt: skip
    feed_and_push(folder)
    assert main(["book", "sync", "--course", str(folder)]) == 0
    assert platform.lineitem_posts == 1 and len(platform.items_of("basics")) == 1
    assert sorted(s["userId"] for s in scored(platform)) == [
        "lms-amy-7f3a",
        "lms-amy-7f3a",
        "lms-ben-91c2",
    ]


def test_a_token_the_lms_calls_expired_is_replaced_once(tool, platform, folder):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    record(folder, "amy", "basics", ALL_PASS)
    assert feed_and_push(folder).sent == 1
    platform.quirks.expired_before = int(time.time()) + 1  # the cached token: expired, it says
    time.sleep(platform.quirks.expired_before - time.time() + 0.05)
    assert main(["book", "override", "amy", "basics", "--mark", "1", "--reason", "r",
                 "--course", str(folder)]) == 0  # fmt: skip
    issued = platform.tokens_issued
    assert feed_and_push(folder).sent == 1  # a 401 on the cached token, then a new token
    assert platform.unauthorized >= 1 and platform.tokens_issued == issued + 1
    assert [s["scoreGiven"] for s in scored(platform)] == [3, 1]


def test_a_score_the_lms_refuses_is_shown_to_staff_with_its_answer(tool, platform, folder, capsys):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    platform.quirks.refuse_scores_of = {"lms-amy-7f3a"}
    record(folder, "amy", "basics", ALL_PASS)
    assert feed_and_push(folder).refused == 1
    anna = browser_of(tool)
    launch(anna, platform, "lms-anna-0001", link=link)
    page = anna.get("/staff/lti").text
    assert "this user is not in the course" in page and "HTTP 400" in page
    capsys.readouterr()
    assert main(["book", "sync", "--no-read-back", "--course", str(folder)]) == 3
    assert "refused: amy basics 3: HTTP 400" in capsys.readouterr().out


def test_a_refused_score_is_sent_again_by_sync_resend_and_a_newer_mark_ends_the_refusal(
    tool, platform, folder, capsys
):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    platform.quirks.refuse_scores_of = {"lms-amy-7f3a"}
    record(folder, "amy", "basics", ALL_PASS)
    assert feed_and_push(folder).refused == 1
    platform.quirks.refuse_scores_of = set()  # staff put it right in the LMS
    assert main(["book", "sync", "--no-read-back", "--course", str(folder)]) == 3  # as it was
    capsys.readouterr()
    assert main(["book", "sync", "--resend", "--no-read-back", "--course", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "refused:" not in out and "1 sent" in out, out
    assert [s["scoreGiven"] for s in scored(platform)] == [3]
    # refused again, then the mark changes and the new one is taken: the refusal is over
    platform.quirks.refuse_scores_of = {"lms-amy-7f3a"}
    assert main(["book", "override", "amy", "basics", "--mark", "2", "--reason", "r",
                 "--course", str(folder)]) == 0  # fmt: skip
    assert feed_and_push(folder).refused == 1
    platform.quirks.refuse_scores_of = set()
    assert main(["book", "override", "amy", "basics", "--mark", "2.5", "--reason", "r",
                 "--course", str(folder)]) == 0  # fmt: skip
    assert feed_and_push(folder).sent == 1
    capsys.readouterr()
    assert main(["book", "sync", "--no-read-back", "--course", str(folder)]) == 0
    assert "refused:" not in capsys.readouterr().out
    assert [s["scoreGiven"] for s in scored(platform)] == [3, 2.5]


def test_a_grading_committed_after_a_later_one_was_seen_still_reaches_the_lms(
    tool, platform, folder
):
    """On PostgreSQL two graders (the web's two loops, or grade worker) record their runs at
    once: the run given the lower id may commit after the outbox has looked at the higher one.
    Here that order is played on SQLite: amy's run is moved below the run the outbox saw."""
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    record(folder, "cat", "basics", ALL_PASS)  # run 1: seen by the outbox
    feed_and_push(folder)
    late = record(folder, "amy", "basics", ALL_PASS, when=START + timedelta(minutes=5))
    book = book_of(folder)
    try:
        with book.engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
            connection.execute(sa.text("UPDATE reports SET run_id = 0 WHERE run_id = :r"),
                               {"r": late})  # fmt: skip
            connection.execute(sa.text("UPDATE runs SET id = 0 WHERE id = :r"), {"r": late})
    finally:
        book.close()
    assert feed_and_push(folder).sent == 1
    assert [(s["userId"], s["scoreGiven"]) for s in scored(platform)] == [("lms-amy-7f3a", 3)]


def test_sync_reads_the_results_back_and_sends_what_the_lms_lost(tool, platform, folder, capsys):
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    record(folder, "amy", "basics", ALL_PASS)
    # cat never opened the lab from the LMS: her mark waits, and says why
    record(folder, "cat", "basics", ALL_PASS)
    feed_and_push(folder)
    for each in platform.scores.values():
        each.clear()  # the LMS lost them
    capsys.readouterr()
    assert main(["book", "sync", "--course", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "the LMS had lost amy basics (3): sent again" in out
    assert "waiting: cat basics 3" in out and "first launch from the LMS" in out
    assert [s["scoreGiven"] for s in scored(platform)] == [3]


def test_members_from_the_lms_beside_the_roster(tool, platform, folder, capsys):
    platform.quirks.nrps_ids_differ = True
    link = place(tool, platform)
    launch(browser_of(tool), platform, "lms-amy-7f3a", link=link)
    platform.users["lms-eve-6666"].roles = ["Learner"]  # a role's simple name, as LTI allows
    capsys.readouterr()
    assert main(["course", "members", "--from-lms", "--course", str(folder)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"amy +Amy Adams <amy@uni\.example> \[learner, LMS id 1001\]  \(its LMS id "
        r"1001 differs from the one their launch gave \(lms-amy-7f3a\)",
        out,
    ), out
    assert re.search(r"- +Eve .* \[learner, .*\(not on the roster \(email "
                     r"'eve@elsewhere\.example'\)\)", out), out  # fmt: skip
    assert re.search(r"- +Anna Staff <anna@uni\.example> \[staff, LMS id", out), out
    # no email: ben is found by his SIS id, and the LMS's lack of an email is said
    assert re.search(
        r"ben +Ben Baker <> \[learner, LMS id lms-ben-91c2\]  \(the LMS gives no "
        r"email\)",
        out,
    ), out
    assert "on the roster, not in the LMS course: cat" in out
    assert "\x1b" not in out
    assert main(["course", "members", "--course", str(folder)]) == 2


@pytest.mark.parametrize("match", ["email", "sis_id"])
def test_a_student_with_no_email_is_matched_by_their_sis_id(tool, platform, folder, match):
    toml = folder / "course.toml"
    toml.write_text(toml.read_text().replace('match = "email"', f'match = "{match}"'))
    link = place(tool, platform)
    with served(folder, lms_every=0) as (app, _):
        ben = browser_of(app)
        answer = launch(ben, platform, "lms-ben-91c2", link=link)
        assert answer.status_code == 303
        assert me(ben)["student"] == "ben"
    book = book_of(folder)
    with book.engine.connect() as c:
        [how] = c.execute(sa.text("SELECT matched_by FROM lti_users")).scalars()
    book.close()
    assert how.startswith("sis_id (lis person_sourcedid") and how.endswith("= s200")
