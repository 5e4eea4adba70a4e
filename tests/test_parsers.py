"""Unit tests of the pure parsers behind the Lab 6 checks (no VM needed)."""

from checks.support.inetd import entries_for_port, entry_port, parse_inetd_conf, parse_services
from checks.support.mbox import normalise, parse_mbox
from checks.support.mta import _limits_port_25, _options
from checks.support.vsftpd import boolean, parse_vsftpd_conf
from grader.base.evidence import command_in_words

SERVICES = parse_services("""
ftp		21/tcp
telnet		23/tcp
smtp		25/tcp		mail
time		37/tcp		timserver
time		37/udp		timserver
pop3		110/tcp		pop-3		# POP version 3
bad-line
""")

INETD = """\
# <service_name> <sock_type> <proto> <flags> <user> <server_path> <args>
time		stream	tcp	nowait	root	internal
   #time	dgram	udp	wait	root	internal
#<off># telnet	stream	tcp	nowait	root	/usr/sbin/tcpd	/usr/sbin/telnetd
pop-3 stream tcp nowait root /usr/sbin/tcpd /usr/sbin/popa3d
127.0.0.1:ftp stream tcp6 nowait root /usr/sbin/tcpd /usr/sbin/vsftpd
smtp stream
25 stream tcp nowait root /usr/sbin/sendmail sendmail -bs
"""


def test_services_names_and_aliases():
    assert SERVICES["pop-3"] == {(110, "tcp")}
    assert SERVICES["time"] == {(37, "tcp"), (37, "udp")}
    assert SERVICES["mail"] == {(25, "tcp")}
    assert "bad-line" not in SERVICES


def test_inetd_active_and_commented_entries():
    entries = parse_inetd_conf(INETD)
    # the header comment and the truncated "smtp stream" line are not entries
    assert [(e.line, e.service, e.protocol, e.active) for e in entries] == [
        (2, "time", "tcp", True),
        (3, "time", "udp", False),  # an indented comment is a comment
        (4, "telnet", "tcp", False),  # Debian's #<off># marker
        (5, "pop-3", "tcp", True),
        (6, "ftp", "tcp6", True),  # a listen address before the service
        (8, "25", "tcp", True),
    ]


def test_inetd_entries_resolve_by_name_alias_and_port():
    entries = parse_inetd_conf(INETD)
    assert [e.line for e in entries_for_port(entries, SERVICES, 110, active=True)] == [5]
    assert [e.line for e in entries_for_port(entries, SERVICES, 21, active=True)] == [6]
    assert [e.line for e in entries_for_port(entries, SERVICES, 25)] == [8]
    assert [e.line for e in entries_for_port(entries, SERVICES, 37)] == [2, 3]
    assert [e.line for e in entries_for_port(entries, SERVICES, 37, active=False)] == [3]


def test_inetd_half_removed_off_marker_is_still_disabled_and_says_what_is_left():
    # the student removed the first '#' of '#<off>#': inetd ignores the line, the entry is there
    (entry,) = parse_inetd_conf("<off># telnet stream tcp nowait root /usr/sbin/tcpd in.telnetd\n")
    assert (entry.service, entry.active, entry.half_removed) == ("telnet", False, True)
    assert entry_port(entry, SERVICES) == 23
    assert "remove the '<off>#' left at its start" in entry.where()


def test_inetd_unknown_service_serves_no_port():
    (entry,) = parse_inetd_conf("pop4 stream tcp nowait root /bin/true\n")
    assert entry_port(entry, SERVICES) is None


def test_vsftpd_last_setting_wins_case_insensitive():
    settings = parse_vsftpd_conf("anonymous_enable=NO\nlocal_enable=yes\nanonymous_enable=True\n")
    anonymous = boolean(settings, "anonymous_enable")
    assert anonymous.value is True and anonymous.source.line == 3 and anonymous.problem is None
    assert boolean(settings, "local_enable").value is True


def test_vsftpd_defaults_when_absent():
    settings = parse_vsftpd_conf("#anonymous_enable=NO\n#local_enable=YES\n")
    assert boolean(settings, "anonymous_enable").value is True  # vsftpd's built-in default
    assert boolean(settings, "anonymous_enable").source is None
    assert boolean(settings, "local_enable").value is False
    assert "built-in default NO" in boolean(settings, "write_enable").describe("write_enable")


