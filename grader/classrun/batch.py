"""Grade a class: many hosts at once, each report saved the moment it is done.

A slow or dead VM only holds its own worker. An interrupt (Ctrl-C, SIGTERM) stops starting new
gradings and cancels the ones under way (they stop within a moment, and are not kept: a grading
cut short is not a result), then writes the summary of what finished; ``--resume`` grades the
rest later. One grading that crashes (a grader bug) is reported as not graded, with the error;
the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Protocol

from grader.base.budget import Room, give_back_freed_memory
from grader.base.results import Report
from grader.base.words import ErrorKind
from grader.classrun.integrity import flag_shared_host_keys
from grader.classrun.roster import Student
from grader.engine.pack import Pack
from grader.engine.rubric import Rubric
from grader.engine.runner import Grading, Options, blank_report, grade_host
from grader.machine.prefetch import Plan
from grader.probes.scan import ClassScan
from grader.report.store import ReportStore


class Progress(Protocol):
    def started(self, student: Student) -> None: ...  # called from worker threads

    def finished(self, report: Report, reused: bool) -> None: ...


@dataclass(frozen=True)
class BatchResult:
    reports: list[Report]  # in roster order; only the students whose grading finished
    interrupted: bool


def grade_roster(
    students: Sequence[Student],
    pack: Pack,
    variables: Mapping[str, str],
    options: Options,
    store: ReportStore,
    progress: Progress,
    workers: int,
    resume: bool = False,
    plan: Plan | None = None,
) -> BatchResult:
    """Grade the students. With a ``plan`` (see grader.machine.prefetch) the commands the
    checks ask are prefetched in one round trip per host: those of the lab's definition, and
    those each VM's own checks asked when it was last graded (kept for that VM alone). The
    gradings share one ``Room`` for what they hold of their VMs' answers past a little each,
    so a class of VMs that say too much is held a few at a time (grader.base.budget)."""
    rubric = pack.rubric
    if options.evidence_limit is not None and options.room is None:
        options = dataclasses.replace(options, room=Room())
    give_back_freed_memory()
    cancel = threading.Event()
    done: dict[str, Report] = {}
    todo = []
    for student in students:
        kept = store.reusable(student.student, rubric) if resume else None
        if kept is not None:
            done[student.student] = kept
            progress.finished(kept, reused=True)
        else:
            todo.append(student)

    def grade(student: Student) -> Grading:
        progress.started(student)
        held: list[Any] = []  # what holds the class's room, until the archive is saved
        try:
            merged = rubric.resolve_vars({**variables, **student.vars}, student=student.student)
            grading = grade_host(
                student.target,
                pack,
                merged,
                options,
                student=student.student,
                plan=plan,
                class_scan=class_scan,
                cancel=cancel,
                held=held,
            )
            person = dict(student.person)  # who the roster says it is: into the report
            grading = dataclasses.replace(
                grading, report=dataclasses.replace(grading.report, person=person)
            )
            if grading.interrupted or grading.archive is None:
                return grading
            # saved here and let go of at once, not queued for the main thread; one whose VM
            # said much (it took the class's room) is saved one at a time, then gives it back
            heavy = options.room is not None and any(b.took_room for b in held)
            with options.room.archiving if heavy else contextlib.nullcontext():
                store.save(grading.report, grading.archive)
            return dataclasses.replace(grading, archive=None, saved=True)
        except Exception as e:  # a grader bug: this student is not graded, the others are
            error = f"the grader failed: {type(e).__name__}: {e}"
            report = blank_report(
                student.target,
                rubric,
                student.student,
                status="error",
                error=error,
                error_kind=ErrorKind.INTERNAL,
                person=dict(student.person),
            )
            return Grading(report)
        finally:
            for backend in held:
                backend.release()

    def collect(future: Future[Grading]) -> None:
        grading = future.result()
        if grading.interrupted:
            return  # cut short: not a result (--resume grades it again)
        report = grading.report
        assert report.student is not None
        if not grading.saved:
            store.save(report, grading.archive)
        done[report.student] = report
        progress.finished(report, reused=False)

    # one nmap for the whole class instead of one per host (see probes.ClassScan)
    class_scan = (
        ClassScan([s.target.host for s in todo], rubric.ports, options.connect_timeout)
        if rubric.ports and len(todo) > 1
        else None
    )
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grade")
    futures: list[Future[Grading]] = []
    try:
        rest = [pool.submit(grade, student) for student in todo]
        futures += rest
        for future in as_completed(rest):
            collect(future)
    except KeyboardInterrupt:
        interrupted = True
        cancel.set()  # the gradings under way stop within a moment
        pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            finished = future.done() and not future.cancelled()
            if finished and future.result().report.student not in done:
                collect(future)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    reports = close_class(store, [done[s.student] for s in students if s.student in done], rubric)
    return BatchResult(reports, interrupted)


def close_class(store: ReportStore, reports: Sequence[Report], rubric: Rubric) -> list[Report]:
    """Flag clones across the class, save the reports that changed, write the class's files."""
    flagged = flag_shared_host_keys(reports, rubric.unique)
    for before, after in zip(reports, flagged, strict=True):
        if before != after:
            store.save(after)
    store.save_class(flagged, rubric)
    return flagged
