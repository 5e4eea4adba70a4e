"""Mutants derived from a grading's evidence (grader.sim.mutants): pure, no VM."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import replace
from pathlib import Path

from grader.sim.asked import Asked, asking, recognised
from grader.sim.facts import Facts, Listening, Proc
from grader.sim.kinds import derive_asked, keeping
from grader.sim.kinds.accounts import _EDIT, _FIELD, _PUT_IN, _TAKEN_OUT, _WITHOUT, _edit
from grader.sim.kinds.running import top_of, tops
from grader.sim.mutants import (
    MAX_LINES,
    Mutant,
    Unresolved,
    files_read,
    judge,
    ports_probed,
    relied_on,
    withheld,
)
from grader.sim.wayin import Login, WayIn, pam_stack, way_in
from scenarios.mutants import derive

READ = 'p=%s; if [ -L "$p" ]; then echo symlink; ... dd if="$p" iflag=nofollow ...'
CHECKS = [
    {"id": "ftp_root_denied", "evidence": [{"source": READ % "/etc/ftpusers", "output": ""}]},
    {"id": "vsftpd_anonymous_disabled",
     "evidence": [{"source": READ % "'/etc/vsftpd.conf'", "output": ""}]},
    {"id": "smtp_greets", "evidence": [
        {"source": "SMTP conversation with 198.18.0.7:25", "output": "220 anglia ESMTP"},
        {"source": "ss -Hltn", "output": ""},
    ]},
    {"id": "ssh_only", "evidence": [{"source": "port scan of 198.18.0.7:22", "output": "open"}]},
]  # fmt: skip
FILES = {
    "/etc/ftpusers": "# users kept out\nroot\ndaemon\n",
    "/etc/vsftpd.conf": "anonymous_enable=NO\n#local_enable=YES\nlisten=YES\n",
}


def test_the_files_and_ports_a_grading_relied_on_are_found_with_their_checks():
    assert files_read(CHECKS) == ["/etc/ftpusers", "/etc/vsftpd.conf"]
    assert relied_on(CHECKS, "/etc/ftpusers") == ("ftp_root_denied",)
    assert relied_on(CHECKS, "/etc/vsftpd.conf") == ("vsftpd_anonymous_disabled",)
    assert ports_probed(CHECKS) == {25: ["smtp_greets"], 22: ["ssh_only"]}


def test_each_file_gets_whole_file_and_line_mutants_each_with_its_undo():
    made = {m.id: m for m in derive(CHECKS, FILES.get)}
    assert {"ftpusers:removed", "ftpusers:emptied", "ftpusers:world", "ftpusers:symlink"} <= set(
        made
    )
    assert "ftpusers:2:commented" in made and "ftpusers:1:commented" not in made  # a comment
    assert "(root)" in made["ftpusers:2:commented"].description
    assert "set the other way (anonymous_enable=YES)" in made["vsftpd.conf:1:flipped"].description
    overridden = made["vsftpd.conf:1:overridden"]  # the line kept, the other value said last
    assert overridden.description.endswith("line 1 left, anonymous_enable=YES added at the end")
    assert overridden.apply.endswith("printf '%s\\n' anonymous_enable=YES >> /etc/vsftpd.conf")
    assert "vsftpd.conf:2:commented" not in made  # already a comment: made present instead
    assert made["vsftpd.conf:2:uncommented"].description.endswith("(local_enable=YES)")
    assert "ftpusers:1:uncommented" not in made  # prose stays prose
    assert all(m.undo for k, m in made.items() if not k.startswith("port"))
    assert made["port25:stopped"].undo is None and made["port25:stopped"].read_by == (
        "smtp_greets",
    )


def test_only_derives_from_the_checks_named_and_dedupes():
    made = derive(CHECKS + CHECKS, FILES.get, only=["ftp_root_denied"])
    assert {m.id.split(":")[0] for m in made} == {"ftpusers"}
    assert len({m.id for m in made}) == len(made)


def test_a_generated_file_gets_no_line_mutants():
    big = "\n".join(f"O Option{n}=x" for n in range(MAX_LINES + 1))
    made = derive(CHECKS[:1], lambda path: big)
    assert not [m for m in made if ":commented" in m.id]


def test_the_matrix_names_what_no_mutant_killed_and_what_changed_nothing():
    reference = {"a": "pass", "b": "pass", "c": "pass"}
    graded = {
        "m1": {"a": "fail", "b": "skipped", "c": "pass"},  # b lost through a
        "m2": {"a": "pass", "b": "pass", "c": "error"},  # an error is not a kill
        "m3": {"a": "pass", "b": "pass", "c": "pass"},
    }
    matrix = judge(reference, graded, {"m4": "could not be applied"})
    assert matrix.killed_by("a") == ["m1"] and matrix.killed_by("b") == ["m1"]
    assert matrix.survivors(["a", "b", "c"]) == ["c"]
    assert matrix.gaps() == ["m3"]


def test_a_mailbox_loses_one_message_at_a_time_never_a_line():
    mbox = (
        "From root@anglia Mon Nov 23 10:00:00 2026\nSubject: Hello world\n\nWelcome\n\n"
        "From root@anglia Mon Nov 23 10:01:00 2026\nSubject: Lab 6 notes\n\nNotes\n"
    )
    checks = [{"id": "mail_hello_world", "evidence": [{"source": READ % "/var/mail/bob"}]}]
    made = {m.id: m for m in derive(checks, lambda path: mbox)}
    assert made["bob:message1:removed"].description.endswith("(Hello world)")
    assert made["bob:message2:removed"].description.endswith("(Lab 6 notes)")
    assert not [m for m in made if ":commented" in m or ":uncommented" in m]


def test_a_change_to_a_file_concerns_the_checks_that_name_it_or_its_folder():
    lists = "test -d /var/spool/mail && find -H /var/spool/mail -maxdepth 1 -type f"
    checks = [
        {"id": "mail_hello_world", "evidence": [{"source": READ % "/var/spool/mail/bob"}]},
        {"id": "mailbox_permissions", "evidence": [{"source": lists}]},
        {"id": "ftp_root_denied", "evidence": [{"source": READ % "/etc/ftpusers"}]},
        {"id": "smtp_greets", "evidence": [{"source": "SMTP conversation with 198.18.0.7:25"}]},
    ]
    made = {m.id: m for m in derive(checks, lambda path: "")}
    nothing = derive(checks, lambda path: None)  # no file there: nothing of it to change
    assert [m.id for m in nothing] == ["port25:stopped"]
    assert made["bob:world"].read_by == ("mail_hello_world", "mailbox_permissions")
    assert made["ftpusers:removed"].read_by == ("ftp_root_denied",)  # /etc: not a folder's


def test_what_cuts_the_graders_way_in_is_withheld_and_live_only_what_can_be_undone():
    made = {m.id: m for m in derive(CHECKS, FILES.get)}
    assert "sshd" in (withheld(made["port22:stopped"], live=False) or "")  # not even simulated
    assert withheld(made["port25:stopped"], live=False) is None  # a VM of its own
    assert "cannot be undone" in (withheld(made["port25:stopped"], live=True) or "")
    assert withheld(made["ftpusers:removed"], live=True) is None
    assert all(m.path == "/etc/ftpusers" for k, m in made.items() if k.startswith("ftpusers:"))
    for path in (
        "/root/.ssh/authorized_keys",
        "/root/.bashrc",
        "/root",
        "/etc/shadow",
        "/etc/pam.d/sshd",
        "/etc/ssh/ssh_host_ed25519_key",
        "/usr/sbin/sshd",
        "/etc/nsswitch.conf",
    ):
        assert "way in" in (withheld(Mutant("x", "x", ":", ":", path=path), live=True) or ""), path
    # a root login with a key reads neither sudo's files nor another user's keys
    for path in ("/etc/ftpusers", "/etc/motd", "/etc/shells.d/x", "/var/spool/mail/bob",
                 "/etc/sudoers", "/etc/sudoers.d/bob", "/home/ann/.ssh/authorized_keys",
                 "/root/notes.txt", "/usr/local/bin/tool"):  # fmt: skip
        assert withheld(Mutant("x", "x", ":", ":", path=path), live=True) is None, path


def test_a_protected_path_written_another_way_is_still_withheld():
    for path in (
        "/etc//ssh/ssh_host_ed25519_key",
        "/etc/ssh/../ssh/moduli",
        "/etc/./pam.d/sshd",
        "//etc/ssh/ssh_host_ed25519_key",
        "/etc/ssh/./ssh_host_ed25519_key.pub",
        "/etc/motd/../shadow",
        "/root/.ssh//authorized_keys",
        "/root/x/../.ssh/authorized_keys",
        "/usr//sbin/sshd",
    ):
        why = withheld(Mutant("x", "x", ":", ":", path=path), live=True)
        assert "way in" in (why or ""), path
    why = withheld(Mutant("x", "x", ":", ":", path="/etc/ssh/../ssh/moduli"), live=True)
    assert "/etc/ssh/moduli" in (why or "")  # says what the path is
    # a relative path: where it leads depends on the login's folder
    assert "absolute" in (withheld(Mutant("x", "x", ":", ":", path=".ssh/x"), live=True) or "")
    assert withheld(Mutant("x", "x", ":", ":", path="/etc/ssh/../motd"), live=True) is None


def test_a_path_is_resolved_on_the_vm_before_the_protected_path_test():
    alt = Mutant("x", "x", ":", ":", path="/etc/alt/keys")
    on_the_vm = {"/etc/alt/keys": "/etc/ssh/ssh_host_ed25519_key", "/etc/motd": "/etc/motd"}
    why = withheld(alt, live=True, resolve=on_the_vm.__getitem__)
    assert "way in" in (why or "") and "/etc/ssh/ssh_host_ed25519_key" in (why or "")
    motd = Mutant("x", "x", ":", ":", path="/etc/motd")
    assert withheld(motd, live=True, resolve=on_the_vm.__getitem__) is None

    def unresolved(path: str) -> str:
        raise Unresolved("readlink: command not found")

    why = withheld(motd, live=True, resolve=unresolved)
    assert why is not None and "readlink: command not found" in why
    port = Mutant("port25", "x", ":", None, port=25)  # no path: nothing to resolve
    assert withheld(port, live=False, resolve=unresolved) is None


def _sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)


def test_each_mutant_keeps_its_own_backup_and_its_undo_leaves_it(tmp_path):
    served = tmp_path / "vsftpd.conf"
    served.write_text(FILES["/etc/vsftpd.conf"])
    served.chmod(0o640)
    folder = tmp_path / "backups"
    checks = [{"id": "vsftpd_anonymous_disabled", "evidence": [{"source": READ % served}]}]
    made = derive(checks, lambda path: served.read_text(), backups=str(folder))
    slots = [m.backup for m in made]
    assert all(slots) and len(set(slots)) == len(slots)  # one each
    assert all(s.startswith(f"{folder}/") and "/" not in s[len(str(folder)) + 1 :] for s in slots)
    for mutant in made:
        applied = _sh(mutant.apply)
        assert applied.returncode == 0, (mutant.id, applied.stderr)
        assert Path(mutant.backup).read_text() == FILES["/etc/vsftpd.conf"], mutant.id
        undone = _sh(mutant.undo or "false")
        assert undone.returncode == 0, (mutant.id, undone.stderr)
        assert served.read_text() == FILES["/etc/vsftpd.conf"], mutant.id
        assert oct(served.stat().st_mode & 0o777) == "0o640" and not served.is_symlink()
        assert Path(mutant.backup).exists(), mutant.id  # kept after its undo
    assert sorted(p.name for p in folder.iterdir()) == sorted(Path(s).name for s in slots)
    # a backup already there (an earlier proof's) is never written over
    first = made[0]
    Path(first.backup).write_text("the original, kept by an earlier proof\n")
    again = _sh(first.apply)
    assert again.returncode != 0 and first.backup in again.stderr
    assert Path(first.backup).read_text() == "the original, kept by an earlier proof\n"
    assert served.read_text() == FILES["/etc/vsftpd.conf"]  # and the file is left alone


# ----- what testinfra's modules ask, and the mutants of it -----

EVIDENCE = {  # commands as a grading of the README's tiny pack recorded them
    "id bob": [Asked("user", "bob")],
    "getent passwd bob": [Asked("user", "bob")],
    "id -nG bob": [Asked("user", "bob")],
    "getent group sudo | cut -d':' -f4": [Asked("group", "sudo")],
    "test -d /home/bob": [Asked("file", "/home/bob", "exists")],
    "test -x /etc/rc.d/rc.inetd": [Asked("file", "/etc/rc.d/rc.inetd", "exec")],
    "stat -Lc %U /home/bob": [Asked("file", "/home/bob", "owner")],
    "stat -Lc %a /home/bob": [Asked("file", "/home/bob", "mode")],
    "grep -qs -- '^root$' /etc/ftpusers": [Asked("read", "/etc/ftpusers", "command")],
    "cat -- /etc/issue": [Asked("read", "/etc/issue", "command")],
    "md5sum /etc/issue | cut -d' ' -f1": [Asked("read", "/etc/issue", "command")],
    "ls -1 -q -- /etc/cron.d": [Asked("folder", "/etc/cron.d")],
    "ls -1 -A -- /etc/cron.d": [Asked("folder", "/etc/cron.d")],
    "ps -Aww -o comm:50,pcpu:50,pid:50,pmem:50,lstart:50,args": [Asked("processes")],
    "ps -e -ww -o pid=,ppid=,comm=,args=": [Asked("processes")],
    "/usr/bin/ss --numeric --listening --tcp": [Asked("sockets")],
    "netstat -n -l -t": [Asked("sockets")],
    "dpkg-query -f '${Status}' -W openbsd-inetd": [Asked("package", "openbsd-inetd", "dpkg")],
    "rpm -q --quiet vsftpd 2>&1": [Asked("package", "vsftpd", "rpm")],
    "pacman -Q vsftpd": [Asked("package", "vsftpd", "pacman")],
    "systemctl is-enabled inetd": [Asked("service", "inetd", "enabled")],
    "systemctl is-active inetd": [Asked("service", "inetd", "running")],
    "/usr/sbin/service openbsd-inetd status": [Asked("service", "openbsd-inetd", "running")],
    "find -L /etc/rc?.d/ -name S??inetd": [Asked("service", "inetd", "enabled")],
    "/usr/sbin/sysctl -n net.ipv4.ip_forward": [Asked("sysctl", "net.ipv4.ip_forward")],
    "cat /proc/mounts": [Asked("mounts")],
    "sshd -T": [Asked("command", "sshd -T")],
    READ % "/etc/motd": [Asked("read", "/etc/motd", "toolkit")],
    "the check reads /etc/sudoers": [Asked("read", "/etc/sudoers", "declared")],
}
#: What testinfra asks to choose its modules' implementation: nothing of the lab's
SETUP = ["uname -s", "uname -m", "cat /etc/os-release", "realpath /bin/ps", "command -v ss",
         "test -e /bin/busybox", "test -d /run/systemd/system/", "realpath /sbin/init",
         "command -v command", "which service"]  # fmt: skip


def test_the_commands_testinfras_modules_and_the_toolkit_run_are_recognised():
    for source, expected in EVIDENCE.items():
        assert recognised(source) == expected, source
    for source in SETUP:
        assert recognised(source) == [], source
    checks = [{"id": "a", "evidence": [
        {"source": "id bob", "output": "[exit 0]\nuid=1001(bob)"},
        {"source": "first line of 198.18.0.7:22", "output": "SSH-2.0-OpenSSH_9.2"},  # a probe
        {"source": "uname -s", "output": "[exit 0]\nLinux\n"},
    ]}]  # fmt: skip
    assert [(a.check, a.asked) for a in asking(checks)] == [("a", Asked("user", "bob"))]


class Known(Facts):
    """A reference VM as a test states it: its files, the processes, what listens."""

    def __init__(self, files: dict[str, str], groups: dict[str, list[str]] | None = None,
                 procs: list[Proc] = (), listens: list[Listening] = (),
                 argv0: set[str] = frozenset()) -> None:  # fmt: skip
        super().__init__(lambda script: (1, "", "not asked in this test"))
        self.files, self.groups, self.procs, self.listens = files, groups or {}, procs, listens
        self.argv0 = argv0

    def text(self, path: str) -> str | None:
        return self.files.get(path)

    def groups_of(self, user: str) -> list[str]:
        return self.groups.get(user, [])

    def processes(self) -> list[Proc]:
        return list(self.procs)

    def listening(self) -> list[Listening]:
        return list(self.listens)

    def resolves(self, program: str, exe: str) -> bool:
        return program in self.argv0

    def environ(self, pid: int) -> list[str]:
        return ["PATH=/usr/sbin:/usr/bin", "LANG=C.UTF-8"]


ACCOUNTS = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/bash\n",
    "/etc/group": "root:x:0:\nmail:x:8:bob,ann\nsudo:x:27:\nbob:x:1001:\n",
}


def _checks(*sources: str) -> list[dict]:
    return [{"id": f"c{n}", "evidence": [{"source": s, "output": "[exit 0]\n"}]}
            for n, s in enumerate(sources)]  # fmt: skip


def test_users_and_groups_asked_about_get_the_changes_a_student_could_make():
    facts = Known(ACCOUNTS, {"bob": ["bob", "mail"], "root": ["root"]})
    checks = _checks("id bob", "getent group sudo | cut -d':' -f4", "id guest", "id root")
    made = {m.id: m for m in derive_asked(checks, facts)}
    assert {"user:bob:removed", "user:bob:shell", "user:bob:home", "member:bob:mail:removed",
            "member:bob:sudo:added", "user:guest:added", "group:sudo:removed",
            "user:root:removed"} <= set(made)  # fmt: skip
    assert made["user:bob:shell"].description == "bob's shell made /bin/false (was /bin/bash)"
    # the membership concerns the checks of the user and of the group both, made once
    assert set(made["member:bob:sudo:added"].read_by) == {"c0", "c1"}
    assert made["user:bob:removed"].kept == ("/etc/passwd", "/etc/shadow", "/etc/group",
                                              "/etc/gshadow")  # fmt: skip
    assert made["user:bob:removed"].watch == ("id bob",)  # what should answer otherwise
    # the user the grader logs in as is its way in: never changed
    assert "root is the user the grader logs in as" in (withheld(made["user:root:removed"],
                                                                 live=True) or "")  # fmt: skip
    assert withheld(made["user:bob:removed"], live=True) is None


def test_the_account_databases_are_edited_in_place_by_a_rename_and_put_back(tmp_path):
    group = tmp_path / "group"
    group.write_text(ACCOUNTS["/etc/group"])
    group.chmod(0o644)
    edits = [
        (_PUT_IN, {"g": "sudo", "u": "bob"}, "sudo:x:27:bob"),
        (_TAKEN_OUT, {"g": "mail", "u": "bob"}, "mail:x:8:ann"),
        (_WITHOUT, {"n": "mail"}, None),
        (_FIELD % 3, {"n": "sudo", "v": "42"}, "sudo:x:42:"),
    ]
    for program, names, line in edits:
        group.write_text(ACCOUNTS["/etc/group"])
        done = _sh(_EDIT + _edit(str(group), program, **names))
        assert done.returncode == 0, done.stderr
        lines = group.read_text().splitlines()
        assert (line in lines) if line else not [x for x in lines if x.startswith("mail:")]
        assert len(lines) == 4 - (line is None) and oct(group.stat().st_mode & 0o777) == "0o644"
    assert not list(tmp_path.glob("*.grade-prove-new"))


def test_what_is_kept_is_put_back_by_a_rename_links_and_all(tmp_path):
    kept, link, absent = tmp_path / "passwd", tmp_path / "S01inetd", tmp_path / "made"
    kept.write_text("bob:x:1001\n")
    link.symlink_to("../init.d/inetd")
    save, put_back = keeping([str(kept), str(link), str(absent)], str(tmp_path / "b" / "m1"),
                             str(tmp_path / "b"))  # fmt: skip
    assert _sh(save).returncode == 0
    kept.write_text("changed\n")
    link.unlink()
    absent.write_text("made by a mutant\n")
    undone = _sh(put_back)
    assert undone.returncode == 0, undone.stderr
    assert kept.read_text() == "bob:x:1001\n" and os.readlink(link) == "../init.d/inetd"
    assert not absent.exists()  # it was not there before
    assert _sh(save).returncode != 0  # never over what is kept already


def test_each_daemon_is_stopped_and_started_again_as_it_was_unless_its_title_was_rewritten():
    def proc(pid: int, exe: str, *argv: str, ppid: int = 1, sid: int = 0) -> Proc:
        cmdline = base64.b64encode("\0".join(argv).encode() + b"\0").decode()
        return Proc(pid, ppid, sid or pid, 0, exe.rsplit("/", 1)[-1], exe, argv, "/", "",
                    cmdline)  # fmt: skip

    procs = [
        proc(50, "/usr/sbin/sshd", "sshd: /usr/sbin/sshd [listener]"),
        proc(60, "/usr/sbin/inetd", "/usr/sbin/inetd"),
        proc(61, "/usr/sbin/popa3d", "popa3d", ppid=60, sid=60),  # a child of inetd's
        proc(70, "/usr/sbin/sendmail-mta", "sendmail: MTA: accepting connections"),
        proc(80, "/usr/bin/sleep", "sleep", "3600", sid=-1),  # not of a session of its own
    ]
    procs[-1] = replace(procs[-1], sid=0)
    listens = [Listening("tcp", "0.0.0.0", 22, (50,)), Listening("tcp", "0.0.0.0", 110, (61,)),
               Listening("tcp", "127.0.0.1", 25, (70,))]  # fmt: skip
    facts = Known({}, procs=procs, listens=listens, argv0={"/usr/sbin/inetd"})
    assert [p.pid for p in tops(procs)] == [50, 60, 70]
    assert top_of(61, procs) == procs[1]
    made = {m.id: m for m in derive_asked(_checks("ss --numeric --listening"), facts,
                                          listed=True)}  # fmt: skip
    assert set(made) == {"process:sshd:stopped", "process:sshd:loopback",
                         "process:inetd:stopped", "process:inetd:loopback",
                         "process:sendmail-mta:stopped"}  # fmt: skip
    inetd = made["process:inetd:stopped"]
    assert inetd.undo and "setsid env -i PATH=/usr/sbin:/usr/bin LANG=C.UTF-8 /usr/sbin/inetd" \
        in inetd.undo and "tcp:110" not in inetd.undo  # fmt: skip
    assert "sport = :110" in inetd.undo  # it listens again before the undo is done
    assert made["process:sendmail-mta:stopped"].undo is None  # its arguments rewritten
    assert "cannot be undone" in (withheld(made["process:sendmail-mta:stopped"], True) or "")
    assert "way in" in (withheld(made["process:sshd:stopped"], live=False) or "")
    assert "way in" in (withheld(made["process:sshd:loopback"], live=False) or "")
    assert withheld(made["process:inetd:loopback"], live=True) is None


def test_the_files_a_command_read_are_learned_from_strace_and_mutated_as_read_directly():
    trace = "\n".join([
        '41 openat(AT_FDCWD, "/etc/ld.so.cache", O_RDONLY|O_CLOEXEC) = 3',
        '41 openat(AT_FDCWD, "/etc/sudoers", O_RDONLY) = 4',
        '41 newfstatat(AT_FDCWD, "/etc/sudoers.d/bob", {st_mode=S_IFREG|0440}, 0) = 0',
        '41 openat(AT_FDCWD, "/etc/sudoers.d/missing", O_RDONLY) = -1 ENOENT (No such file)',
        '41 openat(AT_FDCWD, "/usr/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY) = 3',
        '41 openat(AT_FDCWD, "/etc/passwd", O_RDONLY|O_CLOEXEC) = 3',
    ])  # fmt: skip

    def sh(script: str) -> tuple[int, str, str]:
        return (0, trace, "") if "strace" in script else (0, "", "")

    facts = Facts(sh)
    assert facts.traced("visudo -c") == ["/etc/ld.so.cache", "/etc/sudoers",
                                         "/etc/sudoers.d/bob", "/usr/lib/x86_64-linux-gnu/"
                                         "libc.so.6", "/etc/passwd"]  # fmt: skip
    facts.text = {"/etc/sudoers": "root ALL=(ALL) ALL\n", "/etc/sudoers.d/bob": "bob ALL=ALL\n"}.get  # type: ignore[method-assign]
    made = {m.id: m for m in derive_asked(_checks("visudo -c"), facts, listed=True)}
    assert {"sudoers:1:commented", "bob:removed"} <= set(made)
    assert not [m for m in made.values() if m.path.startswith(("/usr", "/etc/passwd", "/etc/ld"))]
    assert made["sudoers:1:commented"].watch == ("visudo -c",)  # equivalent if it says the same
    assert withheld(made["sudoers:1:commented"], live=True) is None  # a root login: no sudo
    assert "sudo" in (withheld(made["sudoers:1:commented"], True, way_in=AS_BOB) or "")


AS_BOB = WayIn(Login("bob", sudo=True), "/home/bob", "bob", ("bob", "sudo"))


def test_the_way_in_is_what_the_graders_login_needs_as_it_logs_in():
    def mutant(path: str = "", *touches: str) -> Mutant:
        return Mutant("x", "x", ":", ":", path=path, touches=touches)

    root = WayIn()
    for allowed in (
        mutant("/etc/sudoers"),
        mutant("/etc/sudoers.d/bob"),
        mutant("/home/bob/.ssh/authorized_keys"),
        mutant("", "member:bob:sudo"),
        mutant("/etc/passwd", "user:bob"),
        mutant("/etc/group", "group:mail"),
    ):
        assert root.why(allowed) is None, allowed  # fmt: skip
    for held in (
        mutant("/etc/passwd", "user:root"),
        mutant("/etc/passwd"),
        mutant("/etc/group", "group:root"),
        mutant("", "process:sshd"),
        mutant("", "port:22"),
        mutant("", "service:ssh"),
    ):
        assert "way in" in (root.why(held) or ""), held  # fmt: skip
    for held in (
        mutant("/etc/sudoers"),
        mutant("/etc/sudoers.d/bob"),
        mutant("/home/bob/.ssh/authorized_keys"),
        mutant("/home/bob/.bashrc"),
        mutant("", "member:bob:sudo"),
        mutant("/etc/group", "group:sudo"),
        mutant("/etc/nologin"),
    ):
        assert "way in" in (AS_BOB.why(held) or ""), held  # fmt: skip
    # sshd's configuration is tried (while a second login opens); what --allow lifts too
    assert root.why(mutant("/etc/ssh/sshd_config")) is None
    assert root.checked(mutant("/etc/ssh/sshd_config.d/x.conf"))
    assert not root.checked(mutant("/etc/motd"))
    keys = mutant("/root/.ssh/authorized_keys")
    owners = WayIn(allowed=("/root/.ssh",))
    assert root.why(keys) and owners.why(keys) is None and owners.checked(keys)


def test_pams_sshd_stack_is_learned_with_its_includes():
    files = {
        "/etc/pam.d/sshd": "@include common-auth\naccount required pam_nologin.so\n"
        "session include common-session\n",
        "/etc/pam.d/common-auth": "auth required pam_unix.so\n",
        "/etc/pam.d/common-session": "session required pam_env.so\n",
    }
    stack = pam_stack(files.get)
    assert stack == ("/etc/pam.d/sshd", "/etc/pam.d/common-auth", "/etc/pam.d/common-session",
                     "/etc/pam.d/other")  # fmt: skip
    learned = way_in(Login(), files.get, lambda db, name: None, lambda user: ["root"])
    assert learned.why(Mutant("x", "x", ":", ":", path="/etc/pam.d/common-auth"))
    assert learned.why(Mutant("x", "x", ":", ":", path="/etc/pam.d/su")) is None
    assert learned.why(Mutant("x", "x", ":", ":", path="/etc/environment"))  # pam_env's


def test_a_daemon_is_known_by_its_folder_and_arguments_as_the_vm_has_them(tmp_path):
    """A daemon started again must start in its own folder (python3 -m http.server serves it):
    the folder read of /proc, without the newline readlink ends it with."""
    folder = tmp_path / "www"
    folder.mkdir()
    daemon = subprocess.Popen(["sleep", "300"], cwd=folder)
    try:

        def ask(script: str) -> tuple[int, str, str]:
            done = _sh(script)
            return done.returncode, done.stdout, done.stderr

        found = [p for p in Facts(ask).processes() if p.pid == daemon.pid]
        assert found and found[0].cwd == str(folder) and found[0].argv == ("sleep", "300")
    finally:
        daemon.kill()
        daemon.wait()


def test_a_link_to_a_folder_removed_is_put_back_and_its_undo_says_so(tmp_path):
    """Lab 6 reads /var/spool/mail, a link to ../mail on Debian: its undo compared the link's
    folder with cmp, which fails on a folder, and the proof stopped there."""
    (tmp_path / "mail").mkdir()
    (tmp_path / "spool").mkdir()
    link = tmp_path / "spool" / "mail"
    link.symlink_to("../mail")
    from grader.sim.mutants import _File

    removed = _File(str(link), ("c",), str(tmp_path / "root" / ".kept")).mutant(
        "mail:removed", f"{link} removed", f"rm -f -- {link}"
    )
    assert _sh(removed.apply).returncode == 0 and not link.is_symlink()
    undone = _sh(removed.undo or "")
    assert undone.returncode == 0, undone.stderr
    assert os.readlink(link) == "../mail"
