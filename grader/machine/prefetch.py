"""Many remote commands in one SSH exec, and the plan of which to run.

Each testinfra property is a command, and each command over SSH is a round trip and a new
session on the VM (sshd forks, a shell starts): most of a grading's cost. A host's checks ask the
same commands host after host, so the grader learns them (the ``Plan``) and, before the checks
run, runs them all in one exec (``batch_script``): each command under ``sh -c`` and coreutils
``timeout``, with its stdout and stderr in files of its own; then the statuses, the files'
sizes, and the files, each under a header naming it. The results go into the backend's memo;
whatever a check asks that was not prefetched runs live. A check sees the same bytes either way,
so the marks do not change.

A student is root on the VM, and the batch's own commands run there: one may rewrite another's
files, print what looks like a frame, or write into the batch's output. Each file is read by
the size taken before it was printed (what it printed is content, whatever it looks like), and
only while each header sits exactly where the sizes put it: from the first file out of step
on, nothing is read, and those commands are asked live. No file is ever read as another's.
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

from grader.base.errors import CommandTimeout
from grader.base.files import write_atomic
from grader.machine.execution import Completed

MARK = "@@lab-grader"
SETUP_FAILED = 97  # the VM lacks timeout or mktemp: no batch, everything runs live
TIMED_OUT = (124, 137)  # timeout's status when the command ran out of time (137: killed)
MAX_COMMANDS = 400  # a plan never grows past this


def new_nonce() -> str:
    return secrets.token_hex(8)


def batch_script(commands: Sequence[bytes], timeout: float, nonce: str) -> bytes:
    """A POSIX shell script that runs each command (under ``sh -c`` and coreutils ``timeout``)
    with its stdout and stderr in files of its own, then prints one line of exit statuses, the
    files' sizes (one ``stat``) and the files themselves, each under its own header (one GNU
    ``tail -v``): a few processes per batch, nothing per byte, nothing per command but the
    command itself."""
    seconds = max(1, round(timeout))
    lines = [
        f"command -v timeout >/dev/null 2>&1 && d=$(mktemp -d 2>/dev/null) || exit {SETUP_FAILED}",
        "trap 'rm -rf \"$d\"' EXIT",
        's=""',
        "{",  # while the commands run, the batch's own output is /dev/null: a process a
        # command leaves behind that writes to it (/proc/PID/fd/1) cannot come before the header
        ":",  # (a group is never empty)
    ]
    for index, command in enumerate(commands):
        lines.append(
            f"timeout -k 1 {seconds} sh -c {shlex.quote(command.decode())} "
            f'>"$d/{index}o" 2>"$d/{index}e" </dev/null; s="$s $?"'
        )
    files = " ".join(f'"$d/{n}o" "$d/{n}e"' for n in range(len(commands)))
    lines += [
        "} >/dev/null",
        f'printf \'{MARK} {nonce} statuses%s\\n{MARK} {nonce} dir %s\\n\' "$s" "$d"',
        f"stat -c %s {files}",
        f"printf '{MARK} {nonce} files\\n'",
        f"tail -v -c +1 {files}",
    ]
    return ("\n".join(lines) + "\n").encode()


def parse_batch(
    output: bytes, count: int, limit: int, timeout: float, nonce: str
) -> dict[int, Completed | CommandTimeout]:
    """The results of a batch by command index. Each file must sit under its own header, as
    long as its size said, with the next header right after: the first place where that does
    not hold ends what is read, and the commands from there on run live."""
    mark = re.escape(f"{MARK} {nonce} ".encode())
    # an exit status is 0-255, a size at most 20 digits (bytes patterns: \d is 0-9 only):
    # whatever else the VM's shell or stat printed is no batch, never a number to crash on
    head = re.search(
        rb"\A" + mark + rb"statuses((?: [0-9]{1,3}){%d})\n" % count + mark
        + rb"dir (/[^\n]+)\n((?:[0-9]{1,20}\n){%d})" % (2 * count) + mark + rb"files\n",
        output,
    )  # fmt: skip
    if head is None:
        return {}  # not a batch's output: every command runs live
    statuses = [int(n) for n in head.group(1).split()]
    folder = head.group(2)
    sizes = [int(n) for n in head.group(3).split()]
    position, contents, confirmed = head.end(), [], 0
    for n in range(2 * count):
        name = folder + b"/%d%s" % (n // 2, b"oe"[n % 2 : n % 2 + 1])
        header = (b"\n" if n else b"") + b"==> " + name + b" <==\n"
        if output[position : position + len(header)] != header:
            break  # out of step from here (a file changed since its size was taken)
        confirmed = n  # the file before this header ended where its size said
        position += len(header)
        contents.append(output[position : position + sizes[n]])
        position += sizes[n]
    else:
        confirmed = 2 * count if position == len(output) else 2 * count - 1
    results: dict[int, Completed | CommandTimeout] = {}
    for index in range(confirmed // 2):  # both of its files confirmed
        out_size, err_size = sizes[2 * index], sizes[2 * index + 1]
        if statuses[index] in TIMED_OUT:
            results[index] = CommandTimeout(f"no answer within {timeout:g} s")
            continue
        out, err = contents[2 * index][:limit], contents[2 * index + 1][:limit]
        results[index] = Completed(statuses[index], out, err, out_size > limit or err_size > limit)
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
