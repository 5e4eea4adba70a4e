"""Mutants derived from a grading's evidence (grader.sim.mutants): pure, no VM."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
