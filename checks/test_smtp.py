"""Exercise 0: SMTP is provided by sendmail's own daemon, not by inetd."""

from grader.toolkit import (
    Busy,
    TurnedAway,
    compare_views,
    fail,
    is_loopback,
    listeners,
    processes,
)

from .support.inetd import entries_for_port
from .support.mta import (
    CLIENT_QUEUES,
    SENDMAIL_DOWN,
    SUPER_SERVERS,
    is_mta,
    mta_processes,
    queued,
    why_loopback_only,
)
from .support.remote import inetd_entries, services


def test_smtp_daemon(host):
    """sendmail runs as its own daemon.

    A mail transfer agent (sendmail; postfix or exim also accepted) runs as its own daemon.
    """
    table = processes(host)
    mtas = [p for p in table.values() if is_mta(p)]
    if not mtas:
        fail("no sendmail (or postfix, exim) daemon is running", cause=SENDMAIL_DOWN)
    own = [p for p in mtas if table.get(p.ppid, p).comm not in SUPER_SERVERS]
    assert own, (
        "sendmail runs only when inetd starts it for a connection ("
        + "; ".join(f"pid {p.pid}, parent {table[p.ppid].comm}" for p in mtas)
        + "): SMTP should be served by sendmail's own daemon"
    )


def _not_while_refusing(host, what: str) -> None:
    """An error, not a lost mark, while sendmail says it closed its port because the VM is too
    busy (RefuseLA: "rejecting connections on daemon MTA: load average: 26"): a VM too busy to
    answer is not the student's mistake."""
    titles = [p.args for p in mta_processes(host)]
    said = next((t for t in titles if "rejecting connections" in t), "")
    if said:
        raise Busy(
            f'{what}: sendmail says "{said}": it refuses connections while the VM is that busy. '
            "This is not a lost mark; grade again when the VM is less loaded"
        )


def test_smtp_listening(host, outside):
    """Port 25 listens on the VM.

    TCP port 25 is in LISTEN state on the VM.
    """
    compare_views(host, outside, 25)
    if listeners(host, 25):
        return
    if not mta_processes(host):
        fail(
            "nothing listens on TCP port 25 on the VM: sendmail is not running", cause=SENDMAIL_DOWN
        )
    _not_while_refusing(host, "nothing listens on TCP port 25 on the VM")
    fail("nothing listens on TCP port 25 on the VM")


#: What Debian's and Slackware's sendmail allow one client (ClientRate in /etc/mail/access,
#: ConnectionRateWindowSize in sendmail.cf), for the student told they were turned away
RATE_LIMIT = "sendmail allows 10 connections per client in 10 minutes"


def test_smtp_greets(host, lab, outside):
    """Port 25 greets from outside.

    From outside the VM, port 25 answers with an SMTP 220 greeting.
    """
    try:
        greeting = outside.smtp_greeting(25)
    except TurnedAway as e:
        raise e.explained(RATE_LIMIT) from None
    if greeting.ok:
        return
    found = listeners(host, 25)
    if not found and not mta_processes(host):
        fail(
            f"port 25 did not greet ({greeting.text}): sendmail is not running", cause=SENDMAIL_DOWN
        )
    if found and all(is_loopback(x.address) for x in found):
        why, cause = why_loopback_only(host, lab)
        fail(
            f"port 25 cannot be reached from outside ({greeting.text}): sendmail listens only on "
            f"{', '.join(x.address for x in found)}, "
            + (why or "as the Addr= of sendmail.mc's DAEMON_OPTIONS says"),
            cause=cause,
        )
    _not_while_refusing(host, f"port 25 did not greet ({greeting.text})")
    raise AssertionError(f"port 25 did not greet with 220: {greeting.text}")


def test_smtp_not_in_inetd(host, lab):
    """SMTP is not started by inetd.

    /etc/inetd.conf has no active smtp entry.
    """
    active = entries_for_port(inetd_entries(host, lab), services(host, lab), 25, active=True)
    assert not active, (
        f"{lab.paths.inetd_conf} still starts SMTP: "
        + "; ".join(e.where() for e in active)
        + " (comment it out: sendmail serves SMTP with its own daemon)"
    )


def test_queue_empty(host, lab):
    """No mail waits in the queue.

    No message waits in the mail queues.
    """
    waiting = queued(host, lab)
    if not waiting:
        return
    where = "; ".join(f"{len(names)} in {folder}" for folder, names in waiting.items())
    if not mta_processes(host):
        fail(
            f"messages wait in the queue: {where}, because sendmail is not running",
            cause=SENDMAIL_DOWN,
        )
    client = any(folder.rstrip("/").endswith(CLIENT_QUEUES) for folder in waiting)
    fail(
        f"messages wait in the queue: {where} (sendmail runs: `mailq` says why they wait"
        + (", `mailq -Ac` for the client queue; `sendmail -Ac -q` sends those now)" if client
           else "; `sendmail -q` sends them now)")
    )  # fmt: skip
