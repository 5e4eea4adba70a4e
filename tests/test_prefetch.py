"""The prefetch batch runs for real here (sh and coreutils, as on a VM): every command gives the
same bytes, status and time-out as when it runs on its own, and a command that tampers with the
batch (another command's files, forged frames, writes into the batch's output) can only make
the commands it touched be asked live: never give one command another's answer."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time

import pytest

from grader.base.errors import CommandTimeout
from grader.machine.local import LocalExecutor
from grader.machine.prefetch import MAX_COMMANDS, Plan, batch_script, new_nonce, parse_batch

COMMANDS = [
    b"echo hello",
    b"printf 'no newline'",
    b"printf 'a\\000b\\377c'",  # binary, NUL included
    b"echo out; echo err >&2; exit 3",
    b"p='/etc/hostname'; test -e \"$p\" && echo yes",
    b"printf '\\n@@lab-grader 0 1 2\\n'",  # output that looks like the framing
    b"",  # nothing at all
    b"head -c 100000 /dev/zero",
]


def run_alone(command: bytes, timeout: float = 10):
    return LocalExecutor().exec(command, timeout)


def run_batch(commands: list[bytes], timeout: float = 10, limit: int = 8 * 1024 * 1024):
    """The results by command index (a command left out is to be asked live)."""
    nonce = new_nonce()
    done = subprocess.run(
        ["sh", "-c", batch_script(commands, timeout, nonce, limit).decode()],
        capture_output=True,
        timeout=60,
    )
    return parse_batch(done.stdout, len(commands), limit, timeout, nonce)


def test_a_batch_gives_each_command_exactly_what_it_gives_alone():
    results = run_batch(COMMANDS)
    assert sorted(results) == list(range(len(COMMANDS)))
    for index, command in enumerate(COMMANDS):
        batched, alone = results[index], run_alone(command)
        assert (batched.exit_status, batched.stdout, batched.stderr, batched.truncated) == (
            alone.exit_status,
            alone.stdout,
            alone.stderr,
            alone.truncated,
        ), command


def test_a_command_that_hangs_times_out_and_the_others_still_run():
    results = run_batch([b"echo before", b"sleep 30", b"echo after"], timeout=1)
    first, slow, last = results[0], results[1], results[2]
    assert first.stdout == b"before\n" and last.stdout == b"after\n"
    assert isinstance(slow, CommandTimeout)


def test_output_past_the_limit_is_cut_and_said_to_be():
    results = run_batch([b"head -c 5000 /dev/zero", b"echo ok"], limit=1000)
    big, small = results[0], results[1]
    assert big.truncated and big.stdout == b"\0" * 1000
    assert small.stdout == b"ok\n" and not small.truncated


def test_output_that_is_not_whole_keeps_only_what_frames():
    nonce = new_nonce()
    done = subprocess.run(
        ["sh", "-c", batch_script([b"echo a", b"echo b"], 5, nonce).decode()],
        capture_output=True,
        check=True,
    )
    assert sorted(parse_batch(done.stdout, 2, 1000, 5, nonce)) == [0, 1]
    cut = parse_batch(done.stdout[:-2], 2, 1000, 5, nonce)  # cut short: b is asked live
    assert sorted(cut) == [0] and cut[0].stdout == b"a\n"
    assert parse_batch(b"garbage\n", 2, 1000, 5, nonce) == {}
    assert parse_batch(done.stdout, 2, 1000, 5, new_nonce()) == {}  # another batch's frames


#: The batch's own shell (its command line holds the nonce) is the parent of `timeout`, whose
#: child `sh -c` runs the command: a command finds the nonce as root on a VM could.
FIND_NONCE = (
    "p=$(ps -o ppid= -p $$ | tr -d ' '); g=$(ps -o ppid= -p $p | tr -d ' '); "
    "n=$(tr '\\0' ' ' < /proc/$g/cmdline | grep -o '@@lab-grader [0-9a-f]*' | head -1 "
    "| cut -d' ' -f2)"
)


def test_a_command_forging_another_commands_record_is_never_believed():
    def forging(content: str) -> bytes:
        return (
            FIND_NONCE + f"; printf '\\n@@lab-grader %s 2 0\\n{content}\\n"
            '@@lab-grader %s end 2\\n\' "$n" "$n"'
        ).encode()

    # whatever it prints is its own output, read by its size: never a frame
    for forged in ("forged, longer", "thre3\\n"):
        results = run_batch([b"echo one", forging(forged), b"echo three"])
        assert results[1].stderr == b""  # it did find the nonce
        assert results[0].stdout == b"one\n"
        assert b"@@lab-grader" in results[1].stdout  # its own output, whatever it holds
        assert results[2].stdout == b"three\n"  # the real answer, never the forged one


def test_a_command_writing_into_the_batchs_output_or_others_files_spoils_only_those():
    # command 1 leaves a process behind that writes into the batch's own output and rewrites
    # the files of the commands after it, while they run
    saboteur = (
        "d=$(dirname $(readlink /proc/$$/fd/1)); p=$(ps -o ppid= -p $$ | tr -d ' '); "
        "o=/proc/$(ps -o ppid= -p $p | tr -d ' ')/fd/1; "
        "end=$(( $(date +%s) + 2 )); ( while [ $(date +%s) -lt $end ]; do "
        "printf 'junk' >> \"$o\"; "
        'for f in "$d"/*; do printf x >> "$f"; done; sleep 0.05; done ) >/dev/null 2>&1 &'
    )
    commands = [b"echo before", saboteur.encode(), b"sleep 0.5; echo during", b"sleep 8; echo ok"]
    words = {0: b"before", 2: b"during", 3: b"ok"}
    results = run_batch(commands)
    # what the saboteur wrote to after its record went out no longer frames (asked live); the
    # last command's record went out after the saboteur stopped (it stops by the clock, 2 s
    # after command 1 ran, even when a loaded machine starts its loop late; the last command
    # waits 8 s, time for a saboteur slowed by a machine running two suites at once): it frames
    assert 3 in results
    for index, result in results.items():
        if index == 1:
            continue
        # root on the VM can write into a command's own files while it runs (as it could fake
        # any command), but a record is only ever read as its own command's: never out of step
        assert words[index] in result.stdout
        assert not any(w in result.stdout for i, w in words.items() if i != index)


MACHINE = {"student": "s1", "host": "198.18.0.10", "port": 22, "user": "root", "host_key": "k1"}


def test_a_plan_is_kept_for_its_vm_alone_privately_bounded_and_survives_damage(tmp_path):
    folder = tmp_path / "plan-abc"
    plan = Plan(folder)
    plan.learn(MACHINE, [b"uname -s", b"named-checkzone z /var/backups/x"])
    assert Plan(folder).kept(MACHINE) == [b"uname -s", b"named-checkzone z /var/backups/x"]
    for other in ({"student": "s2"}, {"host": "198.18.0.11"}, {"host_key": "k2"}):
        assert Plan(folder).kept({**MACHINE, **other}) == []  # a classmate, or another machine
    (path,) = folder.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds what the VM said
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    plan.learn(MACHINE, (f"echo {n}".encode() for n in range(MAX_COMMANDS + 50)))
    assert len(Plan(folder).kept(MACHINE)) == MAX_COMMANDS  # bounded, and only the last grading's
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "vm": {**MACHINE, "student": "s2"}}))
    assert Plan(folder).kept(MACHINE) == []  # a file that is not this VM's: never run on it
    path.write_text("{not json")
    assert Plan(folder).kept(MACHINE) == []
    path.write_text(json.dumps({"vm": MACHINE, "commands": [1, "ok"]}))
    assert Plan(folder).kept(MACHINE) == [b"ok"]
    Plan(None).learn(MACHINE, [b"x"])  # no cache: nothing kept, no error
    assert Plan(None).kept(MACHINE) == []


def test_a_command_that_prints_without_end_is_stopped_on_the_vm_at_the_bound():
    started = time.monotonic()
    results = run_batch([b"cat /dev/zero", b"echo ok"], timeout=20, limit=1000)
    assert time.monotonic() - started < 10  # stopped at the bound, not at its time-out
    assert results[0].truncated and results[0].stdout == b"\0" * 1000
    assert results[1].stdout == b"ok\n" and not results[1].truncated


@pytest.mark.parametrize("ending", ["HUP", "INT", "TERM", "PIPE"])
def test_the_batchs_folder_is_removed_however_the_batch_ends(ending, tmp_path):
    folder = tmp_path / "tmp"
    folder.mkdir()
    marker = tmp_path / "ran-on"
    script = batch_script([b"sleep 1", f"touch {marker}".encode()], 5, new_nonce())
    with subprocess.Popen(
        ["sh", "-c", script.decode()],
        env={**os.environ, "TMPDIR": str(folder)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as batch:
        assert batch.stdout is not None
        if ending == "PIPE":  # the grader stopped reading (it gave up on the batch)
            batch.stdout.close()
        else:
            time.sleep(0.5)  # the first command under way
            batch.send_signal(getattr(signal, f"SIG{ending}"))
        batch.wait(timeout=30)
    if ending != "PIPE":
        assert not marker.exists()  # it ended after the command under way
    assert list(folder.iterdir()) == []
