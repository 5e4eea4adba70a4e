"""Re-mark a graded folder from its evidence archives, without the VMs (``grade regrade``), and
show the evidence behind one decision (``grade show``).

Each graded student's checks run again against a replay of what their VM answered when it was
graded (see grader.evidence.archive), under the rubric given now: new points, hints,
dependencies and visibility apply; what the VM was never asked is an error ("needs the live
VM"). A student who was not graded stays not graded. An archive that is missing, unreadable,
changed after grading or not the one its report was made from, or whose time is not the one
the report says, is refused: that student is reported as not regraded, with the reason, and the
others are regraded. So is a report signed with the course's key (see
grader.evidence.signing) whose signature does not verify, when the folder lies in a course; an
unsigned one is regraded as any other (a regrade decides from the archive). The source folder
is never written to; the new reports are signed when the regrade is given a course's key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from grader.base.errors import CommandTimeout, InputError
from grader.base.results import PRIVATE_KEY_SHOWN, Report, RubricRef, cut_private_keys
from grader.base.words import ErrorKind, Status
from grader.classrun.batch import close_class
from grader.engine.pack import Pack
from grader.engine.rubric import Rubric, closest
from grader.engine.runner import regrade
from grader.evidence import signing
from grader.evidence.archive import Archive, ArchiveError, archive_path, load
from grader.machine.backend import answer_text
from grader.machine.execution import Completed
from grader.report.render.safe import escaped
from grader.report.render.text import points
from grader.report.store import ReportStore
from grader.report.views import student_view


@dataclass(frozen=True)
class Change:
    who: str
    before: Report
    after: Report


@dataclass(frozen=True)
class Regraded:
    reports: list[Report]
    replayed: int  # students re-marked from their archive
    needed_live: int  # checks that asked for something never recorded
    needed_secret: int  # checks whose recorded answer held a secret not given again
    changes: list[Change]  # students whose score (or whose score's maximum) changed


def regrade_folder(
    found: Sequence[tuple[Path, Report]],
    out: Path,
    pack: Pack,
    given: Mapping[str, str],
    ssh_password: str | None = None,
    finished: Callable[[Report], None] = lambda report: None,
    per_student: Mapping[str, tuple[Mapping[str, str], str | None]] | None = None,
    verify: signing.Key | None = None,
    signer: signing.Key | None = None,
) -> Regraded:
    """Regrade the reports ``found`` in a folder (``ReportStore.read_all()``) into ``out``.
    ``given`` variables and ``ssh_password`` apply to everyone; ``per_student`` (a roster's
    variables and SSH password, by student) to one student each. ``verify``: the key of the
    course the folder lies in (a signed report must verify); ``signer``: the key that signs
    the new reports."""
    rubric = pack.rubric
    store = ReportStore(out, signer=signer)
    reports, changes = [], []
    replayed = needed_live = needed_secret = 0
    for path, report in found:
        refused = _signature_refused(verify, path)
        if refused is not None:
            new, kept = _refused(report, rubric, refused), None
        elif report.status != "graded":
            new, kept = _carried_over(report, rubric), None
        else:
            try:
                kept = archive_of(path, report)
            except ArchiveError as e:
                new, kept = _refused(report, rubric, str(e)), None
            else:
                own, password = (per_student or {}).get(report.student or "", ({}, None))
                new = regrade(report, kept, pack, {**own, **given}, password or ssh_password)
                new = dataclasses.replace(new, person=report.person)  # the roster's, as graded
                if report.view == "student":
                    new = student_view(new, rubric)
                replayed += 1
                needed_live += sum(c.error_kind == ErrorKind.NEEDS_LIVE_VM for c in new.checks)
                needed_secret += sum(c.error_kind == ErrorKind.NEEDS_SECRET for c in new.checks)
        if kept is not None:
            store.take_archive(new, path)
        store.save(new)
        reports.append(new)
        marked = new.score is not None or report.score is not None
        if marked and (new.score, new.max_score) != (report.score, report.max_score):
            changes.append(Change(new.student or new.host, report, new))
        finished(new)
    return Regraded(
        close_class(store, reports, rubric), replayed, needed_live, needed_secret, changes
    )


def _signature_refused(key: signing.Key | None, path: Path) -> str | None:
    """Why a report's signature refuses it (None: verified, unsigned, or no course to ask)."""
    try:
        if key is not None:
            key.verify(path)
    except signing.SignatureError as e:
        return str(e)
    return None


def archive_of(path: Path, report: Report) -> Archive:
    """The report's evidence archive, checked against it: its checksum, its student and host,
    and its time (a report's time is its archive's). ArchiveError says what does not hold."""
    where = archive_path(path)
    if report.evidence_sha256 is None:
        raise ArchiveError(f"{path}: the report names no evidence archive (graded before archives)")
    if not where.exists():
        raise ArchiveError(f"{where}: the evidence archive of {path.name} is missing")
    kept = load(where)
    if kept.sha256 != report.evidence_sha256:
        raise ArchiveError(
            f"{where}: not the archive {path.name} was graded from (its checksum differs from the "
            "one the report records)"
        )
    if (kept.body.student, kept.body.host) != (report.student, report.host):
        raise ArchiveError(f"{where}: recorded for another student or host than {path.name}")
    if _moment(report.graded_at) != _moment(kept.body.graded_at) or not report.graded_at:
        raise ArchiveError(
            f"{where}: made at {kept.body.graded_at[:40]}, but {path.name} says it was graded at "
            f"{report.graded_at[:40]}: a report's time is its archive's"
        )
    return kept


