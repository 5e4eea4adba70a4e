"""What a student does on the VM during Lab 6, step by step, as shell commands run inside it."""

from __future__ import annotations

import shlex

from grader.sim import VM, wait_for

#: The MTA's listening options in sendmail.cf, without a listen address
_MTA_OPTIONS = "O DaemonPortOptions=Family=inet,  Name=MTA-v4, Port=smtp"


def _listen_on(vm: VM, all_interfaces: bool) -> None:
    """Exercise 3.3 talks to port 25 from the host machine: sendmail must listen on every
    interface. Debian's sendmail.mc has Addr=127.0.0.1, Slackware's has none (a student who
    restricts it makes the mistake of a scenario)."""
    if all_interfaces:
        vm.sh("sed -i 's/, *Addr=127\\.0\\.0\\.1//' /etc/mail/sendmail.cf")
    elif vm.flavour == "slackware":
        vm.sh(f"sed -i 's/^{_MTA_OPTIONS}$/&, Addr=127.0.0.1/' /etc/mail/sendmail.cf")


def listen_everywhere_later(vm: VM) -> None:
    """sendmail.cf changed to listen on every interface, and sendmail left running as it was
    started (not restarted, so it still listens on 127.0.0.1 only)."""
    _listen_on(vm, all_interfaces=True)


def start_sendmail(vm: VM, *, all_interfaces: bool = True) -> None:
    """Start sendmail's daemon (as the VM's system does it), listening on every interface or,
    as some students leave it, on 127.0.0.1 only."""
    _listen_on(vm, all_interfaces)
    if vm.flavour == "slackware":
        vm.sh("chmod +x /etc/rc.d/rc.sendmail && /etc/rc.d/rc.sendmail start")
    else:
        vm.sh("/usr/sbin/sendmail-mta -L sm-mta -bd -q10m")
    wait_for(vm, "ss -Hltn 'sport = :25' | grep -q LISTEN")


def restart_sendmail(vm: VM, *, all_interfaces: bool = True) -> None:
    """Stop sendmail's daemon and start it again (after its configuration was changed)."""
    if vm.flavour == "slackware":
        _listen_on(vm, all_interfaces)
        vm.sh("/etc/rc.d/rc.sendmail restart")
        wait_for(vm, "ss -Hltn 'sport = :25' | grep -q LISTEN")
        return
    vm.sh("kill $(head -n 1 /run/sendmail/mta/sendmail.pid)")
    wait_for(vm, "! ss -Hltn 'sport = :25' | grep -q LISTEN")
    start_sendmail(vm, all_interfaces=all_interfaces)


def inetd_service(vm: VM, service: str, *, enable: bool, protocol: str = "tcp") -> None:
    """Uncomment (enable) or comment out (disable) a service's line in /etc/inetd.conf."""
    pattern = rf"{service}[[:space:]]+[a-z]+[[:space:]]+{protocol}[[:space:]]"
    if enable:
        vm.sh(f"sed -i -E 's/^#(<off>#)?[[:space:]]*({pattern})/\\2/' /etc/inetd.conf")
    else:
        vm.sh(f"sed -i -E 's/^({pattern})/#\\1/' /etc/inetd.conf")


def add_inetd_line(vm: VM, line: str) -> None:
    vm.sh(f"printf '%s\\n' {shlex.quote(line)} >> /etc/inetd.conf")


def start_inetd(vm: VM) -> None:
    """Start inetd and wait until it holds a socket for every active line."""
    vm.sh("/etc/rc.d/rc.inetd start" if vm.flavour == "slackware" else "/usr/sbin/inetd")
    _inetd_ready(vm)


def _inetd_ready(vm: VM) -> None:
    wait_for(
        vm,
        '[ -s /run/inetd.pid ] && [ $(ss -Hlntup | grep -c "pid=$(cat /run/inetd.pid),") '
        "-ge $(grep -cE '^[a-z]' /etc/inetd.conf) ]",
    )


def restart_inetd(vm: VM) -> None:
    if vm.flavour == "slackware":  # as the handout does it
        vm.sh("/etc/rc.d/rc.inetd restart")
        return _inetd_ready(vm)
    vm.sh("kill $(cat /run/inetd.pid)")
    wait_for(vm, "! pidof inetd >/dev/null")
    vm.sh("rm -f /run/inetd.pid")
    start_inetd(vm)


def vsftpd_set(vm: VM, name: str, value: str) -> None:
    """Set a vsftpd.conf option where it stands (uncommenting it if needed)."""
    vm.sh(f"sed -i -E 's/^#?{name}=.*/{name}={value}/' /etc/vsftpd.conf")


def send_mail_from_file(vm: VM) -> None:
    """Exercise 1.1: mail -s subject user@domain < message.txt"""
    vm.sh(
        "printf 'Notes for Lab 6.\\nSendmail, POP3 and inetd.\\n' > /root/message.txt\n"
        "mail -s 'Lab 6 notes' bob@anglia.bryant < /root/message.txt"
    )


def send_mail(vm: VM, subject: str, body: str = "hello") -> None:
    """A message to bob sent on the VM with mail -s (whatever the subject holds)."""
    vm.sh(f"printf '%s\\n' {shlex.quote(body)} | mail -s {shlex.quote(subject)} bob@anglia.bryant")


def send_hello_world(vm: VM) -> None:
    """Exercise 1.2. smith no longer exists, so mail exits 67 while bob and root get it."""
    vm.sh(
        "echo 'Welcome to Computer Systems' | mail -s 'Hello world' bob@anglia.bryant "
        "-c smith@anglia.bryant -b root@anglia.bryant || true"
    )


SMTP_BY_HAND = """
import smtplib
with smtplib.SMTP("127.0.0.1", 25, local_hostname="localhost", timeout=20) as s:
    s.helo("localhost")
    s.mail("root@localhost")
    s.rcpt("bob@localhost")
    s.data("Subject: typed by hand\\r\\n\\r\\nHello bob, this message was typed in SMTP.\\r\\n")
"""


def smtp_by_hand(vm: VM) -> None:
    """Exercise 3.3: an SMTP conversation with port 25 from localhost, root to bob."""
    vm.sh(f"/usr/bin/python3 -c {shlex.quote(SMTP_BY_HAND)}")


def wait_for_delivery(vm: VM, bob: int, root: int) -> None:
    """Wait until the queues are empty and the mailboxes hold what was sent."""
    count = "$(cat /var/mail/{0} 2>/dev/null | grep -c '^From ' || true)"
    wait_for(
        vm,
        "! ls /var/spool/mqueue/qf* /var/spool/mqueue-client/qf* >/dev/null 2>&1 && "
        f"[ {count.format('bob')} -ge {bob} ] && [ {count.format('root')} -ge {root} ]",
    )


def sendmail_client_rate(vm: VM, client: str, connections: int) -> None:
    """How many connections sendmail takes from ``client`` in its window (ClientRate in
    /etc/mail/access; 0: no limit). sendmail reopens the map when it changes: no restart, and
    the connections it already counted stay counted."""
    vm.sh(
        f"sed -i '/^ClientRate:{client}[[:space:]]/d' /etc/mail/access && "
        f"printf 'ClientRate:{client}\\t{connections}\\n' >> /etc/mail/access && "
        "makemap hash /etc/mail/access < /etc/mail/access"
    )
