"""A class run into its folder: the manifest, the progress shown, the batch, an interrupt that
keeps what finished. ``grade --roster`` and a course's gradings both run a class this way."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.base.errors import InputError
from grader.classrun.batch import BatchResult, grade_roster
from grader.classrun.progress import progress_for
from grader.classrun.roster import Student
from grader.engine.pack import Pack
from grader.evidence import manifest
from grader.evidence.manifest import run_manifest
from grader.evidence.signing import Key
from grader.report.store import ReportStore


@dataclass(frozen=True)
class ClassRun:
    result: BatchResult
    directory: Path
    elapsed: float
    expected: int


def run_class(
    students: Sequence[Student],
    pack: Pack,
    given: Mapping[str, str],
    options: Any,
    directory: Path,
    *,
    roster_sha256: str | None,
    shard: tuple[int, int] | None = None,
    workers: int = 32,
    plan: Any = None,
    color: bool = False,
    resume: bool = False,
    signer: Key | None = None,
) -> ClassRun:
    """Grade ``students`` into ``directory`` (its manifest first), with progress on stderr;
    SIGTERM stops it as Ctrl-C does, keeping what finished. ``signer``: the course's key, to
    sign each report (see grader.evidence.signing)."""
    rubric = pack.rubric
    store = ReportStore(directory, signer=signer)
    run = run_manifest(
        rubric,
        "roster",
        roster_sha256=roster_sha256,
        shard=shard,
        students=tuple(s.student for s in students),
    )
    earlier = manifest.read(store.directory) if resume else None
    if earlier is not None and (earlier.roster_sha256, earlier.shard) != (
        run.roster_sha256,
        run.shard,
    ):
        raise InputError(
            f"{store.directory} holds a run of another roster or shard: --resume finishes the "
            "run of the same roster (and shard) it was started with"
        )
    run.write(store.directory)
    started = time.monotonic()
    with _sigterm_interrupts(), progress_for(len(students), color=color) as progress:
        result = grade_roster(
            students, pack, given, options, store, progress, workers, resume=resume, plan=plan
        )
    return ClassRun(result, directory, time.monotonic() - started, len(students))


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a roster run as Ctrl-C does: within seconds, keeping what finished."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
