"""Hostile and broken VMs: students are root on the machines we grade, and some VMs are simply
broken. Each is a VM (mostly the lab done right) with one thing done to it. These are kept out of
SCENARIOS: plain pytest-testinfra, compared there, has no time-outs and would hang on some."""

from __future__ import annotations

import shlex

from grader.sim import NETWORK, VM, Scenario
from scenarios import ALL_PASS, do_the_lab, lab_start, student

#: An address on the simulator's network where nothing answers (never one outside it)
NOBODY = f"{NETWORK}.250"
CANARY = "CANARY-SHADOW-7f3a9e"  # a line of the hostile VM's /etc/shadow that must never leak
#: if a command the grader builds ran any of these, it would leave pwned* in root's home
NASTY_NAMES = (
    "$(touch pwned1)",
    "a; touch pwned2 #",
    'it\'s "quoted"',
    "new\nline",
    "`id`",
)

SILENT_LISTENER = """
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 22))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])  # accept, never say a word
"""

FAKE_SS = r"""#!/bin/sh
# a student's ss: hides port 25, invents a listener on 37
/usr/bin/ss "$@" | grep -v -e ':25 '
case " $* " in *" --listening "*)
  echo "tcp   LISTEN 0      128          0.0.0.0:37        0.0.0.0:*";; esac
"""


def silent_ssh(vm: VM) -> None:
    lab_start(vm)
    vm.sh("kill $(cat /run/sshd.pid)")
    student.wait_for(vm, "! ss -Hltn 'sport = :22' | grep -q LISTEN")
    vm.sh(f"setsid /usr/bin/python3 -c {shlex.quote(SILENT_LISTENER)} >/dev/null 2>&1 </dev/null &")
    student.wait_for(vm, "ss -Hltn 'sport = :22' | grep -q LISTEN")


def hanging_ss(vm: VM) -> None:
    do_the_lab(vm)
    vm.sh(
        "printf '#!/bin/sh\\nexec sleep 100000\\n' > /usr/local/bin/ss && "
        "chmod 755 /usr/local/bin/ss"
    )


def huge_files(vm: VM) -> None:
    """The lab done right, in huge files: nothing the lab asks about may be decided on a part."""
    do_the_lab(vm)
    # a 200 MB message and 100,000 small ones before bob's real mail; one line 20 MB long
    vm.sh(
        "{ printf 'From junk@anglia.bryant Mon Nov 23 10:00:00 2026\\nSubject: junk\\n\\n'; "
        "head -c 180M /dev/zero | tr '\\0' x | fold -w 100; head -c 20M /dev/zero | tr '\\0' y; "
        "printf '\\n\\n'; awk 'BEGIN { for (i = 1; i <= 100000; i++) printf \"From spam%d@x "
        "Mon Nov 23 10:00:00 2026\\nSubject: offer %d\\n\\nbuy now\\n\\n\", i, i }'; "
        "cat /var/mail/bob; } > /var/mail/bob.new && "
        "chown bob:mail /var/mail/bob.new && chmod 660 /var/mail/bob.new && "
        "mv /var/mail/bob.new /var/mail/bob",
        timeout=120,
    )
    # a 100,000-line inetd.conf (its entries after the comments), junk in two config files
    vm.sh(
        '{ for i in $(seq 100000); do echo "# padding line $i"; done; cat /etc/inetd.conf; } '
        "> /etc/inetd.conf.new && mv /etc/inetd.conf.new /etc/inetd.conf"
    )
    vm.sh(
        "printf '\\xff\\xfe\\x00 binary junk \\xc3\\x28 not UTF-8\\n' >> /etc/ftpusers && "
        "printf '#\\xff\\xfe\\x00 junk comment \\xc3\\x28\\n' >> /etc/vsftpd.conf"
    )
    # an /etc/ftpusers of 5.3 MB, root listed after its first 4 MiB
    vm.sh(
        "grep -v '^root$' /etc/ftpusers > /etc/ftpusers.new && "
        "awk 'BEGIN { for (i = 1; i <= 600000; i++) printf \"user%06d\\n\", i }' "
        ">> /etc/ftpusers.new && echo root >> /etc/ftpusers.new && "
        "mv /etc/ftpusers.new /etc/ftpusers",
        timeout=60,
    )


