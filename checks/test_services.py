"""Exercise 4: inetd's services: the time service removed, telnet enabled."""

from grader.toolkit import compare_views, fail, listeners

from .support.inetd import INETD_NOT_RESTARTED, entries_for_port
from .support.remote import inetd_entries, services


def test_time_disabled(host, lab, outside):
    """The time service is removed.

    The time service (port 37) is commented out in inetd.conf and nothing serves it.
    """
    compare_views(host, outside, 37)
    active = entries_for_port(inetd_entries(host, lab), services(host, lab), 37, active=True)
    assert not active, f"{lab.paths.inetd_conf} still enables time: " + "; ".join(
        e.where() for e in active
    )
    still = listeners(host, 37, ("tcp", "udp"))
    if still:
        fail(
            f"time is commented out, but port 37 is still served ({', '.join(map(str, still))})"
            ": did you restart inetd?",
            cause=INETD_NOT_RESTARTED,
        )


def test_telnet_enabled(host, lab, outside):
    """telnet is enabled.

    telnet is enabled in inetd.conf and port 23 listens.
    """
    compare_views(host, outside, 23)
    entries = entries_for_port(inetd_entries(host, lab), services(host, lab), 23)
    if not any(e.active for e in entries):
        assert not entries, (
            f"the telnet entry in {lab.paths.inetd_conf} is still commented "
            "out: " + "; ".join(e.where() for e in entries)
        )
        raise AssertionError(f"{lab.paths.inetd_conf} has no telnet entry (port 23)")
    if not listeners(host, 23):
        fail(
            f"{lab.paths.inetd_conf} enables telnet but nothing listens on 23: did you restart "
            "inetd?",
            cause=INETD_NOT_RESTARTED,
        )
