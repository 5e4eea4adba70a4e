"""What a lab author's checks rely on in the toolkit: a process that died and was not reaped
(a zombie) does not run; a process list line is read whole, its state too.

The tools are fakes put first on PATH and run for real by the grader's own backend on this
machine, as a student's ``ps`` runs on their VM (see tests/test_vm_numbers.py)."""

from __future__ import annotations

import pytest

from grader.toolkit import Unreadable, processes
from tests.test_vm_numbers import fake_tools, host, outcome_of

PS = (
    "    1     0 Ss   init  /sbin/init\n"
    "  200     1 Ss   sshd  sshd: /usr/sbin/sshd\n"
    "  300     1 Z    cron  [cron] <defunct>\n"
    "  301     1 R+   cron  /usr/sbin/cron -f\n"
)


def test_a_zombie_is_not_a_running_process(tmp_path, monkeypatch):
    fake_tools(tmp_path, monkeypatch, ps=PS)
    table = processes(host())
    assert sorted(table) == [1, 200, 301]  # the cron that died unreaped is not there
    assert table[200].state == "Ss" and table[301].comm == "cron"
    assert table[301].args == "/usr/sbin/cron -f"
    every = processes(host(), zombies=True)
    assert every[300].zombie and every[300].comm == "cron" and not every[301].zombie


def test_a_daemon_that_died_unreaped_does_not_run(tmp_path, monkeypatch):
    only_the_zombie = PS.replace("  301     1 R+   cron  /usr/sbin/cron -f\n", "")
    fake_tools(tmp_path, monkeypatch, ps=only_the_zombie)

    def cron_runs(host):
        assert any(p.comm == "cron" for p in processes(host).values()), "cron is not running"

    outcome = outcome_of(cron_runs)
    assert outcome.status == "fail" and outcome.message.startswith("cron is not running")


@pytest.mark.parametrize("state", ["", "z", "Zombie", "S\u00b2", "7"])
def test_a_process_state_that_is_not_one_is_named(state, tmp_path, monkeypatch):
    line = f"  400     1 {state} named named -u bind\n" if state else "  400     1\n"
    fake_tools(tmp_path, monkeypatch, ps=PS + line)
    with pytest.raises(Unreadable, match="line 5"):
        processes(host())


class _Recorded:
    """A VM's answers as an evidence archive made before the process list had STAT holds
    them: the older command only (a regrade's replay raises NeedsLiveVM for any other)."""

    def run(self, command, *args):
        from types import SimpleNamespace

        from grader.evidence.archive import NeedsLiveVM

        if command != "ps -e -ww -o pid=,ppid=,comm=,args=":
            raise NeedsLiveVM(f"needs the live VM: {command} was not run")
        printed = "    1     0 init /sbin/init\n  300     1 cron [cron] <defunct>\n"
        return SimpleNamespace(rc=0, stdout=printed, stderr="", command=command.encode())


def test_a_regrade_of_a_grading_recorded_without_states_reads_what_it_recorded():
    table = processes(_Recorded())
    assert sorted(table) == [1, 300] and table[300].state == ""  # as that grading read it


def test_the_html_evidence_shows_the_command_a_check_asked(tmp_path):
    """A safe read is headed by the file it read (and the lines it picked), not by the shell
    line that reads it safely; a command a check ran is shown as it asked it."""
    from grader.report.render.html import asked
    from grader.toolkit import read_file, read_lines
    from tests.test_vm_numbers import outcome_of

    path = tmp_path / "motd"
    path.write_text("Welcome\n")

    def check(host):
        read_file(host, str(path))
        read_lines(host, str(path), "^Wel")
        host.run("getent passwd root")

    sources = [e.source for e in outcome_of(check).evidence]
    shown = [asked(s) for s in sources]
    assert shown == [f"read {path}", f"read {path}, the lines matching ^Wel", "getent passwd root"]
    assert all("dd if=" in s for s in sources[:2])  # the report's JSON keeps the whole line
