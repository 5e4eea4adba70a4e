"""Many remote commands in one SSH exec, and the plan of which to run.

Each testinfra property is a command, and each command over SSH is a round trip and a new
session on the VM (sshd forks, a shell starts): most of a grading's cost. A host's checks ask the
same commands host after host, so the grader learns them (the ``Plan``) and, before the checks
run, runs them all in one exec (``batch_script``): each command under the VM's own login shell
and coreutils ``timeout``, its stdout, stderr and exit status framed so they parse back exactly.
The results go into the backend's memo; whatever a check asks that was not prefetched runs live.
A check sees the same bytes either way, so the marks do not change.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from grader.errors import CommandTimeout
from grader.files import write_atomic
from grader.ssh import Completed

MARK = b"@@lab-grader"
SETUP_FAILED = 97  # the VM lacks timeout or mktemp: no batch, everything runs live
TIMED_OUT = (124, 137)  # timeout's status when the command ran out of time (137: killed)
MAX_COMMANDS = 400  # a plan never grows past this


def batch_script(commands: Sequence[bytes], timeout: float) -> bytes:
    """A POSIX shell script that runs each command (under ``sh -c`` and coreutils ``timeout``)
    with its stdout and stderr in files, then prints one line of exit statuses, the files'
    sizes, and the files themselves: a few processes per command, nothing per byte."""
    seconds = max(1, round(timeout))
    lines = [
        f"command -v timeout >/dev/null 2>&1 && d=$(mktemp -d 2>/dev/null) || exit {SETUP_FAILED}",
        "trap 'rm -rf \"$d\"' EXIT",
        's=""',
    ]
    for index, command in enumerate(commands):
        lines.append(
            f"timeout -k 1 {seconds} sh -c {shlex.quote(command.decode())} "
            f'>"$d/{index}o" 2>"$d/{index}e" </dev/null; s="$s $?"'
        )
    files = " ".join(f'"$d/{n}o" "$d/{n}e"' for n in range(len(commands)))
    lines.append(f'echo "{MARK.decode()}$s"; stat -c %s {files}; cat {files}')
    return ("\n".join(lines) + "\n").encode()


def parse_batch(
    output: bytes, count: int, limit: int, timeout: float
) -> list[Completed | CommandTimeout]:
    """The results of a batch, in command order; ValueError when the output is not whole."""
    lines = output.split(b"\n", 2 * count + 1)
    if len(lines) < 2 * count + 2 or not lines[0].startswith(MARK):
        raise ValueError("batch output is not whole")
    statuses = [int(s) for s in lines[0][len(MARK) :].split()]
    sizes = [int(size) for size in lines[1 : 2 * count + 1]]
    if len(statuses) != count:
        raise ValueError("batch output is not whole")
    data, position = lines[2 * count + 1], 0
    results: list[Completed | CommandTimeout] = []
    for index, status in enumerate(statuses):
        out_size, err_size = sizes[2 * index], sizes[2 * index + 1]
        out = data[position : position + min(out_size, limit)]
        err = data[position + out_size : position + out_size + min(err_size, limit)]
        position += out_size + err_size
        if position > len(data):
            raise ValueError("batch output cut short")
        if status in TIMED_OUT:
            results.append(CommandTimeout(f"no answer within {timeout:g} s"))
        else:
            results.append(Completed(status, out, err, out_size > limit or err_size > limit))
    return results


class Plan:
    """The commands a rubric's checks ask, learned from the hosts graded, kept per rubric."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._commands: dict[bytes, None] = {}
        self._lock = threading.Lock()
        if path is not None and path.exists():
            # a damaged cache is only a slower start
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                self.learn(c.encode() for c in json.loads(path.read_text())["commands"])

    def commands(self) -> list[bytes]:
        with self._lock:
            return list(self._commands)

    def learn(self, commands: Iterable[bytes]) -> None:
        with self._lock:
            for command in commands:
                if len(self._commands) >= MAX_COMMANDS:
                    break
                self._commands.setdefault(command, None)

    def save(self) -> None:
        if self.path is None:
            return
        texts = []
        for command in self.commands():
            try:
                texts.append(command.decode())
            except UnicodeDecodeError:
                continue
        with contextlib.suppress(OSError):  # an optimisation: grading goes on without it
            write_atomic(self.path, json.dumps({"commands": texts}))
