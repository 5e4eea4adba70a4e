"""What a student is told to fix first, and hints in the terms of the student's own system:
causes shared by several checks, hints per cause and per system (no VM needed)."""

from __future__ import annotations

import ast
import re
import tomllib

import pytest

from grader.base.errors import InputError
from grader.base.results import Outcome, Report, RubricRef
from grader.engine.catalog import built_in_rubric
from grader.engine.rubric import load_rubric
from grader.engine.scoring import score
from grader.machine.system import parse
from grader.report.feedback import fix_first
from grader.report.render import render

RUBRIC = load_rubric(built_in_rubric())


def report(system: tuple[str, ...] = (), **given: Outcome) -> Report:
    outcomes = {item.id: given.get(item.id, Outcome("pass")) for item in RUBRIC.items}
    checks, total = score(RUBRIC, outcomes, system)
    return Report(
        host="vm", student=None, status="graded", error=None, error_kind=None, score=total,
        max_score=RUBRIC.max_score, graded_at="2026-11-28T00:00:00Z", duration_s=1.0,
        rubric=RubricRef(RUBRIC.title, RUBRIC.sha256), host_key=None, address=None,
        checks=checks, system_ids=system,
    )  # fmt: skip


def down(message: str = "sendmail is not running") -> Outcome:
    return Outcome("fail", message, cause="sendmail_down")


SENDMAIL_DOWN = dict(
    smtp_daemon=down(), smtp_listening=down(), smtp_greets=down(), queue_empty=down()
)


def test_one_cause_is_named_once_first_with_its_hint_and_the_losses_point_to_it():
    graded = report(**SENDMAIL_DOWN, telnet_enabled=Outcome("fail", "no telnet entry"))
    (cause,) = fix_first(graded)
    assert cause.id == "sendmail_down" and cause.title == "sendmail's daemon is not running"
    assert [c.id for c in cause.checks] == [
        "smtp_daemon", "smtp_listening", "smtp_greets", "queue_empty"
    ]  # fmt: skip
    assert cause.points == 3.5 and "/etc/rc.d/rc.sendmail start" in cause.hint
    text = render("text", graded, width=200)
    assert text.count("/etc/rc.d/rc.sendmail start") == 1  # the hint, said once
    assert text.index("Fix this first") < text.index("Where the marks were lost")
    assert text.count("See 'Fix this first' 1 above.") == 4
    assert "Hint: Exercise 4.1: uncomment the telnet line" in text  # a loss of its own


def test_the_hint_fits_the_reason_not_only_the_check():
    # smtp_greets failed because sendmail is down: not the Addr=127.0.0.1 hint
    greets = {c.id: c for c in report(**SENDMAIL_DOWN).checks}["smtp_greets"]
    assert "rc.sendmail start" in greets.hint and "Addr" not in greets.hint
    alone = report(smtp_greets=Outcome("fail", "sendmail listens only on 127.0.0.1"))
    assert "Addr=127.0.0.1" in {c.id: c for c in alone.checks}["smtp_greets"].hint


def test_an_item_as_cause_and_a_lost_dependency_lead_back_to_what_to_fix():
    graded = report(
        pop3_in_inetd=Outcome("fail", "the pop3 entry is still commented out"),
        pop3_listening=Outcome("fail", "nothing listens on 110", cause="pop3_in_inetd"),
        pop3_greets=Outcome("fail", "connection refused", cause="pop3_listening"),
        pop3_login=Outcome("skipped", "not checked", error_kind="dependency", cause="pop3_greets"),
    )
    (cause,) = fix_first(graded)
    # said as what is wrong (the check's finding), not as the item's goal read as a fact
    assert cause.id == "pop3_in_inetd" and cause.title == "the pop3 entry is still commented out"
    assert [c.id for c in cause.checks] == [
        "pop3_in_inetd", "pop3_listening", "pop3_greets", "pop3_login"
    ]  # fmt: skip
    assert cause.points == 4


def test_a_cause_that_passed_or_is_unknown_is_no_cause():
    graded = report(
        pop3_listening=Outcome("fail", "x", cause="pop3_in_inetd"),  # pop3_in_inetd passed
        time_disabled=Outcome("fail", "y", cause="no_such_cause"),
    )
    assert fix_first(graded) == []
    checks = {c.id: c for c in graded.checks}
    assert checks["pop3_listening"].cause is None and checks["time_disabled"].cause is None
    assert "Hint: " in render("text", graded)


