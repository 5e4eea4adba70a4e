"""Signs that a grading should be looked at by a person, found across a class's reports.

Students control their VMs. Two students whose VMs show the same SSH host key did not each
build their own VM: one was cloned from the other, or the same VM was submitted twice. A
student who copies a VM and regenerates its host keys (ssh-keygen -A) still shares what the
rubric declares unique ([[unique]]: a machine-id, the Message-IDs of the mail the lab sent):
those are flagged the same way. A VM whose grading was answered by a classmate's machine (the
machine itself, known by its host key, machine-id and boot, not the address it had: DHCP moves
addresses) is flagged, and so is the classmate. What most of the class shares came with the
handed-out image and flags nobody (see grader.engine.identity). A flag is a question for staff,
never a mark.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from grader.base.results import Report
from grader.engine.identity import ANSWERED_BY_CLASSMATE, names, shared, sighting_of
from grader.engine.rubric import Unique

SHARED_HOST_KEY = "shared_host_key"


def flag_shared_host_keys(reports: Sequence[Report], unique: Sequence[Unique] = ()) -> list[Report]:
    """The reports again, each with its flags for what it shares with others set afresh: the
    SSH host key, each of the rubric's ``unique`` values, and the machine that answered."""
    compared = [r for r in reports if r.student]
    found, _ = shared([sighting_of(r) for r in compared], names(unique))
    flagged = []
    for report in reports:
        kept = tuple(
            f for f in report.flags
            if not f.kind.startswith("shared_") and f.kind != ANSWERED_BY_CLASSMATE
        )  # fmt: skip
        if report.student:
            kept += tuple(found.get(report.student, ()))
        flagged.append(dataclasses.replace(report, flags=kept))
    return flagged
