"""JUnit XML for CI dashboards: one testsuite per student (or host), one testcase per check.

A host that could not be graded is a testsuite with one errored testcase, ``grading``, saying why.
ElementTree writes the XML, so text from a VM is escaped as XML requires; characters XML cannot
hold at all (control characters) are replaced.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from grader.base.results import Report
from grader.base.words import Status
from grader.report.render.safe import printable
from grader.report.render.text import points

EVIDENCE_CHARS = 4000  # per testcase


def render(reports: Report | Sequence[Report], **_: object) -> str:
    many = [reports] if isinstance(reports, Report) else list(reports)
    root = ET.Element("testsuites", name=printable(many[0].rubric.title) if many else "")
    for report in many:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=printable(report.student or report.host),
            timestamp=report.graded_at,
            time=f"{report.duration_s:.3f}",
        )
        ET.SubElement(
            ET.SubElement(suite, "properties"),
            "property",
            name="host",
            value=printable(report.host),
        )
        if report.status != "graded":
            case = ET.SubElement(suite, "testcase", classname="grading", name="grading")
            error = ET.SubElement(
                case,
                "error",
                message=printable(report.error or ""),
                type=report.error_kind or report.status,
            )
            error.text = printable(report.error or "")
            suite.attrib.update(tests="1", failures="0", errors="1", skipped="0")
            continue
        for check in report.checks:
            case = ET.SubElement(
                suite, "testcase", classname=printable(check.section), name=check.id
            )
            detail = [f"points {points(check.points)}/{points(check.max_points)}"]
            detail += [f"note: {n}" for n in check.notes]
            if check.hint and check.status != Status.PASS:
                detail.append(f"hint: {check.hint}")
            detail += [f"$ {e.source}\n{e.output}" for e in check.evidence]
            text = printable("\n".join(detail))[:EVIDENCE_CHARS]
            if check.status in (Status.FAIL, Status.ERROR):
                tag = "failure" if check.status == Status.FAIL else "error"
                node = ET.SubElement(
                    case,
                    tag,
                    message=printable(check.message),
                    type=check.error_kind or check.status,
                )
                node.text = text
            elif check.status == Status.SKIPPED:
                ET.SubElement(case, "skipped", message=printable(check.message))
            else:
                ET.SubElement(case, "system-out").text = text
        suite.attrib.update(
            tests=str(len(report.checks)),
            failures=str(sum(c.status == Status.FAIL for c in report.checks)),
            errors=str(sum(c.status == Status.ERROR for c in report.checks)),
            skipped=str(sum(c.status == Status.SKIPPED for c in report.checks)),
        )
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