def test_hints_follow_the_system_the_vm_says_it_is():
    debian = {c.id: c for c in report(("ubuntu", "debian"), **SENDMAIL_DOWN).checks}
    slackware = {c.id: c for c in report(("slackware",), **SENDMAIL_DOWN).checks}
    unknown = {c.id: c for c in report((), **SENDMAIL_DOWN).checks}
    assert "service sendmail start" in debian["smtp_daemon"].hint
    assert "/etc/rc.d/rc.sendmail" in slackware["smtp_daemon"].hint
    assert unknown["smtp_daemon"].hint == slackware["smtp_daemon"].hint  # the handout's


@pytest.mark.parametrize(
    ("text", "ids", "name"),
    [
        ('PRETTY_NAME="Slackware 15.0"\nID=slackware\n', ("slackware",), "Slackware 15.0"),
        ("SLACKWARE=Slackware 15.0\n", ("slackware",), "Slackware 15.0"),
        ("ID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=Ubuntu\n", ("ubuntu", "debian"), "Ubuntu"),
        ("ID=\x1b[31mevil\nID_LIKE=debian $(reboot)\n", ("debian",), None),
        ("", (), None),
    ],
)  # fmt: skip
def test_the_system_is_read_from_os_release_as_words_only(text, ids, name):
    found = parse(text)
    assert (found.ids, found.name) == (ids, name)


def test_a_cause_may_not_share_an_item_id(tmp_path):
    text = built_in_rubric().read_text() + '\n[causes.smtp_daemon]\ntitle = "x"\n'
    (tmp_path / "checks").mkdir()
    with pytest.raises(InputError, match=r"rubric.toml:\d+: causes.smtp_daemon: an item has"):
        load_rubric(tmp_path / "rubric.toml", text)


#: Commands Slackware does not have (issue 15): only a Debian hint may name them
DEBIAN_ONLY = re.compile(
    r"\bservice [\w.-]+ (start|stop|restart|reload)\b|\b(systemctl|update-inetd|invoke-rc\.d)\b"
    r"|make -C /etc/mail"
)
DEBIAN_KEYS = {"debian", "ubuntu"}


def lab6_hints() -> list[tuple[str, str, str]]:
    data = tomllib.loads(built_in_rubric().read_text())
    found = []
    holders = [("causes." + k, v) for k, v in data.get("causes", {}).items()]
    holders += [(i["id"], i) for s in data["sections"] for i in s["items"]]
    for where, holder in holders:
        found.append((where, "hint", holder.get("hint", "")))
        found += [(where, f"hints.{k}", v) for k, v in holder.get("hints", {}).items()]
    return found


def lab6_messages() -> list[tuple[str, str]]:
    """Every string literal in Lab 6's checks: the messages a student reads."""
    checks = built_in_rubric().parent / "checks"
    found = []
    for path in sorted(checks.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((f"{path.name}:{node.lineno}", node.value))
    return found


def test_no_lab6_hint_or_message_names_a_command_slackware_does_not_have():
    hints = lab6_hints()
    assert len(hints) > 20
    wrong = [
        (where, key, text)
        for where, key, text in hints
        if DEBIAN_ONLY.search(text) and key.removeprefix("hints.") not in DEBIAN_KEYS
    ]
    assert not wrong
    assert any(DEBIAN_ONLY.search(text) for _, key, text in hints if key == "hints.debian")
    messages = [(where, text) for where, text in lab6_messages() if DEBIAN_ONLY.search(text)]
    assert not messages


def test_a_self_check_is_compared_with_the_last_one(tmp_path):
    from grader.selfcheck.last_run import History

    before = report(**SENDMAIL_DOWN)
    assert History(before, tmp_path).compare(before) is None  # the first: nothing to compare
    History(before, tmp_path).keep(before)
    after = report(smtp_greets=Outcome("fail", "sendmail listens only on 127.0.0.1"))
    lines = History(after, tmp_path).compare(after).lines()
    assert lines[1:3] == [
        "  fixed: smtp_daemon, smtp_listening, queue_empty",
        "  still lost: smtp_greets",
    ]
    assert "  Exercise 0: the SMTP service: 0.5 -> 3 of 4" in lines


def test_a_check_not_checked_is_never_a_drop_in_the_comparison(tmp_path):
    from grader.selfcheck.last_run import History

    busy = Outcome("error", "the SMTP server turned the grader away", error_kind="turned_away")
    before = report(smtp_greets=busy)  # not checked then
    History(before, tmp_path).keep(before)
    after = report(queue_empty=Outcome("error", "no answer", error_kind="timeout"))
    lines = History(after, tmp_path).compare(after).lines()
    assert "  checked now, and passed: smtp_greets" in lines
    assert "  not checked this time (not counted against you): queue_empty" in lines
    assert "  nothing changed" not in lines
    assert not any("->" in line for line in lines)  # no section lost or gained a point
