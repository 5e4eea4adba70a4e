"""A roster run's folder: one JSON report per student and the class summary.

Every file is written atomically (write, then rename): an interrupted run leaves whole files
only, and ``--resume`` can trust every report it finds. A store given a course's key signs each
report it writes, with its evidence archive (``<student>.json.sig``, see
grader.evidence.signing); writing a report again removes its old signature first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from grader.base.files import safe_name, write_atomic
from grader.base.results import Report, ReportFormatError
from grader.engine.rubric import Rubric
from grader.evidence import manifest, signing
from grader.evidence.archive import Archive, archive_path, dumps
from grader.report.outputs import class_outputs
from grader.report.render import render


class ReportStore:
    def __init__(
        self, directory: Path, create: bool = True, signer: signing.Key | None = None
    ) -> None:
        self.directory = directory
        self.signer = signer
        if create:
            directory.mkdir(parents=True, exist_ok=True)

    def path(self, student: str) -> Path:
        """A report's file: named after the student, or the host when there is no student."""
        return self.directory / f"{safe_name(student)}.json"

    def report_path(self, report: Report) -> Path:
        return self.path(report.student or report.host)

    def save(self, report: Report, kept: Archive | None = None) -> None:
        """Write the report, and first its evidence archive when there is one (so a report
        never names an archive that is not there)."""
        path = self.report_path(report)
        signing.forget(path)
        if kept is not None:
            write_atomic(archive_path(path), dumps(kept), private=True)
        write_atomic(path, render("json", report))
        if self.signer is not None:
            self.signer.sign(path)

    def take_archive(self, report: Report, source: Path) -> None:
        """Copy the evidence archive of the report file ``source`` (in another folder) to sit
        next to ``report`` here, as it is: its checksum is in the report."""
        signing.forget(self.report_path(report))
        write_atomic(
            archive_path(self.report_path(report)), archive_path(source).read_bytes(), private=True
        )

    def reusable(self, student: str, rubric: Rubric) -> Report | None:
        """The student's report, if it is complete, graded, and made with this same rubric."""
        try:
            report = Report.from_dict(json.loads(self.path(student).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        same = report.student == student and report.rubric.sha256 == rubric.sha256
        return report if same and report.status == "graded" else None

    def save_class(self, reports: list[Report], rubric: Rubric) -> None:
        """The class's pages, summary and exports, each file written whole."""
        for relative, text in class_outputs(reports, rubric).items():
            write_atomic(self.directory / relative, text)

    def read_all(self) -> Folder:
        """Every report in the folder, and every file that should be one but cannot be read
        (the run's manifest is not a report)."""
        found, unreadable = [], []
        for path in sorted(self.directory.glob("*.json")):
            if path.name == manifest.NAME:
                continue
            try:
                document = json.loads(path.read_text())
            except OSError as e:
                unreadable.append((path, e.strerror or str(e)))
                continue
            except (ValueError, RecursionError):
                unreadable.append((path, "not valid JSON"))
                continue
            try:
                found.append((path, Report.from_dict(document)))
            except ReportFormatError as e:
                unreadable.append((path, str(e)))
            except (KeyError, TypeError, AttributeError, ValueError):
                unreadable.append((path, "JSON, but not a report's fields"))
        return Folder(found, unreadable)


@dataclass(frozen=True)
class Folder:
    """What a folder of reports holds: the reports read, and the files that could not be."""

    found: list[tuple[Path, Report]]
    unreadable: list[tuple[Path, str]]

    @property
    def reports(self) -> list[Report]:
        return [report for _, report in self.found]

    def complaints(self) -> list[str]:
        return [
            f"{path}: not a report this grader can read ({why})" for path, why in self.unreadable
        ]
