"""A testinfra backend over the grader's executor (SSH, local, replay): memoized, bounded,
recorded.

testinfra modules (``host.file``, ``host.socket``, ``host.process`` ...) each run their own
remote command. Here a command runs at most once per host per grading: a second ask is served
from the memo (a timeout is remembered too, so it is not waited for twice). Every ask, served or
run, is recorded as evidence of the check that made it. No command waits past the grading's
deadline: one it cuts short is an error of kind ``deadline``, remembered as such.

What the memo holds of the VM's answers is bounded: ``COMMAND_OUTPUT_LIMIT`` of one command's
output (and of its errors), and ``evidence_limit`` of all of them (``--evidence-limit``). An
answer past either is kept cut (a few KiB, for its evidence, flagged ``truncated``), and the
check that asks for it is an error (``OutputLimit``, ``EvidenceLimit``): never a verdict on part
of an answer. The budget is spent in the order answers come in (a prefetch brings them in
another order than the checks ask them), and a regrade of the archive decides as the grading
did: the cut answers are in it, cut.

In a class run the gradings share a ``Room`` (grader.base.budget): past FREE of answers, a
grading takes its whole evidence limit from it, waiting while the class has none, so a class of
VMs that say too much is held a few at a time, not all at once. Growing is asked for by the
executor, mid-answer (``grow``: an SSH session asks when an answer passes what it may hold).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Union

import testinfra.host
from testinfra.backend.base import BaseBackend, CommandResult

from grader.base import evidence
from grader.base.budget import (
    FREE,
    MIB,
    NEVER,
    Deadline,
    DeadlinePassed,
    EvidenceLimit,
    OutputLimit,
    Room,
)
from grader.base.errors import CommandTimeout
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed, Executor
from grader.machine.prefetch import SETUP_FAILED, batch_script, new_nonce, parse_batch

#: Largest output of a whole prefetch batch; past it the commands not framed run live.
BATCH_OUTPUT_LIMIT = 64 * MIB
#: What a batch prints besides the commands' answers, per command (headers, sizes), at most
FRAMING = 512
#: What is kept of an answer past the evidence limit, for its evidence (a report shows 2,000
#: characters of it)
KEPT_OF_CUT = 4096
#: Bytes of an output decoded for its evidence (a report shows 2,000 characters of it)
SHOWN_BYTES = 64 * 1024
#: What a command can end as: an answer, its own time-out, or the grading's deadline.
Answer = Union[Completed, CommandTimeout, DeadlinePassed]


class GraderBackend(BaseBackend):
    NAME = "grader"

    def __init__(
        self,
        executor: Executor,
        command_timeout: float,
        deadline: Deadline = NEVER,
        evidence_limit: int | None = None,
        room: Room | None = None,
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
        self.evidence_limit = evidence_limit
        self._left = evidence_limit  # bytes of answers the memo may still take (None: no bound)
        # the class's room (None: not a class, or no bound), and what this grading took of it
        self._room = room if evidence_limit is not None else None
        self._taken = 0

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
        if done.truncated:
            raise too_much(shown, done)
        return self.result(done.exit_status, cmd, done.stdout, done.stderr)

    def _exec(self, cmd: bytes, timeout: float, limit: int) -> Completed:
        """Run one command, bounded by ``timeout`` and by what is left of the grading."""
        self.deadline.check()
        try:
            if self._room is not None and getattr(self.executor, "grows", False):
                return self.executor.exec(  # type: ignore[call-arg]
                    cmd, self.deadline.bound(timeout), limit, self.deadline.cancel, self._grow
                )
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
                done = self._exec(cmd, self.command_timeout, self._limit())
                with self._lock:
                    future.set_result(self._keep(done))
            except BaseException as e:
                future.set_exception(e)
        return future.result()

    def _limit(self, full: bool = False) -> int:
        """What one answer may hold now: a command's limit, or what is left of the budget, or
        (in a class, before taking room; not when ``full``) what is left of FREE."""
        with self._lock:
            left, light = self._left, self._room is not None and not self._taken
        if left is None:
            return COMMAND_OUTPUT_LIMIT
        limit = min(COMMAND_OUTPUT_LIMIT, left)
        if light and not full:
            assert self.evidence_limit is not None
            limit = min(limit, max(0, FREE - (self.evidence_limit - left)))
        return limit

    def _grow(self) -> int:
        """An answer passed what this grading may hold without room: take the class's room
        (waiting, the deadline moved on by the wait), and say what the answer may now hold."""
        if self._room is not None and not self._taken and self.evidence_limit is not None:
            taken, waited = self._room.take(self.evidence_limit, self.deadline.cancel)
            with self._lock:
                self._taken = taken
            self.deadline.extend(waited)
        return self._limit()

    def release(self) -> None:
        """Give back the class's room this grading took (when it ends)."""
        with self._lock:
            taken, self._taken = self._taken, 0
        if taken and self._room is not None:
            self._room.give(taken)

    def _keep(self, done: Completed) -> Completed:
        """What the memo keeps of an answer: all of it while the budget has room, else a few
        KiB, flagged cut (the caller holds the lock). An answer cut at a bound lower than a
        command's is past the budget."""
        if self._left is None:
            return done
        size = len(done.stdout) + len(done.stderr)
        bound = min(COMMAND_OUTPUT_LIMIT, self._left)
        if size <= self._left and not (done.truncated and bound < COMMAND_OUTPUT_LIMIT):
            self._left -= size
            return done
        kept = min(KEPT_OF_CUT, self._left)
        stdout = done.stdout[:kept]
        stderr = done.stderr[: kept - len(stdout)]
        self._left -= len(stdout) + len(stderr)
        return Completed(done.exit_status, stdout, stderr, True)

    def answers(self) -> list[tuple[bytes, Answer]]:
        """Every command run on the host and what it gave, in the order first asked or
        prefetched (for the evidence archive)."""
        with self._lock:
            futures = list(self._memo.items())
        return [(c, found) for c, future in futures if (found := _answer(future)) is not None]

    def drain(self) -> Iterator[tuple[bytes, Answer]]:
        """``answers()``, each let go of as it is taken: an archive made from them holds the
        VM's answers once, not twice over (this backend answers nothing after)."""
        with self._lock:
            commands = list(self._memo)
        for command in commands:
            with self._lock:
                future = self._memo.pop(command, None)
            found = _answer(future) if future is not None else None
            if found is not None:
                yield command, found

    @property
    def took_room(self) -> bool:
        """Whether this grading took its class's room (it holds more than FREE)."""
        return self._taken > 0

    def prefetch(self, commands: Sequence[bytes]) -> None:
        """Run many commands in one round trip and keep the results that frame exactly for
        the checks (see grader.machine.prefetch). When the batch cannot run (no timeout(1) on the
        VM, the deadline) nothing is kept, and each command runs live when a check asks for it."""
        todo = list(dict.fromkeys(c for c in commands if c not in self._memo))
        if not todo:
            return
        nonce = new_nonce()
        limit, full = self._limit(), self._limit(full=True)
        script = batch_script(todo, self.command_timeout, nonce, limit)
        with self._lock:
            left, light = self._left, self._room is not None and not self._taken
        size = BATCH_OUTPUT_LIMIT
        if left is not None:  # the answers, and their frames: what may be held of them
            size = min(size, (limit if light else left) + FRAMING * len(todo))
        self.round_trips += 1
        try:
            done = self._exec_batch(script, size)
        except (CommandTimeout, DeadlinePassed):
            return
        if done.exit_status == SETUP_FAILED:
            return
        results = parse_batch(done.stdout, len(todo), limit, self.command_timeout, nonce)
        del done  # the batch's bytes go before its answers are kept
        with self._lock:
            for index, result in sorted(results.items()):
                command = todo[index]
                if command in self._memo:
                    continue
                if isinstance(result, Completed) and result.truncated and limit < full:
                    continue  # cut at FREE in a class: asked live, where it may take room
                future: Future[Completed] = Future()
                if isinstance(result, CommandTimeout):
                    future.set_exception(result)
                else:
                    future.set_result(self._keep(result))
                self._memo[command] = future

    def _exec_batch(self, script: bytes, size: int) -> Completed:
        """The batch, bounded in time and size (it never takes the class's room)."""
        self.deadline.check()
        return self.executor.exec(
            script, self.deadline.bound(self.command_timeout + 10), size, self.deadline.cancel
        )


