"""What ``grade book import`` believes of a folder graded outside the course: only what its
evidence shows, or what the course's own grader signed.

A report is a file anyone can edit. Before a folder's reports enter the book, each is checked,
and the whole import is refused (nothing recorded) when one fails:

* its student is on the course's roster (an id with a control character never is);
* when it is signed (``<student>.json.sig``, see grader.evidence.signing), the signature
  verifies with the course's key: a signed report, or its archive, changed since this course's
  grader wrote it is refused, naming the file;
* it was graded with the lab's rubric (its sha256, or one the book knows for this lab);
* its numbers are finite and add up: each check's points are 0 or its item's, by its status,
  the score is their sum, within 0..the rubric's maximum, and its checks are the rubric's;
* a graded report has its evidence archive, unchanged since grading (the checksum the report
  records), made for this student and host, at the time the report says (a report's time is
  its archive's: one re-dated is refused, naming the file and both times);
* its verdicts follow from that archive: the checks run again on what the VM answered (as
  ``grade regrade`` does) give the statuses the report says, but where the replay needs a
  secret the course does not give. The checks are those it was graded with: the lab's own when
  it claims the lab's rubric, else the code the book kept when it graded (or imported) under
  that rubric (grader.evidence.packcode); where the folder's manifest names its checks' digest,
  that code.

A graded report the book cannot replay (a rubric it keeps no code of, checks it never kept) is
taken when the course's key signed it, and otherwise refused, unless staff take it on their word
(``--trust-unreplayed --reason``): the book keeps who, when and why, and the student's row shows
it. A report that was not graded (unreachable) has no score and nothing to replay.

An archive alone is evidence, not a signature: someone who knows its format can make one up.
The replay is what tells an invented verdict; the signature is what tells the course's own
files.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.base.errors import InputError
from grader.base.results import Report
from grader.base.words import ErrorKind, Status
from grader.classrun.regrade import archive_of
from grader.classrun.roster import id_problem, load_roster
from grader.engine.pack import Pack, load_pack
from grader.engine.rubric import load_rubric
from grader.engine.runner import regrade
from grader.evidence import packcode, signing
from grader.evidence.archive import ArchiveError
from grader.evidence.manifest import checks_claimed
from grader.machine.execution import Target

STATUSES = ("pass", "fail", "error", "skipped")
#: A replayed check that could not decide for want of a secret not given to the import: it
#: neither confirms nor contradicts the report. (An archive of a grading with this rubric holds
#: every answer its checks asked: a check that needs the live VM on replay was never graded.)
UNDECIDED = (ErrorKind.NEEDS_SECRET,)


@dataclass(frozen=True)
class Checked:
    """What one report's checks found: what refuses it, and how far it was verified."""

    problems: list[str] = field(default_factory=list)
    unreplayed: str | None = None  # why its verdicts could not be replayed (nor its signature)
    replayed: bool = False
    signed: bool = False  # signed with the course's key, and verified


@dataclass(frozen=True)
class Imported:
    """A folder's reports, checked: those replayed, those signed, those taken on trust."""

    replayed: int
    signed: int
    trusted: dict[str, str]  # student -> why their report could not be replayed


