"""What is done with a graded folder, without its VMs: regrade it from its evidence archives
(and record that in the course's book when the folder is a recorded run), export its marks for
an LMS, merge a roster's shards, show the evidence behind one decision."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from grader.actions.common import Actor, CourseAt
from grader.base.errors import InputError
from grader.base.results import Report
from grader.classrun.batch import close_class
from grader.classrun.regrade import Regraded, regrade_folder
from grader.classrun.regrade import show as show_decision
from grader.classrun.roster import load_roster
from grader.course.book import Book, book_url
from grader.course.config import FILE, find_course, load_course
from grader.engine.catalog import built_in_rubric
from grader.engine.pack import Pack, load_pack
from grader.engine.rubric import Rubric, load_rubric
from grader.engine.runner import now
from grader.evidence import manifest
from grader.evidence.archive import archive_path
from grader.evidence.signing import key_for, signer_for
from grader.machine.execution import Target
from grader.report.render.lms import render as render_lms
from grader.report.store import Folder, ReportStore


def a_folder(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: no such folder")
    if not path.is_dir():
        raise InputError(f"{path}: not a folder")
    return path


def recorded_pack(directory: Path, reports: Sequence[Report]) -> Pack:
    """The pack a graded folder says it was graded with (its manifest), else the built-in
    lab's; a folder graded with another rubric than the one found is refused rather than
    marked with the wrong one."""
    recorded = manifest.read(directory)
    path = Path(recorded.rubric_path) if recorded else built_in_rubric()
    if recorded is not None and not path.is_file():
        raise InputError(
            f"{directory} was graded with the rubric {path}, which is not there any more; "
            "give the rubric to mark with (--rubric PATH)"
        )
    pack = load_pack(load_rubric(path))
    graded_with = {r.rubric.sha256 for r in reports} - {pack.rubric.sha256}
    if graded_with:
        raise InputError(
            f"{directory} was graded with another rubric (sha256 {sorted(graded_with)[0][:12]}) "
            f"than {path} (sha256 {pack.rubric.sha256[:12]}); give the rubric to mark with "
            "(--rubric PATH)"
        )
    return pack


# -- regrade ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegradeRequest:
    folder: Path
    out: Path  # another folder: the graded one is kept as it is
    pack: Pack | None = None  # the lab to mark with (None: the one the folder was graded with)
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    password: str | None = field(default=None, repr=False)  # the SSH password given at grading
    roster: Path | None = None  # the roster graded with: each student's own variables
    ignore_columns: tuple[str, ...] = ()
    course: CourseAt = field(default_factory=CourseAt)  # a recorded run's book, or the folder's


@dataclass(frozen=True)
class FolderRegraded:
    result: Regraded
    rubric: Rubric
    target: Path
    elapsed: float
    read: Folder  # the graded folder as read (what could not be read is named by it)
    recorded: tuple[int, int] | None  # (the regrade's run, the run it regrades) in the book


def regrade(
    actor: Actor,
    request: RegradeRequest,
    watch: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None,
) -> FolderRegraded:
    """Mark a graded folder again from its evidence archives into ``out``; a recorded run's
    regrade is recorded in its course's book."""
    directory = a_folder(request.folder)
    given = request.variables
    if request.pack is not None:
        request.pack.rubric.resolve_vars(given)  # unknown names: refused before anything is read
    folder = ReportStore(directory).read_all()
    if not folder.found:
        raise NoReports(folder, f"{directory}: no reports (<student>.json) to regrade")
    pack = request.pack or recorded_pack(directory, folder.reports)
    loaded = pack.rubric
    loaded.resolve_vars(given)  # unknown names are refused before anything is written
    if request.out.resolve() == directory.resolve():
        raise InputError("--out must be another folder: the graded folder is kept as it is")
    per_student = None
    if request.roster is not None:
        students = load_roster(
            request.roster, loaded, Target(host=""), keys=False, ignore=request.ignore_columns
        )
        per_student = {s.student: (dict(s.vars), s.target.password) for s in students}
    started = time.monotonic()
    source = manifest.read(directory)
    with (watch or _nobody)(len(folder.found)) as progress:
        result = regrade_folder(
            folder.found,
            request.out,
            pack,
            given,
            request.password,
            finished=lambda report: progress.finished(report, reused=False),
            per_student=per_student,
            verify=key_for(directory),  # a folder inside a course: signed reports must verify
            signer=signer_for(request.out),
        )
    manifest.Manifest(
        loaded.title,
        loaded.sha256,
        str(loaded.path.resolve()),
        roster_sha256=source.roster_sha256 if source else None,
        shard=source.shard if source else None,
        students=source.students if source else (),
        kind="regrade",
        made_at=now(),
        regraded_from=str(directory.resolve()),
    ).write(request.out)
    elapsed = time.monotonic() - started
    recorded = _record_regrade(actor, request.course, directory, request.out, loaded)
    return FolderRegraded(result, loaded, request.out, elapsed, folder, recorded)


