"""From the LMS and back, end to end: an LTI 1.3 platform this project did not write
(``lti1p3platform``, served on loopback by tests/lti_platform.py) registered with the course as
the README says, ``grade serve`` started as people start it, and a real headless chromium
(Debian's) driven through a member of staff's deep link placing a lab, and a student's launch
to the lab's page, "Grade my VM now" on a simulated VM, and each mark arriving in the
platform's line item: an incomplete one as Pending, the complete one, an override, and one made
while the platform was down, which arrives once it is up, once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from scenarios import SCENARIOS
from tests.lti_platform import INSTRUCTOR, LEARNER, Platform, User
from tests.test_e2e_course import grade
from tests.test_e2e_web import accessible, browser, make_course, serving  # noqa: F401

pytestmark = pytest.mark.vm

AMY = "lms-amy-2e9d"


def wait_for(what: Callable[[], Any], seconds: float, why: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = what()
        if found:
            return found
        assert time.monotonic() < deadline, why
        time.sleep(0.5)


def test_a_student_launches_from_the_lms_and_each_mark_reaches_its_line_item(
    fleet,
    tmp_path,
    browser,  # noqa: F811 (the fixture of tests/test_e2e_web.py)
    monkeypatch,
):
    vm = fleet.boot([("lti-amy", SCENARIOS["complete"])])["lti-amy"]
    # ps answers what no check can read: sshd_runs cannot be checked (the mark is incomplete)
    vm.sh("printf '#!/bin/sh\\necho not a process table\\n' > /usr/local/bin/ps && "
          "chmod 755 /usr/local/bin/ps")  # fmt: skip
    monkeypatch.delenv("GRADER_NOW", raising=False)
    platform = Platform("http://127.0.0.1:1")  # the tool's address, once it listens
    platform.users = {u.sub: u for u in (
        User(AMY, "Amy <i>Adams</i>", [LEARNER], "amy@uni.example", "s100", "amy"),
        User("lms-anna-1", "Anna Staff", [INSTRUCTOR], "anna@uni.example", None, "anna"),
    )}  # fmt: skip
    course = make_course(tmp_path, [("amy", vm.address, "Amy")])
    (course / "class.csv").write_text(f"student,host,name,email\namy,{vm.address},Amy,"
                                      "amy@uni.example\n")  # fmt: skip
    # registered as the README says: the [[lti]] table the LMS's values fill, then the key
    with (course / "course.toml").open("a") as toml:
        toml.write("\n" + platform.toml("email"))
    code, out, err = grade("serve", "lti-keys", "--course", str(course))
    assert code == 0, err
    try:
        with platform.running(), serving(course, fleet, tmp_path, "--graders", "1") as site:
            platform.tool_url = site
            code, out, err = grade("serve", "lti-config", "--lms", "moodle", "--public-url", site,
                                   "--course", str(course))  # fmt: skip
            assert f"{site}/lti/launch" in out and f"{site}/lti/jwks" in out
            # staff add the tool in the LMS course and place the lab
            staff = browser.new_context().new_page()
            staff.goto(f"{platform.url}/course?user=lms-anna-1")
            staff.get_by_role("link", name="Add the tool").click()
            # the LMS opens the tool's picker in a frame of its page, as Moodle and Canvas do
            picker = staff.frame_locator("iframe[title='The tool']")
            button = picker.get_by_role("button", name="Place basics: Lab 1: the basics")
            button.wait_for(timeout=30_000)
            accessible(staff.frame(url=f"{site}/lti/launch"))
            button.click()
            placed = picker.locator("h1")
            placed.filter(has_text="Placed").wait_for(timeout=30_000)
            assert "Placed: basics: Lab 1: the basics" in placed.inner_text()
            [item] = platform.items_of("basics")
            assert (item["scoreMaximum"], item["label"]) == (3.0, "basics: Lab 1: the basics")
            # the student opens the lab from the LMS course's page
            student = browser.new_context().new_page()
            problems: list[str] = []
            student.on("pageerror", lambda e: problems.append(str(e)))
            student.goto(f"{platform.url}/course?user={AMY}")
            student.get_by_role("link", name="basics: Lab 1: the basics").click()
            student.wait_for_url(f"{site}/labs/basics")
            accessible(student)
            assert "Your mark has not reached the LMS yet" in student.locator("p.lms").inner_text()
            student.get_by_role("button", name="Grade my VM now").click()
            student.wait_for_selector("text=Your mark for basics now", timeout=120_000)
            scores = wait_for(lambda: platform.scores_of("basics"), 60, "no score arrived")
            assert scores[0]["userId"] == AMY
            assert (scores[0]["scoreGiven"], scores[0]["gradingProgress"]) == (1, "Pending")
            assert "sshd_runs" in scores[0]["comment"]
            # the VM put right, graded again: the complete mark
            vm.sh("rm -f /usr/local/bin/ps")
            student.goto(f"{site}/labs/basics")
            student.get_by_role("button", name="Grade my VM now").click()
            student.wait_for_selector("text=Your mark for basics now: 3", timeout=120_000)
            last = wait_for(
                lambda: [
                    s for s in platform.scores_of("basics") if s["gradingProgress"] == "FullyGraded"
                ],
                60,
                "not graded",
            )
            assert last[-1]["scoreGiven"] == 3
            student.goto(f"{site}/labs/basics")
            assert "Your mark last reached the LMS" in student.locator("p.lms").inner_text()
            assert not problems, problems
            # an override, made on the command line while the server runs
            code, _, err = grade("book", "override", "amy", "basics", "--mark", "2.5",
                                 "--reason", "half of sshd: it ran after a restart",
                                 "--course", str(course))  # fmt: skip
            assert code == 0, err
            wait_for(lambda: platform.scores_of("basics")[-1]["scoreGiven"] == 2.5, 60,
                     "the override did not arrive")  # fmt: skip
            # the LMS down while a mark changes, then up: the score arrives, once
            platform.stop()
            code, _, err = grade(
                "book",
                "override",
                "amy",
                "basics",
                "--mark",
                "2",
                "--reason",
                "on second thought",
                "--course",
                str(course),
            )
            assert code == 0, err
            time.sleep(8)  # the server tries, and waits to try again
            platform.start()
            wait_for(lambda: platform.scores_of("basics")[-1]["scoreGiven"] == 2, 120,
                     "the score made while the LMS was down did not arrive")  # fmt: skip
            time.sleep(12)  # two more looks of the outbox: nothing is sent twice
            given = [s["scoreGiven"] for s in platform.scores_of("basics")]
            assert given == [1, 3, 2.5, 2], given
            assert len(platform.items_of("basics")) == 1 and platform.lineitem_posts == 0
            # read back: the LMS holds what the book says
            code, out, err = grade("book", "sync", "--course", str(course))
            assert code == 0, err + out
            assert "0 mark(s) queued" in out and "lost" not in out and "holds" not in out
    finally:
        vm.sh("rm -f /usr/local/bin/ps")