def shadow_link(vm: VM) -> None:
    do_the_lab(vm)
    vm.sh(
        f"echo 'canary:{CANARY}:19000:0:99999:7:::' >> /etc/shadow && "
        "mv /var/mail/bob /var/mail/bob.real && ln -s /etc/shadow /var/mail/bob"
    )


def nasty_names(vm: VM) -> None:
    do_the_lab(vm)
    for name in NASTY_NAMES:
        vm.sh(f"touch /var/mail/{shlex.quote(name)} && chmod 666 /var/mail/{shlex.quote(name)}")
    student.send_mail(vm, '"; touch pwned3; echo "$(touch pwned4)`touch pwned5`')


def dropping_sshd(vm: VM) -> None:
    do_the_lab(vm)
    killer = (
        "while :; do p=$(pgrep -f '^sshd: root'); "
        'if [ -n "$p" ]; then sleep 0.3; kill -9 $p; fi; sleep 0.05; done'
    )
    vm.sh(f"setsid sh -c {shlex.quote(killer)} >/dev/null 2>&1 </dev/null &")


def fake_ss(vm: VM) -> None:
    do_the_lab(vm)
    vm.sh(f"printf '%s' {shlex.quote(FAKE_SS)} > /usr/local/bin/ss && chmod 755 /usr/local/bin/ss")


#: What a student's VM sends to a terminal if the grader let it: clear the screen, set the
#: clipboard (OSC 52), a one-byte CSI (U+009B), carriage return and backspace to overwrite what
#: was shown, a bidi override to reorder it, and rich markup.
TERMINAL_PAYLOAD = "\x1b[2J\x1b]52;c;ZXZpbA==\x07\r\x08\u202e\u009b31m [bold]evil[/x]"
FAKE_SMTP = f"""
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 25))
s.listen(64)
def talk(c):
    c.sendall({("554 " + TERMINAL_PAYLOAD + chr(13) + chr(10)).encode()!r})
    c.recv(100)
    c.close()
while True:
    threading.Thread(target=talk, args=(s.accept()[0],), daemon=True).start()
"""


def control_chars(vm: VM) -> None:
    """Terminal control sequences and markup in a greeting, a host name, a mail subject and a
    process title."""
    do_the_lab(vm)
    payload = shlex.quote(TERMINAL_PAYLOAD)
    message = (
        "From mallory@anglia.bryant Mon Nov 23 10:00:00 2026\n"
        f"Subject: {TERMINAL_PAYLOAD}\n\n{TERMINAL_PAYLOAD}\n\n"
    )  # appended to bob's mailbox as delivered mail is: whatever mail(1) would make of it
    vm.sh("cat >> /var/mail/bob", stdin=message.encode())
    vm.sh(
        "/usr/bin/python3 -c 'import socket, sys; socket.sethostname(sys.argv[1])' "
        f"{shlex.quote(TERMINAL_PAYLOAD[:60])}"
    )
    loop = shlex.quote("while :; do sleep 3600; done")
    vm.sh(f"setsid bash -c {loop} {payload} >/dev/null 2>&1 < /dev/null &")
    # sendmail's daemon gone, and in its place on port 25 a server that greets with the payload
    vm.sh("kill $(pidof sendmail-mta sendmail | tr ' ' '\\n' | head -1) 2>/dev/null || true")
    vm.sh("pkill -f '^sendmail' || true")
    student.wait_for(vm, "! ss -Hltn 'sport = :25' | grep -q LISTEN")
    vm.sh(f"setsid /usr/bin/python3 -c {shlex.quote(FAKE_SMTP)} >/dev/null 2>&1 </dev/null &")
    student.wait_for(vm, "ss -Hltn 'sport = :25' | grep -q LISTEN")


#: bob's password on the masked_in_files VM: a word inetd.conf and /etc/services hold
MASKED_PASSWORD = "time"


def masked_in_files(vm: VM) -> None:
    """What the grader masks for readers (a private key's first line, bob's password) placed
    where a verdict is decided: a regrade must still decide as the live grading did."""
    do_the_lab(vm)
    vm.sh(f"echo bob:{MASKED_PASSWORD} | chpasswd")
    vm.sh("sed -i '1i # -----BEGIN RSA PRIVATE KEY-----' /etc/inetd.conf")
    student.inetd_service(vm, "time", enable=True, protocol="tcp")  # left on, below that line
    # a line vsftpd reads (and ignores) above the settings that decide two checks: cut out
    # "to the end of the key", the settings would be gone
    vm.sh("sed -i '1i -----BEGIN RSA PRIVATE KEY-----' /etc/vsftpd.conf")


