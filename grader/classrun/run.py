"""A class run into its folder: the manifest, the batch, the progress told to whoever watches
(a front end's bar or lines; nobody by default). ``grade --roster`` and a course's gradings both
run a class this way."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.base.errors import InputError
from grader.base.results import Report
from grader.classrun.batch import BatchResult, Progress, grade_roster
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
    watch: Callable[[int], contextlib.AbstractContextManager[Progress]] | None = None,
    resume: bool = False,
    signer: Key | None = None,
) -> ClassRun:
    """Grade ``students`` into ``directory`` (its manifest first); ``watch(count)`` gives what
    hears of each student's grading (default: nothing does). An interrupt (KeyboardInterrupt)
    stops it keeping what finished. ``signer``: the course's key, to sign each report (see
    grader.evidence.signing)."""
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
    with (watch or quiet)(len(students)) as progress:
        result = grade_roster(
            students, pack, given, options, store, progress, workers, resume=resume, plan=plan
        )
    return ClassRun(result, directory, time.monotonic() - started, len(students))


class Quiet:
    """Progress nobody watches."""

    def started(self, student: Student) -> None:
        return None

    def finished(self, report: Report, reused: bool) -> None:
        return None


@contextlib.contextmanager
def quiet(count: int) -> Iterator[Progress]:
    yield Quiet()