def check_import(
    gradebook: Any,
    lab_id: str,
    folder: Path,
    found: Sequence[tuple[Path, Report]],
    trust: str | None = None,
) -> Imported:
    """Refuse (InputError naming each file and what is wrong) unless every report holds; with
    ``trust`` (staff's reason), a report that holds but for a replay is taken on that word."""
    key = signing.Key(gradebook.course.folder / signing.KEY_FILE)
    problems: list[str] = []
    unreplayed: dict[Path, tuple[str, str]] = {}
    replayed = signed = 0
    with tempfile.TemporaryDirectory(prefix="lab-grader-kept-") as work:
        packs = KeptPacks(gradebook, lab_id, checks_claimed(folder), Path(work))
        for path, report in found:
            checked = examine(gradebook, lab_id, path, report, packs, key)
            problems += [f"{path}: {p}" for p in checked.problems]
            if checked.unreplayed is not None:
                unreplayed[path] = (report.student or report.host, checked.unreplayed)
            replayed += checked.replayed
            signed += checked.signed
    if unreplayed and trust is None:
        problems += [
            f"{path}: its verdicts cannot be replayed ({why}), and no signature of this course "
            "vouches for it: if you trust where it comes from, import with --trust-unreplayed "
            '--reason "..." (the book keeps your word; the student\'s row shows it)'
            for path, (_, why) in unreplayed.items()
        ]
    if problems:
        more = [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        shown = problems[:20] + more
        raise InputError("nothing was recorded; the import is refused:\n  " + "\n  ".join(shown))
    return Imported(replayed, signed, dict(unreplayed.values()))


class KeptPacks:
    """The packs a folder's reports are replayed with: the lab's own, and the code the book
    kept for each rubric it has known (unpacked into ``work`` on first use)."""

    def __init__(self, gradebook: Any, lab_id: str, claimed: str | None, work: Path) -> None:
        self.gradebook, self.lab_id, self.claimed, self.work = gradebook, lab_id, claimed, work
        self._loaded: dict[tuple[str, str], Pack | str] = {}
        self._current: str | None = None  # the digest of the lab's own checks, once

    def for_rubric(self, sha: str) -> Pack | str:
        """The pack of rubric ``sha`` (and of the claimed checks), or why there is none."""
        current: Pack = self.gradebook.pack(self.lab_id)
        book = self.gradebook.book
        if self.claimed is not None:
            if sha == current.rubric.sha256 and self.claimed == self._digest_of(current):
                return current
            if self.claimed in book.kept_checks(sha):
                return self._load(sha, self.claimed)
            return (
                f"its folder's manifest says it was graded with checks (code sha256 "
                f"{self.claimed[:12]}) whose code the book does not keep for rubric {sha[:12]}"
            )
        if sha == current.rubric.sha256:
            return current
        kept = book.kept_checks(sha)
        if kept:
            return self._load(sha, kept[-1])
        return f"the book keeps no code of rubric {sha[:12]} (it knew it before it kept code)"

    def _digest_of(self, current: Pack) -> str:
        if self._current is None:
            self._current = packcode.checks_digest(current.rubric.checks_dir)
        return self._current

    def _load(self, sha: str, checks: str) -> Pack | str:
        if (sha, checks) not in self._loaded:
            folder = self.work / f"{sha[:12]}-{checks[:12]}"
            folder.mkdir()
            try:
                blob = self.gradebook.book.kept_pack(sha, checks)
                if blob is None:
                    raise InputError("not kept")
                self._loaded[(sha, checks)] = load_pack(load_rubric(packcode.unpack(blob, folder)))
            except InputError as e:
                self._loaded[(sha, checks)] = (
                    f"the code the book keeps for rubric {sha[:12]} does not load: {e}"
                )
        return self._loaded[(sha, checks)]


def examine(
    gradebook: Any,
    lab_id: str,
    path: Path,
    report: Report,
    packs: KeptPacks,
    key: signing.Key,
) -> Checked:
    """One report of the folder at ``path``, checked as the module says."""
    student = report.student
    if not student:
        return Checked(["names no student (a roster run's report does)"])
    problem = id_problem(student)
    if problem:
        return Checked([problem])
    if student not in gradebook.roster:
        return Checked([f"{student!r} is not a student of the roster {gradebook.course.roster}"])
    try:
        signed = key.verify(path)
    except signing.SignatureError as e:
        return Checked([str(e).removeprefix(f"{path}: ")])
    rubric = gradebook.rubric(lab_id)
    known = gradebook.book.rubric_items(lab_id)
    sha = report.rubric.sha256
    if sha != rubric.sha256 and sha not in known:
        return Checked([
            f"graded with another rubric (sha256 {sha[:12]}) than {lab_id}'s "
            f"({rubric.sha256[:12]}, {rubric.path}), and not one the book knows for {lab_id}"
        ])  # fmt: skip
    items = (
        {i.id: i.points for i in rubric.items}
        if sha == rubric.sha256
        else {i.id: i.points for i in known[sha]}
    )
    if report.status not in ("graded", "unreachable", "error"):
        return Checked([f"status {report.status!r} is not a report's"])
    if report.view != "instructor":
        return Checked(["a student's view (the hidden checks left out): import an instructor's "
                        "grading"])  # fmt: skip
    numbers = _numbers(report, items)
    if numbers or report.status != "graded":
        return Checked(numbers, signed=signed)
    archived = _archive(path, report)
    if isinstance(archived, str):
        return Checked([archived], signed=signed)
    pack = packs.for_rubric(sha)
    if isinstance(pack, str):
        return Checked(unreplayed=None if signed else pack, signed=signed)
    return Checked(
        _replayed(gradebook, lab_id, report, archived, pack), replayed=True, signed=signed
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(report: Report, items: dict[str, float]) -> list[str]:
    total = sum(items.values())
    if not _finite(report.max_score) or abs(report.max_score - total) > 1e-9:
        return [f"max_score {report.max_score!r} is not the rubric's {total:g}"]
    if report.status != "graded":
        if report.score is not None or report.checks:
            return ["a report that was not graded has no score and no checks"]
        return []
    score = report.score
    if score is None or not _finite(score) or not 0 <= score <= report.max_score:
        return [f"score {score!r} is not a number from 0 to {report.max_score:g}"]
    problems = []
    ids = [c.id for c in report.checks]
    if sorted(ids) != sorted(items):
        missing = sorted(set(items) - set(ids))
        extra = sorted(set(ids) - set(items))
        problems.append(
            "its checks are not the rubric's"
            + (f" (missing {', '.join(missing)})" if missing else "")
            + (f" (not in the rubric: {', '.join(extra)})" if extra else "")
        )
    for c in report.checks:
        worth = items.get(c.id)
        if c.status not in STATUSES:
            problems.append(f"{c.id}: status {c.status!r} is not a check's")
        elif worth is None:
            continue
        elif not _finite(c.points) or not _finite(c.max_points) or c.max_points != worth:
            problems.append(f"{c.id}: out of {c.max_points!r}, but the rubric gives {worth:g}")
        elif c.points != (worth if c.status == Status.PASS else 0):
            problems.append(f"{c.id}: {c.points!r} point(s) for a check that ended {c.status}")
    if not problems and abs(sum(c.points for c in report.checks) - score) > 1e-6:
        problems.append(f"score {score:g} is not the sum of its checks' points")
    return problems


def _archive(path: Path, report: Report) -> Any:
    """The report's evidence archive, checked against it; a str says what is wrong."""

    try:
        return archive_of(path, report)
    except ArchiveError as e:
        return f"its evidence does not hold: {e}"


def _replayed(gradebook: Any, lab_id: str, report: Report, kept: Any, pack: Pack) -> list[str]:
    lab = gradebook.course.lab(lab_id)
    try:
        given = lab.given()
    except InputError:
        given = {}  # a secret not given: the checks that need it cannot confirm anything
    students = load_roster(
        gradebook.course.roster,
        gradebook.rubric(lab_id),
        Target(host=""),
        keys=False,
        ignore=gradebook.others_columns(lab_id),
    )
    own = next((dict(s.vars) for s in students if s.student == report.student), {})
    again = regrade(report, kept, pack, {**given, **own})
    said = {c.id: c.status for c in report.checks}
    differ = [
        f"{c.id} is {said.get(c.id)} in the report but {c.status} from its evidence"
        for c in again.checks
        if c.error_kind not in UNDECIDED and c.id in said and said[c.id] != c.status
    ]
    if not differ:
        return []
    return [f"its verdicts do not follow from its evidence archive: {'; '.join(differ)}"]
