"""Many remote commands in one SSH exec, and what to run that way on each VM.

Each testinfra property is a command, and each command over SSH is a round trip and a new
session on the VM (sshd forks, a shell starts): most of a grading's cost. So before the checks
run, the commands they are known to ask run in one exec (``batch_script``): each command under
``sh -c`` and coreutils ``timeout``, with its stdout and stderr in files of its own; then the
statuses, the files' sizes, and the files, each under a header naming it. The results go into
the backend's memo; whatever a check asks that was not prefetched runs live. A check sees the
same bytes either way, so the marks do not change.

Which commands: what the lab's checks ask of a VM that says nothing (the runner's dry run:
the lab's definition and the student's own variables, no VM's words), and what this VM's own
checks asked when it was last graded (the ``Plan``, kept per VM and run on that VM alone). A
command built from one VM's answers (a path its configuration names) never runs on another.

A student is root on the VM, and the batch's own commands run there: one may rewrite another's
files, print what looks like a frame, or write into the batch's output. Each file is read by
the size taken before it was printed (what it printed is content, whatever it looks like), and
only while each header sits exactly where the sizes put it: from the first file out of step
on, nothing is read, and those commands are asked live. No file is ever read as another's.
On the VM, each command may write no more than the grader keeps of it (``ulimit -f``: a command
that prints without end stops at the bound, not when the VM's disk is full), and the batch's
folder is removed when the batch ends, however it ends (an exit, a signal, its output closed).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import secrets
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from grader.base.errors import CommandTimeout
from grader.base.files import write_atomic
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed

MARK = "@@lab-grader"
SETUP_FAILED = 97  # the VM lacks timeout or mktemp: no batch, everything runs live
TIMED_OUT = (124, 137)  # timeout's status when the command ran out of time (137: killed)
MAX_COMMANDS = 400  # a VM's plan never holds more
#: The batch's own signals: each ends it (so its EXIT trap removes its folder) with the status a
#: shell gives a death by that signal; a batch cut off by the grader's time-out gets HUP or PIPE
_SIGNALS = "trap 'exit 129' HUP; trap 'exit 130' INT; trap 'exit 141' PIPE; trap 'exit 143' TERM"


def new_nonce() -> str:
    return secrets.token_hex(8)


def batch_script(
    commands: Sequence[bytes], timeout: float, nonce: str, limit: int = COMMAND_OUTPUT_LIMIT
) -> bytes:
    """A POSIX shell script that runs each command (under ``sh -c`` and coreutils ``timeout``)
    with its stdout and stderr in files of its own, each file bounded on the VM to a little more
    than ``limit`` bytes (``ulimit -f``, in a subshell of the command's own: past it the command
    is stopped, its answer cut, and the grader says so), then prints one line of exit statuses,
    the files' sizes (one ``stat``) and the files themselves, each under its own header (one
    GNU ``tail -v``): a few processes per batch, nothing per byte, two per command. The folder
    is removed on exit, and on HUP, INT, TERM and PIPE (once the command under way ends)."""
    seconds = max(1, round(timeout))
    blocks = limit // 512 + 1  # ulimit -f counts 512-byte blocks: a file may hold limit + 1
    lines = [
        f"command -v timeout >/dev/null 2>&1 && d=$(mktemp -d 2>/dev/null) || exit {SETUP_FAILED}",
        "trap 'rm -rf \"$d\"' EXIT",
        _SIGNALS,
        's=""',
        "{",  # while the commands run, the batch's own output is /dev/null: a process a
        # command leaves behind that writes to it (/proc/PID/fd/1) cannot come before the header
        ":",  # (a group is never empty)
    ]
    for index, command in enumerate(commands):
        lines.append(
            f"(ulimit -f {blocks} 2>/dev/null; exec timeout -k 1 {seconds} sh -c "
            f'{shlex.quote(command.decode())} >"$d/{index}o" 2>"$d/{index}e" </dev/null); '
            's="$s $?"'
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
    """What each VM's own checks asked when it was last graded, kept for that VM alone (one
    file a VM, readable by you only: the commands hold what the VM said and the student's
    variables) and prefetched on it, and on no other, the next time it is graded.

    ``vm`` names the machine: the student, where it is reached (host, port, user) and its host
    key, so a VM rebuilt, or another machine given the address, never gets another's commands.
    A damaged or missing file is only a slower grading."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder

    def _file(self, vm: Mapping[str, Any]) -> Path | None:
        if self.folder is None:
            return None
        name = hashlib.sha256(json.dumps(vm, sort_keys=True).encode()).hexdigest()[:32]
        return self.folder / f"{name}.json"

    def kept(self, vm: Mapping[str, Any]) -> list[bytes]:
        """The commands ``vm``'s checks asked when it was last graded (none when unknown)."""
        path = self._file(vm)
        if path is None:
            return []
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            document = json.loads(path.read_text())
            if document["vm"] == dict(vm):  # learned on this VM, not one whose name hashes alike
                found = [c.encode() for c in document["commands"] if isinstance(c, str)]
                return found[:MAX_COMMANDS]
        return []

    def learn(self, vm: Mapping[str, Any], commands: Iterable[bytes]) -> None:
        """Keep what ``vm``'s checks asked (its first MAX_COMMANDS), for ``vm`` alone."""
        path = self._file(vm)
        if path is None:
            return
        texts = []
        for command in itertools.islice(commands, MAX_COMMANDS):
            try:
                texts.append(command.decode())
            except UnicodeDecodeError:
                continue
        with contextlib.suppress(OSError):  # an optimisation: grading goes on without it
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"vm": dict(vm), "commands": texts}), private=True)

    def save(self) -> None:
        """Nothing is left to save: each VM's commands are written as they are learned."""