class NoReports(InputError):
    """A folder with nothing of what was asked: what could not be read in it is named too."""

    def __init__(self, read: Folder, message: str) -> None:
        super().__init__(message)
        self.read = read


@contextlib.contextmanager
def _nobody(count: int) -> Any:
    class Nobody:
        def finished(self, report: Report, reused: bool) -> None:
            return None

    yield Nobody()


def _record_regrade(
    actor: Actor, where: CourseAt, directory: Path, target: Path, rubric: Rubric
) -> tuple[int, int] | None:
    """A regrade of a run a course's gradebook recorded is recorded as its regrade (the
    original is kept). The course: ``where``, or the one the graded folder lies in."""
    given = where.course
    if given is None and not any((d / FILE).is_file() for d in directory.resolve().parents):
        return None  # a folder of no course
    course = load_course(find_course(given, start=directory.resolve()))
    url = book_url(course.folder, where.db, course.db)
    try:
        book = Book(url, root=course.folder, by=actor.name, create=False)
    except InputError:
        return None  # no book yet: nothing of this course was recorded
    try:
        recorded = book.run_of(directory)
        if recorded is None:
            return None
        found = ReportStore(target).read_all().found
        run = book.record(
            recorded[1], target, found, "regrade", regrade_of=recorded[0], rubric=rubric
        )
        return run, recorded[0]
    finally:
        book.close()


# -- export ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRequest:
    folder: Path
    lms: Literal["moodle", "canvas"]
    id_column: str | None = None
    grade_column: str | None = None
    feedback: bool = True
    include_incomplete: bool = False


@dataclass(frozen=True)
class Exported:
    text: str
    read: Folder


def export(actor: Actor, request: ExportRequest) -> Exported:
    """A graded folder's marks as an LMS import file, refused while a student could not be
    checked in full unless ``include_incomplete``."""
    directory = a_folder(request.folder)
    folder = ReportStore(directory).read_all()
    reports = [r for r in folder.reports if r.student is not None]
    if not reports:
        raise NoReports(folder, f"{directory}: no student reports (<student>.json) found")
    incomplete = [r for r in reports if r.status == "graded" and r.unchecked]
    if incomplete and not request.include_incomplete:
        named = "; ".join(
            f"{r.student} ({', '.join(r.unchecked)}: {r.unchecked_points:g} point(s))"
            for r in incomplete[:20]
        )
        raise InputError(
            f"not exported: {len(incomplete)} student(s) could not be checked in full, so their "
            f"score is short of what they may have earned: {named}"
            + ("; ..." if len(incomplete) > 20 else "")
            + ". Grade them again, or give --include-incomplete to export the scores over what "
            "was checked"
        )
    text = render_lms(
        reports,
        request.lms,
        id_column=request.id_column,
        grade_column=request.grade_column,
        feedback=request.feedback,
    )
    return Exported(text, folder)


# -- merge -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeRequest:
    folders: tuple[Path, ...]
    out: Path
    pack: Pack | None = None  # the rubric the shards were graded with (None: their manifest's)


@dataclass(frozen=True)
class Merged:
    reports: list[Report]
    rubric: Rubric
    expected: set[str]  # the roster's students
    absent: list[str]  # of those, the ones no shard has a report of
    read: list[Folder]


