"""A testinfra backend over the grader's executor (SSH, local, replay): memoized, bounded,
recorded.

testinfra modules (``host.file``, ``host.socket``, ``host.process`` ...) each run their own
remote command. Here a command runs at most once per host per grading: a second ask is served
from the memo (a timeout is remembered too, so it is not waited for twice). Every ask, served or
run, is recorded as evidence of the check that made it. No command waits past the grading's
deadline: one it cuts short is an error of kind ``deadline``, remembered as such.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Union

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from grader.base import evidence
from grader.base.budget import NEVER, Deadline, DeadlinePassed
from grader.base.errors import CommandTimeout
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed, Executor
from grader.machine.prefetch import SETUP_FAILED, batch_script, new_nonce, parse_batch

#: Largest output of a whole prefetch batch; past it the commands not framed run live.
BATCH_OUTPUT_LIMIT = 64 * 1024 * 1024
#: What a command can end as: an answer, its own time-out, or the grading's deadline.
Answer = Union[Completed, CommandTimeout, DeadlinePassed]


class GraderBackend(BaseBackend):
    NAME = "grader"

    def __init__(
        self, executor: Executor, command_timeout: float, deadline: Deadline = NEVER
    ) -> None:
        super().__init__(executor.address)
        self.executor = executor
        self.command_timeout = command_timeout
        self.deadline = deadline
        self._encoding = "utf-8"  # testinfra would otherwise ask the VM's python for it
        self._memo: dict[bytes, Future[Completed]] = {}
        self._lock = threading.Lock()
        self.asked: dict[bytes, None] = {}  # every command a check asked, in order (for a Plan)
        self.round_trips = 0  # remote executions made

    def decode(self, data: bytes) -> str:
        # Student VMs hold binary junk and invalid UTF-8; never let a check die of it.
        return data.decode("utf-8", errors="replace")

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        cmd = self.encode(self.get_command(command, *args))
        self.asked.setdefault(cmd, None)
        shown = self.decode(cmd)
        try:
            done = self._once(cmd)
        except DeadlinePassed as e:
            evidence.record(shown, answer_text(e))
            raise
        except CommandTimeout as e:
            evidence.record(shown, answer_text(e))
            raise CommandTimeout(f"{evidence.command_in_words(shown)} timed out: {e}") from None
        evidence.record(shown, answer_text(done))
        return self.result(done.exit_status, cmd, done.stdout, done.stderr)

    def _exec(self, cmd: bytes, timeout: float, limit: int) -> Completed:
        """Run one command, bounded by ``timeout`` and by what is left of the grading."""
        self.deadline.check()
        try:
            return self.executor.exec(
                cmd, self.deadline.bound(timeout), limit, self.deadline.cancel
            )
        except CommandTimeout:
            if self.deadline.passed:  # cut short by the grading's deadline, not its own
                self.deadline.check()
            raise

    def _once(self, cmd: bytes) -> Completed:
        with self._lock:
            future = self._memo.get(cmd)
            owner = future is None
            if future is None:
                future = self._memo[cmd] = Future()
                self.round_trips += 1
        if owner:
            try:
                future.set_result(self._exec(cmd, self.command_timeout, COMMAND_OUTPUT_LIMIT))
            except BaseException as e:
                future.set_exception(e)
        return future.result()

    def answers(self) -> list[tuple[bytes, Answer]]:
        """Every command run on the host and what it gave, in the order first asked or
        prefetched (for the evidence archive)."""
        with self._lock:
            futures = list(self._memo.items())
        found: list[tuple[bytes, Answer]] = []
        for command, future in futures:
            if future.done():
                error = future.exception()
                if error is None:
                    found.append((command, future.result()))
                elif isinstance(error, (CommandTimeout, DeadlinePassed)):
                    found.append((command, error))
        return found

    def prefetch(self, commands: Sequence[bytes]) -> None:
        """Run many commands in one round trip and keep the results that frame exactly for
        the checks (see grader.machine.prefetch). When the batch cannot run (no timeout(1) on the
        VM, the deadline) nothing is kept, and each command runs live when a check asks for it."""
        todo = [c for c in commands if c not in self._memo]
        if not todo:
            return
        nonce = new_nonce()
        script = batch_script(todo, self.command_timeout, nonce)
        self.round_trips += 1
        try:
            done = self._exec(script, self.command_timeout + 10, BATCH_OUTPUT_LIMIT)
        except (CommandTimeout, DeadlinePassed):
            return
        if done.exit_status == SETUP_FAILED:
            return
        results = parse_batch(
            done.stdout, len(todo), COMMAND_OUTPUT_LIMIT, self.command_timeout, nonce
        )
        with self._lock:
            for index, result in results.items():
                command = todo[index]
                if command not in self._memo:
                    future: Future[Completed] = Future()
                    if isinstance(result, CommandTimeout):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                    self._memo[command] = future


def answer_text(done: Answer) -> str:
    """A command's answer as evidence shows it: exit status, output, errors, or its time-out."""
    if isinstance(done, DeadlinePassed):
        return f"(cut short: {done})"
    if isinstance(done, CommandTimeout):
        return f"(timed out: {done})"
    output = done.stdout.decode("utf-8", errors="replace")
    if done.stderr:
        output += ("\n" if output else "") + "[stderr] " + done.stderr.decode(errors="replace")
    if done.truncated:
        output += "\n(output cut off by the grader's size limit)"
    return f"[exit {done.exit_status}]\n{output}"


def make_host(
    executor: Executor, command_timeout: float, deadline: Deadline = NEVER
) -> testinfra.host.Host:
    return testinfra.host.Host(GraderBackend(executor, command_timeout, deadline))
