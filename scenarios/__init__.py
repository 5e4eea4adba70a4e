"""Lab 6's scenarios: a student's VM after the lab done right, not at all, or with one common
mistake.

Each scenario is the lab's starting VM plus what the student did, and states the status every
Lab 6 check must give (with bob's password given to the grader).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from grader.sim import VM, Mutant, Scenario

from . import mutants, student

FILES = Path(__file__).resolve().parent / "files"  # Lab 6's inetd.conf and vsftpd.conf
SLACKWARE = FILES / "slackware"  # Slackware 15.0's, as the handout's VM has them
#: Graded with bob's password, which PREPARE sets to the VMs' own
GRADING_VARS = {"bob_password": "{password}"}
#: What Lab 6's VMs run, besides what every simulated VM has
TOOLS = ("inetd", "sendmail-mta", "popa3d", "vsftpd", "telnetd", "tcpd", "mail")
#: Mutants of Lab 6's own kinds (`grade prove --mutants`), besides those derived from what the
#: checks read: what a check found absent, made present where no file it read says so
MUTANTS = (
    Mutant(
        "queue:held",
        "a message to bob left in the client queue (sent with -odq: queued, not delivered)",
        "printf 'Subject: held\\n\\nstill queued\\n' | sendmail -Ac -odq bob@anglia.bryant",
        None,
        ("queue_empty",),
    ),
)

#: Lab 6's own kinds of line mutant: its files' syntax (vsftpd's YES/NO, inetd.conf's lines)
LINE_KINDS = mutants.KINDS

CHECK_IDS = (
    "smtp_daemon",
    "smtp_listening",
    "smtp_greets",
    "smtp_not_in_inetd",
    "queue_empty",
    "mail_hello_world",
    "mail_from_file",
    "mail_bcc_root",
    "mail_smtp_by_hand",
    "mailbox_permissions",
    "pop3_in_inetd",
    "pop3_listening",
    "pop3_greets",
    "pop3_login",
    "time_disabled",
    "telnet_enabled",
    "ftp_disabled",
    "vsftpd_anonymous_disabled",
    "vsftpd_local_write",
    "ftp_root_denied",
)
ALL_PASS = dict.fromkeys(CHECK_IDS, "pass")


#: The VM as handed out, before its daemons start: every VM is "anglia.bryant", as in the
#: handout; bob is the lab's user (smith was deleted in an earlier lab), and may sudo (for
#: grading as bob with --sudo); inetd.conf and vsftpd.conf as Debian ships them.
PREPARE = """
hostname anglia
printf '127.0.0.1\\tlocalhost\\n%s\\tanglia.bryant anglia\\n' {address} > /etc/hosts
echo anglia.bryant > /etc/mailname
# The VMs share one kernel, so its load average is the whole machine's: with a busy machine,
# sendmail's QueueLA/RefuseLA (8 and 12) would make every VM stop listening on port 25 at
# once. A real VM has a load of its own; here the limits are set out of reach.
sed -i 's/^#O QueueLA=.*/O QueueLA=1000/; s/^#O RefuseLA=.*/O RefuseLA=1000/' /etc/mail/sendmail.cf
useradd -m -s /bin/bash bob
echo "bob:{password}" | chpasswd
if [ -d /etc/sudoers.d ]; then
    echo 'bob ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/labsim-bob
    chmod 440 /etc/sudoers.d/labsim-bob
