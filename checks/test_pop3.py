"""Exercises 3.4-3.7: POP3 served through inetd."""

from grader.toolkit import compare_views, fail, listeners

from .support.inetd import INETD_NOT_RESTARTED, entries_for_port
from .support.mta import SENDMAIL_DOWN, waits_for_the_mta
from .support.remote import inetd_entries, services


def test_pop3_in_inetd(host, lab):
    """pop3 is enabled in inetd.conf.

    /etc/inetd.conf has an active pop3 entry.
    """
    entries = entries_for_port(inetd_entries(host, lab), services(host, lab), 110)
    if any(e.active for e in entries):
        return
    assert not entries, (
        f"the pop3 entry in {lab.paths.inetd_conf} is still commented out: "
        + "; ".join(e.where() for e in entries)
    )
    raise AssertionError(f"{lab.paths.inetd_conf} has no pop3 entry (port 110)")


def test_pop3_listening(host, lab, outside):
    """Port 110 listens on the VM.

    TCP port 110 is in LISTEN state on the VM.
    """
    compare_views(host, outside, 110)
    if listeners(host, 110):
        return
    enabled = entries_for_port(inetd_entries(host, lab), services(host, lab), 110, active=True)
    if enabled:
        fail(
            f"{lab.paths.inetd_conf} enables pop3 but nothing listens on 110: did you restart "
            "inetd?",
            cause=INETD_NOT_RESTARTED,
        )
    fail(
        f"nothing listens on TCP port 110 on the VM: {lab.paths.inetd_conf} does not enable pop3",
        cause="pop3_in_inetd",
    )


def test_pop3_greets(host, outside):
    """Port 110 answers +OK from outside.

    From outside the VM, port 110 answers +OK.
    """
    greeting = outside.pop3_greeting(110)
    if greeting.ok:
        return
    message = f"port 110 did not answer +OK: {greeting.text}"
    # nothing there to answer: what pop3_listening says is the thing to fix
    fail(message, cause=None if listeners(host, 110) else "pop3_listening")


def test_pop3_login(host, lab, outside):
    """bob can log in over POP3 and has mail.

    From outside, bob logs in over POP3 and finds mail (USER, PASS, STAT; nothing deleted).
    """
    user, password = lab.var("mail_user"), lab.var("bob_password")
    login = outside.pop3_login(user, password, 110)
    assert login.ok, f"POP3 login as {user} did not work: {login.text}"
    if not login.messages:
        message = f"{user} logged in over POP3, but the mailbox is empty"
        if waits_for_the_mta(host, lab):
            fail(
                f"{message} (mail waits in the queue: sendmail is not running)", cause=SENDMAIL_DOWN
            )
        fail(message)