def _answer(future: Future[Completed]) -> Answer | None:
    """What a memo entry holds for the archive: an answer, a time-out, or nothing (not done,
    or ended otherwise)."""
    if not future.done():
        return None
    error = future.exception()
    if error is None:
        return future.result()
    return error if isinstance(error, (CommandTimeout, DeadlinePassed)) else None


def too_much(shown: str, done: Completed) -> OutputLimit:
    """The error of a check that asked for an answer the grader kept cut: past one command's
    limit (a stream as long as the limit), or past the grading's evidence limit."""
    words = evidence.command_in_words(shown)
    if max(len(done.stdout), len(done.stderr)) >= COMMAND_OUTPUT_LIMIT:
        return OutputLimit(
            f"{words} printed more than the grader keeps of one command "
            f"({COMMAND_OUTPUT_LIMIT // MIB} MiB), so this is not decided on part of it"
        )
    return EvidenceLimit(
        f"the VM's answers reached this grading's evidence limit (--evidence-limit) before "
        f"{words} was answered whole, so this is not decided on part of it"
    )


def _shown(data: bytes) -> str:
    """An output as its evidence shows it: its first SHOWN_BYTES decoded (never all 8 MiB)."""
    text = data[:SHOWN_BYTES].decode("utf-8", errors="replace")
    return text if len(data) <= SHOWN_BYTES else f"{text}... ({len(data) - SHOWN_BYTES} more bytes)"


def answer_text(done: Answer) -> str:
    """A command's answer as evidence shows it: exit status, output, errors, or its time-out."""
    if isinstance(done, DeadlinePassed):
        return f"(cut short: {done})"
    if isinstance(done, CommandTimeout):
        return f"(timed out: {done})"
    output = _shown(done.stdout)
    if done.stderr:
        output += ("\n" if output else "") + "[stderr] " + _shown(done.stderr)
    # said first: the evidence a report shows is the first 2,000 characters
    cut = "; output cut off by the grader's size limit" if done.truncated else ""
    return f"[exit {done.exit_status}{cut}]\n{output}"


def make_host(
    executor: Executor,
    command_timeout: float,
    deadline: Deadline = NEVER,
    evidence_limit: int | None = None,
    room: Room | None = None,
) -> testinfra.host.Host:
    """A testinfra host over ``executor``; ``evidence_limit``: bytes of answers it may hold
    (None: no bound, as for a replay, whose archive is bounded already); ``room``: the class's,
    shared by its gradings."""
    backend = GraderBackend(executor, command_timeout, deadline, evidence_limit, room)
    return testinfra.host.Host(backend)
