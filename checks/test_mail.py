"""Exercises 1-3: sending mail with mail(1), reading it, and talking SMTP by hand."""

from grader.toolkit import fail, output

from .support.mbox import Message, normalise
from .support.mta import SENDMAIL_DOWN, waits_for_the_mta
from .support.remote import mailbox, other_spools

HELLO_SUBJECT = "hello world"
HELLO_BODY = "welcome to computer systems"


def _is_hello(message: Message) -> bool:
    return normalise(message.subject) == HELLO_SUBJECT and HELLO_BODY in normalise(message.body)


def _missing(host, lab, message: str) -> None:
    """Fails with ``message``: because sendmail is not running, when mail waits for it."""
    if waits_for_the_mta(host, lab):
        fail(f"{message} (mail waits in the queue: sendmail is not running)", cause=SENDMAIL_DOWN)
    fail(message)


def test_mail_hello_world(host, lab):
    """bob got the "Hello world" message.

    bob received the "Hello world" message of Exercise 1.2.
    """
    box = mailbox(host, lab, lab.var("mail_user"))
    if any(_is_hello(m) for m in box.messages):
        return
    titled = [m for m in box.messages if normalise(m.subject) == HELLO_SUBJECT]
    assert not titled, (
        f"{titled[0].describe()} arrived, but its body does not contain "
        f"'Welcome to Computer Systems'"
    )
    box.decide("a 'Hello world' message")
    _missing(host, lab, f"no 'Hello world' message for bob: {box.describe()}")


def test_mail_from_file(host, lab):
    """bob got a message sent from a file.

    bob received another message sent on the VM with mail -s (Exercise 1.1).
    """
    box = mailbox(host, lab, lab.var("mail_user"))
    sent = [m for m in box.messages if m.locally_submitted and m.subject and not _is_hello(m)]
    if not sent:
        box.decide("a message sent on the VM with mail -s")
        _missing(
            host,
            lab,
            "no message sent on the VM with `mail -s subject bob < file` besides "
            f"'Hello world': {box.describe()}",
        )


def test_mail_bcc_root(host, lab):
    """root got the blind copy.

    root received the blind copy (-b root) of the "Hello world" message.
    """
    box = mailbox(host, lab, "root")
    if not any(_is_hello(m) for m in box.messages):
        box.decide("the blind copy of 'Hello world'")
        _missing(
            host,
            lab,
            f"root has no copy of 'Hello world' (sent with -b root@...): {box.describe()}",
        )


def test_mail_smtp_by_hand(host, lab):
    """bob got a message typed in an SMTP session.

    bob received a message from root typed in an SMTP conversation (Exercise 3.3).
    """
    box = mailbox(host, lab, lab.var("mail_user"))
    by_smtp = [m for m in box.messages if m.arrived_by_smtp and not m.locally_submitted]
    from_root = [m for m in by_smtp if m.sender_user == "root"]
    if from_root:
        return
    box.decide("a message from root typed in SMTP")
    assert not by_smtp, (
        f"{by_smtp[0].describe()} arrived over SMTP, but its sender is "
        f"{by_smtp[0].sender_user!r}, not root"
    )
    _missing(
        host,
        lab,
        "no message for bob arrived in an SMTP conversation (MAIL FROM root, "
        f"RCPT TO bob, DATA); messages sent with mail(1) do not count: {box.describe()}",
    )


def test_mailbox_permissions(host, lab):
    """Mailboxes are private.

    No mailbox in the mail spool can be read or written by other users.
    """
    spools = [lab.paths.mail_spool, *other_spools(lab)]
    for spool in spools:  # the first that holds a mailbox (the others: see mailbox())
        # NUL-separated: a file name may hold spaces, quotes or newlines
        found = output(
            host,
            "test -d %s && find -H %s -maxdepth 1 -type f -printf '%%m %%u %%f\\0' || true",
            spool,
            spool,
        ).split("\0")
        boxes = [entry.split(" ", 2) for entry in found if entry.count(" ") >= 2]
        if boxes:
            break
    if not boxes:  # nothing kept private yet is no mark earned
        _missing(host, lab, f"no mailbox in {' or '.join(spools)} yet: no mail was delivered")
    # anyone else may read or write: the mode's last digit has 4 or 2 in it
    exposed = [(mode, owner, name) for mode, owner, name in boxes if mode[-1:] in set("234567")]
    assert not exposed, (
        "mailboxes other users can open: "
        + "; ".join(f"{name!r} (owner {owner}, mode {mode})" for mode, owner, name in exposed[:10])
        + f" in {spool} (chmod o-rw)"
    )
