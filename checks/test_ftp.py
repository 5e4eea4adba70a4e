"""Exercise 4.1-4.3: vsftpd configured, ftp disabled again in inetd, root kept out."""

from .support.inetd import entries_for_port
from .support.remote import compare_views, inetd_entries, listeners, read_file, services
from .support.vsftpd import boolean, parse_vsftpd_conf


def _vsftpd_settings(host, lab):
    content = read_file(host, lab.paths.vsftpd_conf)
    assert content is not None, (
        f"{lab.paths.vsftpd_conf} does not exist, so vsftpd runs "
        "with its built-in defaults (anonymous FTP on, local users off)"
    )
    return parse_vsftpd_conf(content.text)


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
    assert not inside, (
        "ftp is commented out, but port 21 still listens on the VM ("
        + ", ".join(map(str, inside))
        + "): did you restart inetd?"
    )
    state = outside.port_state(21)
    assert state != "open", "port 21 is open when scanned from outside the VM"


def test_vsftpd_anonymous_disabled(host, lab):
    """Anonymous FTP is off.

    vsftpd does not allow anonymous FTP (anonymous_enable=NO).
    """
    anonymous = boolean(_vsftpd_settings(host, lab), "anonymous_enable")
    assert anonymous.problem is None, anonymous.problem
    assert not anonymous.value, anonymous.describe("anonymous_enable")


def test_vsftpd_local_write(host, lab):
    """Local users may log in and write.

    vsftpd lets local users log in and write (local_enable=YES, write_enable=YES).
    """
    settings = _vsftpd_settings(host, lab)
    for name in ("local_enable", "write_enable"):
        setting = boolean(settings, name)
        assert setting.problem is None, setting.problem
        assert setting.value, setting.describe(name)


def test_ftp_root_denied(host, lab):
    """root cannot use FTP.

    root cannot log in over FTP: it is listed in /etc/ftpusers.
    """
    content = read_file(host, lab.paths.ftpusers)
    assert content is not None, f"{lab.paths.ftpusers} does not exist, so root is not kept out"
    users = {line.split("#", 1)[0].strip() for line in content.text.splitlines()}
    assert "root" in users, f"root is not listed in {lab.paths.ftpusers}, so root may log in"
