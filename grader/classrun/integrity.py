"""Signs that a grading should be looked at by a person, found across a class's reports.

Students control their VMs. Two students whose VMs show the same SSH host key did not each
build their own VM: one was cloned from the other, or the same VM was submitted twice. A
student who copies a VM and regenerates its host keys (ssh-keygen -A) still shares what the
rubric declares unique ([[unique]]: a machine-id, the Message-IDs of the mail the lab sent):
those are flagged the same way.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence

from grader.base.results import Flag, Report
from grader.engine.rubric import Unique

SHARED_HOST_KEY = "shared_host_key"


def flag_shared_host_keys(reports: Sequence[Report], unique: Sequence[Unique] = ()) -> list[Report]:
    """The reports again, each with its flags for what it shares with others set afresh: the
    SSH host key, and each of the rubric's ``unique`` values."""
    shared_kinds = {SHARED_HOST_KEY} | {f"shared_{u.id}" for u in unique}
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    for report in reports:
        if not report.student:
            continue
        if report.host_key:
            holders[(SHARED_HOST_KEY, report.host_key)].append(report.student)
        for u in unique:
            for digest in report.fingerprints.get(u.id, ()):
                holders[(f"shared_{u.id}", digest)].append(report.student)
    flagged = []
    for report in reports:
        kept = tuple(f for f in report.flags if f.kind not in shared_kinds)
        others = _others(holders, (SHARED_HOST_KEY, report.host_key or ""), report.student)
        if others:
            kept += (
                Flag(
                    SHARED_HOST_KEY,
                    f"same SSH host key ({report.host_key}) as {', '.join(others)}: "
                    "a cloned VM, or one VM submitted twice?",
                    others,
                ),
            )
        for u in unique:
            mine = report.fingerprints.get(u.id, ())
            others = tuple(
                dict.fromkeys(
                    s for d in mine for s in _others(holders, (f"shared_{u.id}", d), report.student)
                )
            )
            if others:
                kept += (
                    Flag(
                        f"shared_{u.id}",
                        f"same {u.what} as {', '.join(others)}: a copied VM?",
                        others,
                    ),
                )
        flagged.append(dataclasses.replace(report, flags=kept))
    return flagged


def _others(
    holders: dict[tuple[str, str], list[str]], key: tuple[str, str], student: str | None
) -> tuple[str, ...]:
    return tuple(s for s in holders.get(key, ()) if s != student)
