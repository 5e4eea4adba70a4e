"""What one grading holds of a VM's answers is bounded (--evidence-limit, and 8 MiB of one
command): a check that needs more is an error saying so, never a verdict on part of an answer,
and a regrade of the archive decides as the grading did. The commands run for real here."""

from __future__ import annotations

import threading
import time

import pytest

from grader.base.budget import MIB, Deadline, Room
from grader.engine.checkload import Check
from grader.engine.checkrun import run_check
from grader.machine.backend import GraderBackend, answer_text, make_host
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed
from grader.machine.local import LocalExecutor

KIB = 1024


#: Commands that print n KiB on stdout (and as much on stderr)
def loud(n: int) -> str:
    return f"head -c {n * KIB} /dev/zero | tr '\\0' x; head -c {n * KIB} /dev/zero | tr '\\0' y >&2"


class Replayed:
    """An executor that answers from what another grading kept (as a regrade does)."""

    address = "198.51.100.1"

    def __init__(self, answers: dict[bytes, Completed]) -> None:
        self.answers = answers

    def exec(self, command, timeout, limit=COMMAND_OUTPUT_LIMIT, cancel=None):
        return self.answers[command]


def checked(host, command: str):
    return run_check(
        Check("c", lambda host: host.run(command), ("host",), "A check.", "here:1"), {"host": host}
    )


@pytest.mark.parametrize("prefetched", [False, True])
def test_answers_past_the_evidence_limit_are_errors_saying_so(prefetched):
    host = make_host(LocalExecutor(), 10, evidence_limit=100 * KIB)
    commands = [loud(30), "echo small", loud(31), "true", loud(32)]
    if prefetched:
        host.backend.prefetch([c.encode() for c in commands])
        assert host.backend.round_trips == 1
    outcomes = [checked(host, c) for c in commands]
    # 60 KiB, 6 bytes: kept; 60 more do not fit in the 100: that check is an error
    assert [o.status for o in outcomes] == ["pass", "pass", "error", "pass", "error"]
    for cut in (outcomes[2], outcomes[4]):
        assert cut.error_kind == "evidence_limit" and "--evidence-limit" in cut.message
        assert "not decided on part of it" in cut.message
        assert "output cut off" in cut.evidence[0].output  # what was kept of it, said so
    held = sum(len(a.stdout) + len(a.stderr) for _, a in host.backend.answers())
    assert held <= 100 * KIB


def test_an_answer_past_a_commands_limit_is_an_error_never_decided_on_in_part():
    host = make_host(LocalExecutor(), 30, evidence_limit=64 * MIB)
    big = f"head -c {COMMAND_OUTPUT_LIMIT + 1000} /dev/zero; echo yes"
    outcome = checked(host, big)
    assert (outcome.status, outcome.error_kind) == ("error", "output_limit"), outcome
    assert "8 MiB" in outcome.message


def test_a_regrade_decides_as_the_grading_did():
    live = make_host(LocalExecutor(), 10, evidence_limit=100 * KIB)
    commands = [loud(30), loud(31), "echo small"]
    first = [checked(live, c) for c in commands]
    kept = dict(live.backend.answers())
    again = make_host(Replayed(kept), 10)  # a regrade's: no budget, the archive is bounded
    second = [checked(again, c) for c in commands]
    assert [(o.status, o.error_kind, o.message) for o in first] == [
        (o.status, o.error_kind, o.message) for o in second
    ]
    assert first[1].error_kind == "evidence_limit"


def test_evidence_decodes_only_what_it_shows():
    done = Completed(0, b"\xff" * (4 * MIB), b"", False)
    shown = answer_text(done)
    assert len(shown) < 100 * KIB and "more bytes" in shown


def test_without_a_limit_every_answer_is_kept_whole():
    backend = GraderBackend(LocalExecutor(), 10)  # a regrade's, and a plain backend's
    for n in (300, 301):
        done = backend.run(loud(n))
        assert len(done.stdout) == len(done.stderr) == n * KIB


# ----- a class's gradings share their room -----


class Talkative:
    """An executor whose commands print what ``said`` holds for them, and that, as an SSH
    session does, asks ``grow`` for more room when an answer passes its limit."""

    address = "198.51.100.2"
    grows = True

    def __init__(self, said: dict[bytes, int]) -> None:
        self.said = said

    def exec(self, command, timeout, limit=COMMAND_OUTPUT_LIMIT, cancel=None, grow=None):
        size = self.said.get(command, 0)
        while size > limit:
            more = grow() if grow is not None else limit
            if more <= limit:
                return Completed(0, b"x" * (limit + 1), b"", True)
            limit = more
        return Completed(0, b"x" * size, b"", False)


def test_a_grading_takes_the_class_room_only_past_a_little_and_gives_it_back():
    room = Room(total=40 * MIB)
    said = {b"small": 1000, b"big": 6 * MIB}
    host = make_host(Talkative(said), 10, evidence_limit=32 * MIB, room=room)
    assert host.run("small").rc == 0 and room._free == 40 * MIB  # honest answers ask nothing
    assert len(host.run("big").stdout) == 6 * MIB  # past FREE: it took its limit
    assert room._free == 8 * MIB
    host.backend.release()
    assert room._free == 40 * MIB


def test_a_grading_short_of_room_waits_for_it_and_its_deadline_waits_too():
    room = Room(total=32 * MIB)
    said = {b"big": 6 * MIB}
    first = make_host(Talkative(said), 10, evidence_limit=32 * MIB, room=room)
    first.run("big")  # holds the whole room
    deadline = Deadline(60)
    second = make_host(Talkative(said), 10, deadline, evidence_limit=32 * MIB, room=room)
    before = deadline.at
    threading.Timer(0.6, first.backend.release).start()
    started = time.monotonic()
    assert len(second.run("big").stdout) == 6 * MIB
    waited = time.monotonic() - started
    assert waited >= 0.5 and deadline.at >= before + 0.5  # not the VM's time
    second.backend.release()
    assert room._free == 32 * MIB


def test_a_grading_waiting_for_room_stops_when_the_class_is_interrupted():
    room = Room(total=32 * MIB)
    said = {b"big": 6 * MIB}
    first = make_host(Talkative(said), 10, evidence_limit=32 * MIB, room=room)
    first.run("big")
    cancel = threading.Event()
    second = make_host(
        Talkative(said), 10, Deadline(60, cancel), evidence_limit=32 * MIB, room=room
    )
    threading.Timer(0.3, cancel.set).start()
    outcome = checked(second, "big")
    assert (outcome.status, outcome.error_kind) == ("error", "deadline"), outcome
    first.backend.release()
    assert room._free == 32 * MIB
