"""Small promises of the grading path that need no VM: messages stay sentences, shared files
get the usual mode while evidence stays private."""

from __future__ import annotations

import os
import stat

from grader.base.files import write_atomic
from grader.engine.checkload import Check
from grader.engine.checkrun import MESSAGE_LIMIT, run_check


def test_a_huge_message_is_clipped_to_a_sentence():
    def huge() -> None:
        raise AssertionError("x" * 5_000_000)

    outcome = run_check(Check("huge", huge, (), "A check.", "here:1"), {})
    assert outcome.status == "fail"
    assert len(outcome.message) < MESSAGE_LIMIT + 100
    assert outcome.message.endswith(f"({5_000_000 - MESSAGE_LIMIT} more characters)")


def test_files_for_people_follow_the_umask_and_evidence_stays_private(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "index.html", "<p>class</p>")
        write_atomic(tmp_path / "s1.evidence.json.gz", b"...", private=True)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "index.html").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "s1.evidence.json.gz").stat().st_mode) == 0o600


def test_a_command_asked_three_times_is_one_piece_of_evidence():
    from grader.base import evidence

    def check():
        for _ in range(3):  # a memoized answer, asked by three helpers
            evidence.record("ps -eo pid,comm", "1 init")
        evidence.record("ps -eo pid,comm", "1 init\n2 sshd")  # a new answer is new evidence

    outcome = run_check(Check("x", check, (), "A check.", "here:1"), {})
    assert [e.output for e in outcome.evidence] == ["1 init", "1 init\n2 sshd"]


def test_an_interface_that_goes_away_while_looked_at_is_passed_over():
    """grade --local's own address: an interface listed, then gone before its addresses are
    read (testinfra asserts on `ip addr show`), is no internal error."""
    from grader.machine.local import own_address

    class Interface:
        def __init__(self, name: str) -> None:
            self.name = name

        @property
        def addresses(self) -> list[str]:
            assert self.name != "gone", "Unexpected exit code 1"  # as testinfra does
            return ["fe80::1", "198.18.0.9"] if self.name == "eth0" else []

    class Interfaces:
        def __call__(self, name: str) -> Interface:
            return Interface(name)

        def names(self) -> list[str]:
            return ["lo", "gone", "eth0"]

    class Host:
        interface = Interfaces()

    assert own_address(Host()) == "198.18.0.9"