def test_vsftpd_lines_vsftpd_refuses():
    spaced = boolean(parse_vsftpd_conf("anonymous_enable = NO\n"), "anonymous_enable")
    assert spaced.value is True and "no spaces are allowed" in spaced.problem
    bad = boolean(parse_vsftpd_conf("anonymous_enable=nope\n"), "anonymous_enable")
    assert "line 1" in bad.problem and "not YES or NO" in bad.problem
    indented = boolean(
        parse_vsftpd_conf("  #anonymous_enable=YES\nanonymous_enable=NO\n"), "anonymous_enable"
    )
    assert indented.value is False and "first column" in indented.problem
    # a value with a trailing blank is not NO to vsftpd either
    assert boolean(parse_vsftpd_conf("anonymous_enable=NO \n"), "anonymous_enable").problem


MBOX = b"""From root@anglia.bryant  Wed Nov 25 15:27:22 2026
Return-Path: <root@anglia.bryant>
Received: from anglia.bryant (localhost [127.0.0.1])
\tby anglia.bryant (8.17.1.9/8.17.1.9/Debian-2) with ESMTP id 6APFRMvh000175
\tfor <bob@anglia.bryant>; Wed, 25 Nov 2026 15:27:22 GMT
Received: (from root@localhost)
\tby anglia.bryant (8.17.1.9/8.17.1.9/Submit) id 6APFRMWn000174;
\tWed, 25 Nov 2026 15:27:22 GMT
Subject: =?UTF-8?Q?=E2=80=9CHello_world=E2=80=9D?=

\xe2\x80\x9cWelcome to Computer Systems\xe2\x80\x9d
>From the body, escaped

From root@anglia.bryant  Wed Nov 25 15:27:23 2026
Return-Path: <root@anglia.bryant>
Received: from anglia.bryant (localhost [127.0.0.1])
\tby anglia.bryant (8.17.1.9/8.17.1.9/Debian-2) with ESMTP id 6APFRNMw000227
Subject: typed by hand

hello
"""


def test_mbox_messages_headers_and_bodies():
    first, second = parse_mbox(MBOX)
    assert first.envelope_sender == "root@anglia.bryant"
    assert normalise(first.subject) == "hello world"  # RFC 2047 and curly quotes
    assert "welcome to computer systems" in normalise(first.body)
    assert first.locally_submitted and first.arrived_by_smtp
    assert not second.locally_submitted and second.arrived_by_smtp
    assert second.sender_user == "root" and second.subject == "typed by hand"


def test_mbox_garbage_gives_no_messages_or_partial_ones():
    assert parse_mbox(b"") == []
    assert parse_mbox(b"\x00\xff not a mailbox at all") == []
    (message,) = parse_mbox(
        b"From x\nSubject: =?bogus?Q?=ZZ?=\nContent-Type: text/plain; "
        b"charset=no-such-charset\n\n\xff\xfe body"
    )
    assert message.subject and "body" in message.body


def test_sendmail_listening_lines_that_keep_port_25_on_loopback():
    cf = "O DaemonPortOptions=Family=inet,  Name=MTA-v4, Port=smtp, Addr=127.0.0.1"
    mc = "DAEMON_OPTIONS(`Family=inet,  Name=MTA-v4, Port=smtp, Addr=127.0.0.1')dnl"
    msp = "DAEMON_OPTIONS(`Family=inet,  Name=MSP-v4, Port=submission, M=Ea, Addr=127.0.0.1')dnl"
    assert _options(cf) == {"family": "inet", "name": "MTA-v4", "port": "smtp", "addr": "127.0.0.1"}
    assert _limits_port_25(_options(cf)) and _limits_port_25(_options(mc))
    assert not _limits_port_25(_options(msp))  # the MSP on 587: not what Exercise 3.3 needs
    assert _limits_port_25(_options("O DaemonPortOptions=Addr=127.0.0.1"))  # port 25 by default
    assert not _limits_port_25(_options("O DaemonPortOptions=Name=MTA-v4, Port=smtp"))
    assert not _limits_port_25(_options("O DaemonPortOptions=Port=25, Addr=198.18.0.5"))
    for inactive in ("dnl " + mc, "#O DaemonPortOptions=Port=smtp, Addr=127.0.0.1", "# " + mc):
        assert _options(inactive) is None


def test_a_command_in_a_message_is_named_in_words_never_quoted_whole():
    read = 'p=/etc/inetd.conf; if [ -L "$p" ]; then echo symlink; readlink -- "$p"; ' * 3
    assert command_in_words(read) == "reading /etc/inetd.conf"
    assert command_in_words("p='/var/spool/mail/bob'; dd ...") == "reading /var/spool/mail/bob"
    assert command_in_words("ls -1 -A -- /var/spool/mqueue") == "`ls -1 -A -- /var/spool/mqueue`"
    long = "ps -e -ww -o pid=,ppid=,comm=,args= | awk '{print $1}' | sort -n | uniq -c | head -50"
    said = command_in_words(long)
    assert said.startswith("a command of the checks (`ps ...`") and "awk" not in said