def merge(actor: Actor, request: MergeRequest) -> Merged:
    """The folders of a roster's shards (every one, none twice) as one class's folder."""
    directories = [a_folder(d) for d in request.folders]
    runs = [(d, manifest.read(d)) for d in directories]
    _shards(runs)
    folders = [ReportStore(d).read_all() for d in directories]
    reports_seen = [r for f in folders for r in f.reports]
    pack = request.pack or recorded_pack(directories[0], reports_seen)
    loaded = pack.rubric
    found: dict[str, tuple[Report, Path]] = {}
    for directory, folder in zip(directories, folders):
        for path, report in folder.found:
            if report.student is None:
                continue
            if report.rubric.sha256 != loaded.sha256:
                raise InputError(
                    f"{path}: {report.student}'s report was graded with another rubric "
                    f"(sha256 {report.rubric.sha256[:12]}, not {loaded.sha256[:12]} of "
                    f"{loaded.path}); give the rubric the shards used with --rubric"
                )
            if report.student in found:
                raise InputError(
                    f"{report.student} is in both {found[report.student][1].parent} and "
                    f"{directory}: shards must not overlap"
                )
            found[report.student] = (report, path)
    expected = {s for _, run in runs if run for s in run.students}
    absent = sorted(expected - set(found))
    if not found:
        raise InputError(
            "no student reports (<student>.json) in " + ", ".join(map(str, directories))
        )
    store = ReportStore(request.out)
    merged = [found[s][0] for s in sorted(found)]
    for report, path in found.values():
        if archive_path(path).exists():  # the archive goes along, so the class can be regraded
            store.take_archive(report, path)
        store.save(report)
    reports = close_class(store, merged, loaded)
    first = runs[0][1]
    assert first is not None
    manifest.Manifest(
        loaded.title,
        loaded.sha256,
        str(loaded.path.resolve()),
        roster_sha256=first.roster_sha256,
        students=tuple(sorted(expected | set(found))),
        kind="merge",
        made_at=now(),
    ).write(request.out)
    return Merged(reports, loaded, expected, absent, folders)


def _shards(runs: list[tuple[Path, manifest.Manifest | None]]) -> None:
    """Refuse shards that do not make one whole roster: a folder that is not a run's, another
    roster's or another rubric's, a shard missing or given twice."""
    first_dir, first = runs[0]
    for directory, run in runs:
        if run is None or run.kind not in ("roster", "merge"):
            raise InputError(
                f"{directory}: not the folder of a roster run (no {manifest.NAME} of one); "
                "merge takes the folders of grade --roster --shard K/N"
            )
        assert first is not None
        if run.roster_sha256 != first.roster_sha256:
            raise InputError(f"{directory}: graded from another roster than {first_dir}")
        if run.rubric_sha256 != first.rubric_sha256:
            raise InputError(
                f"{directory}: graded with another rubric (sha256 {run.rubric_sha256[:12]}) "
                f"than {first_dir} (sha256 {first.rubric_sha256[:12]})"
            )
    slices: dict[int, Path] = {}
    sizes = set()
    for directory, run in runs:
        k, n = run.shard if run and run.shard else (1, 1)
        sizes.add(n)
        if k in slices:
            raise InputError(f"shard {k}/{n} is given twice: {slices[k]} and {directory}")
        slices[k] = directory
    if len(sizes) > 1:
        raise InputError(
            "the folders are slices of different shardings: "
            + ", ".join(f"{d} ({r.shard[0]}/{r.shard[1]})" for d, r in runs if r and r.shard)
        )
    (n,) = sizes
    missing = [f"{k}/{n}" for k in range(1, n + 1) if k not in slices]
    if missing:
        raise InputError(
            f"shard {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: merge "
            f"needs every slice of the roster ({n} in all), or students would be lost"
        )


# -- the evidence of one decision ------------------------------------------------------------


@dataclass(frozen=True)
class ShowRequest:
    folder: Path
    student: str
    check: str
    lines: int | None  # of each piece of evidence at most (None: every line)


def show(actor: Actor, request: ShowRequest) -> str:
    """The decision on one check of a graded folder and every piece of evidence behind it."""
    return show_decision(a_folder(request.folder), request.student, request.check, request.lines)
