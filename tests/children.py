"""Child processes the end-to-end tests start and interrupt themselves."""

from __future__ import annotations

import signal
import subprocess


def interruptible() -> None:
    """In the child: Ctrl-C (SIGINT) as a terminal gives it, even when the tests run where
    it is ignored (a shell's background job: the child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop(process: subprocess.Popen[str]) -> None:
    """Kill a child a test is done with (it did not end as it should), and close its pipes."""
    if process.poll() is None:
        process.kill()
    process.communicate()