def _expect(**changes: str) -> dict[str, str]:
    return {**ALL_PASS, **changes}


HOSTILE = {
    s.name: s
    for s in (
        Scenario("silent_ssh", "port 22 accepts but never says a word", silent_ssh, {}),
        Scenario(
            "hanging_ss",
            "ss never returns",
            hanging_ss,
            _expect(
                smtp_listening="error",
                pop3_listening="error",
                time_disabled="error",
                telnet_enabled="error",
                ftp_disabled="error",
            ),
        ),
        Scenario(
            "huge_files",
            "a 200 MB mailbox of 100,000 messages, a 100,000-line inetd.conf, a 6.6 MB ftpusers",
            huge_files,
            ALL_PASS,
        ),
        Scenario(
            "shadow_link",
            "bob's mailbox is a symlink to /etc/shadow",
            shadow_link,
            _expect(
                mail_hello_world="fail",
                mail_from_file="fail",
                mail_smtp_by_hand="fail",
                pop3_login="fail",
            ),
        ),
        Scenario(
            "nasty_names",
            "file names and a subject full of shell metacharacters",
            nasty_names,
            _expect(mailbox_permissions="fail"),
        ),
        Scenario("dropping_sshd", "sshd drops every session after 0.3 s", dropping_sshd, {}),
        Scenario(
            "fake_ss",
            "a fake ss hides port 25 and invents port 37",
            fake_ss,
            _expect(smtp_listening="fail", time_disabled="fail"),
        ),
        Scenario(
            "masked_in_files",
            "a private key's first line above an entry, bob's password a word of inetd.conf",
            masked_in_files,
            _expect(time_disabled="fail"),
            {"bob_password": MASKED_PASSWORD},
        ),
        Scenario(
            "control_chars",
            "terminal control sequences and markup in a greeting, host name, subject, process",
            control_chars,
            _expect(smtp_daemon="fail", smtp_greets="fail"),
        ),
    )
}


#: A student's forwarder: every connection to its ports is passed on to the same port of
#: another machine (a classmate's VM), both ways, byte for byte
FORWARDER = """
import socket, sys, threading
target, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(port):
    listener = socket.create_server(("0.0.0.0", port))
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((target, port), timeout=10)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()
for port in ports[1:]:
    threading.Thread(target=serve, args=(port,), daemon=True).start()
serve(ports[0])
"""


def forward_to(vm: VM, target: str, ports: tuple[int, ...] = (22, 23, 25, 110)) -> None:
    """The VM stops its own daemons on ``ports`` and passes every connection to them on to
    ``target`` (a classmate's VM), as a student borrowing a classmate's marks would."""
    vm.sh("pkill -x sshd || true; pkill -x inetd || true; pkill -x sendmail-mta || true")
    for port in ports:
        student.wait_for(vm, f"! ss -Hltn 'sport = :{port}' | grep -q LISTEN")
    listed = " ".join(str(p) for p in ports)
    vm.sh(
        f"setsid /usr/bin/python3 -c {shlex.quote(FORWARDER)} {target} {listed} "
        ">/dev/null 2>&1 </dev/null &"
    )
    for port in ports:
        student.wait_for(vm, f"ss -Hltn 'sport = :{port}' | grep -q LISTEN")


# ----- a VM's words: numbers that are not 0-9, paths meant for a classmate's VM -----

#: A line a student's ps adds: its pid a superscript two (a digit to str.isdigit(), not to int())
ODD_PS_LINE = "  \u00b2     1 sshd sshd: odd"
#: A line a student's ss adds: its port an Arabic-Indic three (int() reads it as 3)
ODD_SS_LINE = "tcp   LISTEN 0      128          0.0.0.0:\u0663        0.0.0.0:*"


