"""Running one command on the machine being graded: what every executor returns.

Executors: over SSH (``ssh.Session``), on this machine (``local.LocalExecutor``), from an
evidence archive (``archive.ReplayExecutor``), or none at all (``Silent``, for a dry run). Each
bounds a command in time and in output, and stops waiting at once when the grading is
cancelled.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: Largest stdout (and stderr) kept from one command; beyond it the command is cut off.
COMMAND_OUTPUT_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Completed:
    exit_status: int
    stdout: bytes
    stderr: bytes
    truncated: bool  # output went past the limit and the command was cut off


class Executor(Protocol):
    address: str

    def exec(
        self,
        command: bytes,
        timeout: float,
        limit: int = COMMAND_OUTPUT_LIMIT,
        cancel: threading.Event | None = None,
    ) -> Completed:
        """Run ``command`` with /bin/sh; CommandTimeout past ``timeout`` seconds or when
        ``cancel`` is set; at most ``limit`` bytes of stdout and of stderr kept."""
        ...


@dataclass
class Silent:
    """An executor that runs nothing and answers every command with no output and ``status``
    (but those in ``said``, with what they hold, in the grader's own words): for a dry run of
    a lab's checks, which learns what they ask of a VM that says nothing of its own."""

    address: str
    status: int
    said: dict[bytes, bytes] = field(default_factory=dict)

    def exec(
        self,
        command: bytes,
        timeout: float,
        limit: int = COMMAND_OUTPUT_LIMIT,
        cancel: threading.Event | None = None,
    ) -> Completed:
        if command in self.said:
            return Completed(0, self.said[command], b"", False)
        return Completed(self.status, b"", b"", False)


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect. ``password`` is a secret and never reaches a report."""

    host: str
    port: int = 22
    user: str = "root"
    identity: Path | None = None
    password: str | None = field(default=None, repr=False)  # never in a log or a message
    sudo: bool = False  # run each command with sudo (a user who is not root, sudo with no password)