fi
mkdir -p /run/vsftpd/empty /run/sendmail/mta /run/sendmail/msp
chown smmta:smmsp /run/sendmail/mta && chmod 2755 /run/sendmail/mta
chown smmsp:smmsp /run/sendmail/msp && chmod 2775 /run/sendmail/msp
"""


SEPARATE_SPOOL = r"""
link=/var/spool/mail; [ -L $link ] || link=/var/mail
rm $link && mkdir -m 3777 $link && chown root:mail $link
"""


def lab_start(vm: VM) -> None:
    """The VM as handed out: inetd runs with the time service; sendmail is installed but its
    daemon is not running; vsftpd allows anonymous FTP."""
    vm.sh(PREPARE.format(address=vm.address, password=shlex.quote(vm.password)))
    if vm.flavour == "slackware":
        slackware_layout(vm)
        return student.start_inetd(vm)
    # as the files' bytes: the project's folder may not be seen from the VM (its own /tmp)
    for name in ("inetd.conf", "vsftpd.conf"):
        vm.sh(f"install -m 644 /dev/stdin /etc/{name}", stdin=(FILES / name).read_bytes())
    student.start_inetd(vm)


#: The handout's system, as faithfully as Debian's packages allow: Slackware's own files and
#: rc.d scripts, its mail spool layout, and sendmail listening on every interface as
#: Slackware's sendmail.cf has it. /etc/os-release is a link into /usr on Debian: the link is
#: replaced in the VM (its /etc is its own), never written through.
SLACKWARE_LAYOUT = r"""
rm -f /etc/os-release
echo 'Slackware 15.0' > /etc/slackware-version
rm /var/spool/mail && mkdir /var/spool/mail && chown root:mail /var/spool/mail
chmod 3777 /var/spool/mail
cp -a /var/mail/. /var/spool/mail/ && rm -rf /var/mail && ln -s spool/mail /var/mail
mkdir -p /etc/rc.d
sed -i 's/, *Addr=127\.0\.0\.1//' /etc/mail/sendmail.cf
"""


def slackware_layout(vm: VM) -> None:
    vm.sh(SLACKWARE_LAYOUT)
    for name, where, mode in (
        ("os-release", "/etc/os-release", 644),
        ("inetd.conf", "/etc/inetd.conf", 644),
        ("vsftpd.conf", "/etc/vsftpd.conf", 644),
        ("rc.inetd", "/etc/rc.d/rc.inetd", 755),
        ("rc.sendmail", "/etc/rc.d/rc.sendmail", 644),  # not started: not executable yet
    ):
        vm.sh(f"install -m {mode} /dev/stdin {where}", stdin=(SLACKWARE / name).read_bytes())


#: Strings a student controls that must stay text in every report: HTML, and spreadsheet formulas.
PAYLOADS = (
    '<script>alert("subject")</script>',
    '=HYPERLINK("http://evil.example","win")',
    "<img src=x onerror=alert(1)>",
    "@SUM(1+1)|+cmd",
)


def do_the_lab(
    vm: VM,
    *,
    start_sendmail: bool = True,
    hostile_strings: bool = False,
    sendmail_everywhere: bool = True,
    restart_inetd: bool = True,
    ftp_tcp6_left: bool = False,
    vsftpd_override: bool = False,
    mailbox_mode: str | None = None,
    root_in_ftpusers: bool = True,
    smtp_left_in_inetd: bool = False,
    separate_spool: bool = False,
) -> None:
    """Lab 6 done by a student, with an optional mistake given by one keyword (or, with
    ``separate_spool``, on a VM whose /var/spool/mail is an empty folder of its own while its
    mailer delivers to /var/mail: /var is the VM's own, so the link is replaced, not followed)."""
    lab_start(vm)
    if separate_spool:  # the link between the two (Debian's one way, Slackware's the other) goes
        vm.sh(SEPARATE_SPOOL)
    # Exercise 0 and 2: sendmail's own daemon serves SMTP (once started)
    if start_sendmail:
        student.start_sendmail(vm, all_interfaces=sendmail_everywhere)
    # Exercise 1
    student.send_mail_from_file(vm)
    if hostile_strings:  # mail with hostile subjects instead of "Hello world"
        if start_sendmail:
            student.wait_for_delivery(vm, bob=1, root=0)
        for n, payload in enumerate(PAYLOADS, start=2):
            student.send_mail(vm, payload, body=payload)
            if start_sendmail:  # one delivered before the next: bob's mailbox keeps their order
                student.wait_for_delivery(vm, bob=n, root=0)
    else:
        student.send_hello_world(vm)
    # Exercise 3.3: SMTP by hand
    if start_sendmail:
        student.smtp_by_hand(vm)
        if hostile_strings:
            student.wait_for_delivery(vm, bob=2 + len(PAYLOADS), root=0)
        else:
            student.wait_for_delivery(vm, bob=3, root=2)  # root: the blind copy, smith's bounce
    # Exercise 3.4: POP3 through inetd
    student.inetd_service(vm, "pop3", enable=True)
    if restart_inetd:
        student.restart_inetd(vm)
    # Exercise 4.1: time removed, telnet and ftp enabled, vsftpd configured
    student.inetd_service(vm, "time", enable=False, protocol="tcp")
    student.inetd_service(vm, "time", enable=False, protocol="udp")
    student.inetd_service(vm, "telnet", enable=True)
    student.inetd_service(vm, "ftp", enable=True)
    if ftp_tcp6_left:
        student.add_inetd_line(
            vm, "ftp\tstream\ttcp6\tnowait\troot\t/usr/sbin/tcpd\t/usr/sbin/vsftpd"
        )
    student.vsftpd_set(vm, "anonymous_enable", "NO")
    student.vsftpd_set(vm, "local_enable", "YES")
    student.vsftpd_set(vm, "write_enable", "YES")
    if vsftpd_override:
        vm.sh(
            "printf '# added while testing uploads\\nanonymous_enable=YES\\n' >> /etc/vsftpd.conf"
        )
    if restart_inetd:
        student.restart_inetd(vm)
    # Exercise 4.2: ftp disabled again (only the tcp line, when the tcp6 one is forgotten)
    student.inetd_service(vm, "ftp", enable=False, protocol="tcp")
    if restart_inetd:
        student.restart_inetd(vm)
    if smtp_left_in_inetd:  # Exercise 0 tried, and never undone (inetd not restarted since)
        student.add_inetd_line(
            vm, "smtp\tstream\ttcp\tnowait\troot\t/usr/sbin/tcpd\t/usr/sbin/sendmail -bs"
        )
    # Exercise 3.2 and 4.3
    if mailbox_mode:
        vm.sh(f"chmod {mailbox_mode} /var/mail/bob")
    if not root_in_ftpusers:
        vm.sh("sed -i '/^root$/d' /etc/ftpusers")
    if hostile_strings:  # a host name and a running process that carry markup too
        # hostname(1) refuses such a name, the kernel does not: a student (root) can set it
        vm.sh(
            "/usr/bin/python3 -c 'import socket, sys; socket.sethostname(sys.argv[1])' "
            f"{shlex.quote(PAYLOADS[2])}"
        )
        loop = shlex.quote("while :; do sleep 3600; done")  # its $0 is the payload, seen by ps
        vm.sh(f"setsid bash -c {loop} {shlex.quote(PAYLOADS[0])} >/dev/null 2>&1 < /dev/null &")


def _expect(**changes: str) -> dict[str, str]:
    unknown = set(changes) - set(CHECK_IDS)
    assert not unknown, unknown
    return {**ALL_PASS, **changes}


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("complete", "Lab 6 done right", do_the_lab, ALL_PASS),
        Scenario(
            "untouched",
            "the VM as handed out: nothing done",
            lab_start,
            _expect(
                smtp_daemon="fail",
                smtp_listening="fail",
                smtp_greets="fail",
                mail_hello_world="fail",
                mail_from_file="fail",
                mail_bcc_root="fail",
                mail_smtp_by_hand="fail",
                pop3_in_inetd="fail",
                pop3_listening="fail",
                pop3_greets="fail",
                mailbox_permissions="fail",
                pop3_login="skipped",
                time_disabled="fail",
                telnet_enabled="fail",
                vsftpd_anonymous_disabled="fail",
                vsftpd_local_write="fail",
            ),
        ),
        Scenario(
            "inetd_not_restarted",
            "inetd.conf edited, but inetd never restarted",
            lambda vm: do_the_lab(vm, restart_inetd=False),
            _expect(
                pop3_listening="fail",
                pop3_greets="fail",
                pop3_login="skipped",
                time_disabled="fail",
                telnet_enabled="fail",
            ),
        ),
        Scenario(
            "vsftpd_override",
            "anonymous_enable=NO, but set back to YES further down",
            lambda vm: do_the_lab(vm, vsftpd_override=True),
            _expect(vsftpd_anonymous_disabled="fail"),
        ),
        Scenario(
            "ftp_tcp6",
            "ftp disabled for tcp, still served over tcp6",
            lambda vm: do_the_lab(vm, ftp_tcp6_left=True),
            _expect(ftp_disabled="fail"),
        ),
        Scenario(
            "mailbox_world_readable",
            "bob's mailbox readable by everyone",
            lambda vm: do_the_lab(vm, mailbox_mode="644"),
            _expect(mailbox_permissions="fail"),
        ),
        Scenario(
            "sendmail_never_started",
            "sendmail's daemon never started: mail waits in the queue",
            lambda vm: do_the_lab(vm, start_sendmail=False),
            _expect(
                smtp_daemon="fail",
                smtp_listening="fail",
                smtp_greets="fail",
                queue_empty="fail",
                mail_hello_world="fail",
                mail_from_file="fail",
                mail_bcc_root="fail",
                mail_smtp_by_hand="fail",
                mailbox_permissions="fail",
                pop3_login="fail",
            ),
        ),
        Scenario(
            "sendmail_loopback_only",
            "sendmail left listening on 127.0.0.1 only",
            lambda vm: do_the_lab(vm, sendmail_everywhere=False),
            _expect(smtp_greets="fail"),
        ),
        Scenario(
            "sendmail_not_restarted",
            "sendmail.cf changed to listen on every interface, sendmail not restarted",
            lambda vm: (
                do_the_lab(vm, sendmail_everywhere=False),
                student.listen_everywhere_later(vm),
            ),
            _expect(smtp_greets="fail"),
        ),
        Scenario(
            "mail_in_var_mail",
            "the lab done right on a VM whose mailer delivers to /var/mail, not /var/spool/mail",
            lambda vm: do_the_lab(vm, separate_spool=True),
            ALL_PASS,
        ),
        Scenario(
            "root_ftp_allowed",
            "root removed from /etc/ftpusers",
            lambda vm: do_the_lab(vm, root_in_ftpusers=False),
            _expect(ftp_root_denied="fail"),
        ),
        Scenario(
            "smtp_left_in_inetd",
            "Exercise 0's smtp line left in inetd.conf",
            lambda vm: do_the_lab(vm, smtp_left_in_inetd=True),
            _expect(smtp_not_in_inetd="fail"),
        ),
        Scenario(
            "hostile_strings",
            "mail subjects, host name and a process carrying HTML and spreadsheet formulas",
            lambda vm: do_the_lab(vm, hostile_strings=True),
            _expect(mail_hello_world="fail", mail_bcc_root="fail"),
        ),
    )
}


def _on_slackware(build: Callable[[VM], None]) -> Callable[[VM], None]:
    def on_slackware(vm: VM) -> None:
        vm.flavour = "slackware"
        build(vm)

    return on_slackware


#: The same scenarios on the Slackware-flavoured VM: the same verdicts
SLACKWARE_SCENARIOS = {
    f"slack_{s.name}": Scenario(
        f"slack_{s.name}", f"{s.description} (Slackware)", _on_slackware(s.build), s.expected
    )
    for s in SCENARIOS.values()
}