def _moment(text: str) -> datetime | str:
    """A time as written in a report or an archive (the text itself when it is not one)."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, TypeError, AttributeError):
        return text


def _carried_over(report: Report, rubric: Rubric) -> Report:
    """A student who was not graded has nothing to replay: still not graded, under the new
    rubric."""
    return dataclasses.replace(
        report, rubric=RubricRef(rubric.title, rubric.sha256), max_score=rubric.max_score
    )


def _refused(report: Report, rubric: Rubric, why: str) -> Report:
    return dataclasses.replace(
        _carried_over(report, rubric),
        status="error",
        error=f"not regraded: {why}; grade this student again on the live VM",
        error_kind=ErrorKind.EVIDENCE_REFUSED,
        score=None,
        checks=(),
        evidence_sha256=None,
    )


def describe_changes(changes: list[Change], limit: int = 40) -> str:
    """The students whose marks moved, a line each: who, before, after."""
    if not changes:
        return "No student's score changed.\n"

    def score(report: Report) -> str:
        if report.score is None:
            return f"not graded ({report.error_kind})"
        return f"{points(report.score)}/{points(report.max_score)}"

    width = max(len(c.who) for c in changes[:limit])
    lines = [f"Scores changed for {len(changes)} student(s):"]
    lines += [f"  {c.who:<{width}}  {score(c.before)} -> {score(c.after)}" for c in changes[:limit]]
    if len(changes) > limit:
        lines.append(f"  ... and {len(changes) - limit} more (see summary.csv)")
    return escaped("\n".join(lines)) + "\n"


def find_report(directory: Path, who: str) -> tuple[Path, Report]:
    """A report of the folder by student id, host, or file name."""
    folder = ReportStore(directory).read_all()
    for path, report in folder.found:
        if who in (report.student, report.host, path.stem, path.name):
            return path, report
    for path, why in folder.unreadable:
        if who in (path.stem, path.name):
            raise InputError(f"{path}: not a report this grader can read ({why})")
    names = [r.student or r.host for _, r in folder.found]
    if not names:
        raise InputError(f"{directory}: no reports (<student>.json) in this folder")
    raise InputError(f"{directory}: no report of {who!r}{closest(who, names)}")


def show(directory: Path, who: str, check_id: str, max_lines: int | None) -> str:
    """The decision on one check and all the evidence behind it, as recorded."""
    path, report = find_report(directory, who)
    by_id = {c.id: c for c in report.checks}
    if check_id not in by_id:
        if not report.checks:
            raise InputError(f"{path}: {who} was not graded ({report.error}); no check to show")
        raise InputError(f"{path}: no check {check_id!r}{closest(check_id, by_id)}")
    check = by_id[check_id]
    lines = [
        f"{report.student or report.host} ({report.host}), graded {report.graded_at}"
        + (f", regraded {report.regraded_at}" if report.regraded_at else "")
        + f", host key {report.host_key or 'unknown'}",
        f"rubric: {report.rubric.title} (sha256 {report.rubric.sha256[:12]})",
    ]
    recorded: dict[str, str] = {}
    try:
        kept = archive_of(path, report)
    except ArchiveError as e:
        lines.append(f"evidence archive: {e}; showing the report's excerpts only")
    else:
        lines.append(
            f"evidence archive: {archive_path(path).name}, checksum verified "
            f"(sha256 {kept.sha256[:12]}), grader {kept.body.grader_version}"
        )
        recorded = _full_outputs(kept)
    lines += [
        "",
        f"{check.id}: {check.title}",
        f"  status: {check.status.upper()}, {points(check.points)}/{points(check.max_points)}"
        + (f" ({check.error_kind})" if check.error_kind else ""),
    ]
    if check.message:
        lines.append(f"  message: {check.message}")
    if check.status != Status.PASS and check.hint:
        lines.append(f"  hint: {check.hint}")
    lines += [f"  note: {n}" for n in check.notes]
    lines += ["", f"Evidence ({len(check.evidence)} piece(s), in the order the check asked):"]
    for piece in check.evidence:
        full = recorded.get(piece.source)
        lines += ["", f"$ {piece.source}" if full is not None else f"> {piece.source}"]
        text, said = cut_private_keys(full if full is not None else piece.output)
        lines += _bounded(text.split("\n"), max_lines)
        if said:
            lines.append(f"  ({PRIVATE_KEY_SHOWN})")
    return escaped("\n".join(lines)) + "\n"  # nothing from the VM drives the terminal


def _full_outputs(kept: Archive) -> dict[str, str]:
    """Each recorded command's whole answer as stored (the grading's secrets as ****, saying
    so), keyed and written as the evidence has it."""
    outputs = {}
    for entry in kept.body.commands:
        command = entry.command.stored.decode("utf-8", errors="replace")
        if entry.omitted is not None:
            outputs[command] = f"(output not kept: {entry.omitted})"
            continue
        if entry.timeout is not None:
            outputs[command] = answer_text(CommandTimeout(entry.timeout))
            continue
        stdout, stderr = entry.stdout, entry.stderr
        answer = Completed(
            entry.exit if entry.exit is not None else -1,
            stdout.stored if stdout else b"",
            stderr.stored if stderr else b"",
            entry.truncated,
        )
        masked = len(stdout.holes if stdout else ()) + len(stderr.holes if stderr else ())
        outputs[command] = answer_text(answer) + (
            f"\n(the grader kept {masked} secret(s) of the grading out of this record: "
            "shown as ****)"
            if masked
            else ""
        )
    return outputs


def _bounded(lines: list[str], max_lines: int | None) -> list[str]:
    if max_lines is None or len(lines) <= max_lines:
        return ["  " + line for line in lines]
    return ["  " + line for line in lines[:max_lines]] + [
        f"  ... ({len(lines) - max_lines} more lines; --all shows them)"
    ]
