"""Running the checks' commands on this machine, for ``grade --local`` (no SSH)."""

from __future__ import annotations

import os
import signal
import subprocess

from grader.errors import CommandTimeout
from grader.ssh import COMMAND_OUTPUT_LIMIT, Completed


class LocalExecutor:
    """Runs a command with /bin/sh, as testinfra's local backend does, but bounded in time
    (the whole process group is killed past the timeout) and in the output kept."""

    address = "localhost"
    host_key = None

    def exec(self, command: bytes, timeout: float, limit: int = COMMAND_OUTPUT_LIMIT) -> Completed:
        process = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise CommandTimeout(f"no answer within {timeout:g} s") from None
        truncated = len(out) > limit or len(err) > limit
        return Completed(process.returncode, out[:limit], err[:limit], truncated)
