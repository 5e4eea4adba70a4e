"""Signs that a grading should be looked at by a person, found across a class's reports.

Students control their VMs. Two students whose VMs show the same SSH host key did not each
build their own VM: one was cloned from the other, or the same VM was submitted twice.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

from grader.results import Flag, Report

SHARED_HOST_KEY = "shared_host_key"


def flag_shared_host_keys(reports: Sequence[Report]) -> list[Report]:
    """The reports again, each with its shared-host-key flag set afresh (or removed)."""
    holders: dict[str, list[str]] = defaultdict(list)
    for report in reports:
        if report.host_key and report.student:
            holders[report.host_key].append(report.student)
    flagged = []
    for report in reports:
        others = tuple(s for s in holders.get(report.host_key or "", ()) if s != report.student)
        kept = tuple(f for f in report.flags if f.kind != SHARED_HOST_KEY)
        if others:
            kept += (
                Flag(
                    SHARED_HOST_KEY,
                    f"same SSH host key ({report.host_key}) as {', '.join(others)}: "
                    "a cloned VM, or one VM submitted twice?",
                    others,
                ),
            )
        flagged.append(dataclasses.replace(report, flags=kept))
    return flagged