def odd_digits(vm: VM) -> None:
    """The lab done right; ps and ss each add a line whose number is not in digits 0-9."""
    do_the_lab(vm)
    ps = f'#!/bin/sh\n/usr/bin/ps "$@"\nprintf "%s\\n" {shlex.quote(ODD_PS_LINE)}\n'
    ss = (
        f'#!/bin/sh\n/usr/bin/ss "$@"\ncase " $* " in *" --listening "*)\n'
        f'  printf "%s\\n" {shlex.quote(ODD_SS_LINE)};; esac\n'
    )
    for name, script in (("ps", ps), ("ss", ss)):
        vm.sh(f"cat > /usr/local/bin/{name} && chmod 755 /usr/local/bin/{name}",
              stdin=script.encode())  # fmt: skip


#: Where one Lab 7 VM's named.conf.local says its zone file is, and where a classmate keeps a
#: file of their own: a command built from the first VM's answers must never read it on the
#: classmate's VM
NAMED_PATH = "/var/backups/notes-of-my-own.db"


def lab7_zone_at_named_path(vm: VM) -> None:
    """Lab 7 done, the zone file kept at NAMED_PATH, its serial not bumped: the checks ask
    named-checkzone about the file named.conf.local names."""
    from labs.lab7.scenarios import INITIAL_SERIAL
    from labs.lab7.scenarios import do_the_lab as lab7_done

    lab7_done(vm, zone_file=NAMED_PATH, serial=INITIAL_SERIAL)


def lab7_zone_at_dev_zero(vm: VM) -> None:
    """Lab 7 done, serial not bumped, then named.conf.local made to name /dev/zero as the zone's
    file (named not told: it serves the zone it loaded): named-checkzone on it never ends."""
    from labs.lab7.scenarios import INITIAL_SERIAL, variant
    from labs.lab7.scenarios import do_the_lab as lab7_done

    lab7_done(vm, serial=INITIAL_SERIAL)
    zone = variant(vm.name).zone
    vm.sh(
        f'printf \'zone "%s" {{ type master; file "/dev/zero"; }};\\n\' {zone} '
        "> /etc/bind/named.conf.local"
    )


def lab7_classmate_with_a_file(vm: VM) -> None:
    """Lab 7 done right, and a file of the student's own at NAMED_PATH, last read long ago."""
    from labs.lab7.scenarios import do_the_lab as lab7_done

    lab7_done(vm)
    vm.sh(
        f"mkdir -p {NAMED_PATH.rsplit('/', 1)[0]} && echo 'my own notes' > {NAMED_PATH} && "
        f"touch -a -d 2001-01-01 {NAMED_PATH}"
    )


# ----- a VM that says too much -----

#: MiB a loud VM adds to each command's output and to its errors: under the 8 MiB the grader
#: keeps of one command, so that what bounds the grading is the evidence limit
LOUD_MIB = 7
_LOUD = (
    f"/usr/bin/head -c {LOUD_MIB}M /dev/zero | /usr/bin/tr '\\0' x\n"
    f"/usr/bin/head -c {LOUD_MIB}M /dev/zero | /usr/bin/tr '\\0' y >&2\n"
)
#: root's login shell: runs what sshd gives it, then says LOUD_MIB more, out and err
LOUD_SHELL = f'#!/bin/bash\n/bin/bash "$@"\nstatus=$?\n{_LOUD}exit $status\n'
#: the tools the checks' commands run (in a batch too, where they run under sh -c)
LOUD_TOOLS = ("ps", "cat", "dd", "find", "ls", "grep")


def loud_shell(vm: VM) -> None:
    """The lab done right, then root's login shell and the tools the checks run (ps, cat, dd,
    find, ls, grep, in /usr/local/bin) made to add 7 MiB to the output and to the errors of
    every command: a grading that kept every answer would hold some hundreds of MB of this one
    VM's words."""
    do_the_lab(vm)
    vm.sh("/usr/bin/cat > /usr/local/bin/loud-sh && chmod 755 /usr/local/bin/loud-sh",
          stdin=LOUD_SHELL.encode())  # fmt: skip
    for tool in LOUD_TOOLS:
        script = f'#!/bin/sh\n/usr/bin/{tool} "$@"\nstatus=$?\n{_LOUD}exit $status\n'
        vm.sh(f"/usr/bin/cat > /usr/local/bin/{tool} && chmod 755 /usr/local/bin/{tool}",
              stdin=script.encode())  # fmt: skip
    vm.sh("sed -i 's#^\\(root:.*:\\)[^:]*$#\\1/usr/local/bin/loud-sh#' /etc/passwd")
