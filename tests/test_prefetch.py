"""The prefetch batch runs for real here (sh and coreutils, as on a VM): every command gives the
same bytes, status and time-out as when it runs on its own."""

from __future__ import annotations

import json
import subprocess

import pytest

from grader.errors import CommandTimeout
from grader.local import LocalExecutor
from grader.prefetch import MAX_COMMANDS, Plan, batch_script, parse_batch

COMMANDS = [
    b"echo hello",
    b"printf 'no newline'",
    b"printf 'a\\000b\\377c'",  # binary, NUL included
    b"echo out; echo err >&2; exit 3",
    b"p='/etc/hostname'; test -e \"$p\" && echo yes",
    b"printf '@@lab-grader 0 1 2\\n'",  # output that looks like the framing
    b"",  # nothing at all
    b"head -c 100000 /dev/zero",
]


def run_alone(command: bytes, timeout: float = 10):
    return LocalExecutor().exec(command, timeout)


def run_batch(commands: list[bytes], timeout: float = 10, limit: int = 8 * 1024 * 1024):
    done = subprocess.run(
        ["sh", "-c", batch_script(commands, timeout).decode()], capture_output=True, timeout=60
    )
    return parse_batch(done.stdout, len(commands), limit, timeout)


def test_a_batch_gives_each_command_exactly_what_it_gives_alone():
    for command, batched in zip(COMMANDS, run_batch(COMMANDS), strict=True):
        alone = run_alone(command)
        assert (batched.exit_status, batched.stdout, batched.stderr, batched.truncated) == (
            alone.exit_status,
            alone.stdout,
            alone.stderr,
            alone.truncated,
        ), command


def test_a_command_that_hangs_times_out_and_the_others_still_run():
    first, slow, last = run_batch([b"echo before", b"sleep 30", b"echo after"], timeout=1)
    assert first.stdout == b"before\n" and last.stdout == b"after\n"
    assert isinstance(slow, CommandTimeout)


def test_output_past_the_limit_is_cut_and_said_to_be():
    (big, small) = run_batch([b"head -c 5000 /dev/zero", b"echo ok"], limit=1000)
    assert big.truncated and big.stdout == b"\0" * 1000
    assert small.stdout == b"ok\n" and not small.truncated


def test_output_that_is_not_whole_is_refused():
    done = subprocess.run(
        ["sh", "-c", batch_script([b"echo a", b"echo b"], 5).decode()],
        capture_output=True,
        check=True,
    )
    with pytest.raises(ValueError):
        parse_batch(done.stdout[:-2], 2, 1000, 5)
    with pytest.raises(ValueError):
        parse_batch(b"garbage\n", 2, 1000, 5)


def test_plan_learns_keeps_order_saves_and_survives_a_damaged_cache(tmp_path):
    path = tmp_path / "plan.json"
    plan = Plan(path)
    plan.learn([b"uname -s", b"ss -l", b"uname -s"])
    plan.save()
    assert Plan(path).commands() == [b"uname -s", b"ss -l"]
    plan.learn(f"echo {n}".encode() for n in range(MAX_COMMANDS + 50))
    assert len(plan.commands()) == MAX_COMMANDS  # bounded
    path.write_text("{not json")
    assert Plan(path).commands() == []
    path.write_text(json.dumps({"commands": [1, 2]}))
    assert Plan(path).commands() == []
    Plan(tmp_path / "missing" / "dir" / "plan.json").save()  # nothing to save, no error
