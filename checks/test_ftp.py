"""Exercise 4.1-4.3: vsftpd configured, ftp disabled again in inetd, root kept out."""

from grader.toolkit import compare_views, fail, listeners

from .support.inetd import INETD_NOT_RESTARTED, entries_for_port
from .support.remote import inetd_entries, listed_users, services, vsftpd_settings
from .support.vsftpd import boolean


def test_ftp_disabled(host, lab, outside):
    """ftp is disabled again.

    ftp is disabled again: no active ftp entry in inetd.conf (tcp, tcp6 ...) and 21 closed.
    """
    compare_views(host, outside, 21)
    active = entries_for_port(inetd_entries(host, lab), services(host, lab), 21, active=True)
    assert not active, f"{lab.paths.inetd_conf} still enables ftp: " + "; ".join(
        e.where() for e in active
    )
    inside = listeners(host, 21)
    if inside:
        fail(
            f"ftp is commented out, but port 21 still listens on the VM "
            f"({', '.join(map(str, inside))}): did you restart inetd?",
            cause=INETD_NOT_RESTARTED,
        )
    state = outside.port_state(21)
    assert state != "open", "port 21 is open when scanned from outside the VM"


def test_vsftpd_anonymous_disabled(host, lab):
    """Anonymous FTP is off.

    vsftpd does not allow anonymous FTP (anonymous_enable=NO).
    """
    anonymous = boolean(vsftpd_settings(host, lab), "anonymous_enable")
    assert anonymous.problem is None, anonymous.problem
    assert not anonymous.value, anonymous.describe("anonymous_enable")


def test_vsftpd_local_write(host, lab):
    """Local users may log in and write.

    vsftpd lets local users log in and write (local_enable=YES, write_enable=YES).
    """
    settings = vsftpd_settings(host, lab)
    wrong = []  # every setting still to change, in one run
    for name in ("local_enable", "write_enable"):
        setting = boolean(settings, name)
        if setting.problem is not None:
            wrong.append(setting.problem)
        elif not setting.value:
            wrong.append(setting.describe(name))
    assert not wrong, "; ".join(wrong)


def test_ftp_root_denied(host, lab):
    """root cannot use FTP.

    root cannot log in over FTP: it is listed in /etc/ftpusers.
    """
    users = listed_users(host, lab.paths.ftpusers, "root")
    assert users is not None, f"{lab.paths.ftpusers} does not exist, so root is not kept out"
    assert "root" in users, f"root is not listed in {lab.paths.ftpusers}, so root may log in"
