"""Many remote commands in one SSH exec, and the plan of which to run.

Each testinfra property is a command, and each command over SSH is a round trip and a new
session on the VM (sshd forks, a shell starts): most of a grading's cost. A host's checks ask the
same commands host after host, so the grader learns them (the ``Plan``) and, before the checks
run, runs them all in one exec (``batch_script``): each command under ``sh -c`` and coreutils
``timeout``, with its output in files of its own, then one framed record of its exit status,
stdout and stderr, written out before the next command starts. The results go into the
backend's memo; whatever a check asks that was not prefetched runs live. A check sees the same
bytes either way, so the marks do not change.

A student is root on the VM, and the batch's own commands run there: one may rewrite another's
files, print what looks like a frame, or write into the batch's output. So a record counts only
when it frames exactly (header, the sizes it announced, then its own trailer), and only when it
is the one record of its command: anything else leaves that command out of the prefetch, to be
asked live. No record is ever read as another command's.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shlex
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from grader.errors import CommandTimeout
from grader.execution import Completed
from grader.files import write_atomic

MARK = "@@lab-grader"
SETUP_FAILED = 97  # the VM lacks timeout or mktemp: no batch, everything runs live
TIMED_OUT = (124, 137)  # timeout's status when the command ran out of time (137: killed)
MAX_COMMANDS = 400  # a plan never grows past this


def new_nonce() -> str:
    return secrets.token_hex(8)


def batch_script(commands: Sequence[bytes], timeout: float, nonce: str) -> bytes:
    """A POSIX shell script that runs each command (under ``sh -c`` and coreutils ``timeout``)
    with its stdout and stderr in files, then prints its record: a header with the exit status
    and the files' sizes, the files, and a trailer."""
    seconds = max(1, round(timeout))
    lines = [
        f"command -v timeout >/dev/null 2>&1 && d=$(mktemp -d 2>/dev/null) || exit {SETUP_FAILED}",
        "trap 'rm -rf \"$d\"' EXIT",
    ]
    for index, command in enumerate(commands):
        out, err = f'"$d/{index}o"', f'"$d/{index}e"'
        lines += [
            f"timeout -k 1 {seconds} sh -c {shlex.quote(command.decode())} "
            f">{out} 2>{err} </dev/null; s=$?",
            f"printf '\\n{MARK} {nonce} {index} %s %s %s\\n' \"$s\" "
            f'"$(stat -c %s {out})" "$(stat -c %s {err})"',
            f"cat {out} {err}; printf '\\n{MARK} {nonce} end {index}\\n'",
        ]
    return ("\n".join(lines) + "\n").encode()


def parse_batch(
    output: bytes, count: int, limit: int, timeout: float, nonce: str
) -> dict[int, Completed | CommandTimeout]:
    """The results of a batch by command index: each command whose record frames exactly and
    is its only record. A command without one is not here (it runs live)."""
    header = re.compile(
        rb"\n" + re.escape(f"{MARK} {nonce} ".encode()) + rb"(\d+) (\d+) (\d+) (\d+)\n"
    )
    found: dict[int, list[Completed | CommandTimeout]] = {}
    for match in header.finditer(output):
        index, status, out_size, err_size = (int(g) for g in match.groups())
        if index >= count:
            continue
        start = match.end()
        end = start + out_size + err_size
        trailer = f"\n{MARK} {nonce} end {index}\n".encode()
        if output[end : end + len(trailer)] != trailer:
            continue  # not framed as it said: never read as anything
        out = output[start : start + min(out_size, limit)]
        err = output[start + out_size : start + out_size + min(err_size, limit)]
        if status in TIMED_OUT:
            result: Completed | CommandTimeout = CommandTimeout(f"no answer within {timeout:g} s")
        else:
            result = Completed(status, out, err, out_size > limit or err_size > limit)
        found.setdefault(index, []).append(result)
    return {index: results[0] for index, results in found.items() if len(results) == 1}


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
