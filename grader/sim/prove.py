"""A pack proves its own checks: graded on its simulated scenarios, every check must give the
verdict each scenario declares, and must both pass somewhere and fail (or be skipped by a
dependency that failed) somewhere, or it cannot tell a lab done right from one not done: a
check that cannot fail is a defect in a rubric, as in a test suite.

    grade prove              # Lab 6 (as root: it boots the scenarios' VMs)
    grade prove --lab lab7   # a pack, by name or folder
"""

from __future__ import annotations

from collections.abc import Mapping

Verdicts = Mapping[str, Mapping[str, str]]  # scenario -> check -> status


def problems(expected: Verdicts, graded: Verdicts) -> list[str]:
    """What is wrong with a pack's checks, given what each scenario expects of every check and
    what grading its VM gave; [] when the pack proves its checks."""
    found = []
    for scenario, wanted in expected.items():
        got = graded.get(scenario)
        if got is None:
            found.append(f"{scenario}: not graded")
            continue
        for check, status in wanted.items():
            if got.get(check) != status:
                found.append(
                    f"{scenario}: {check} is {got.get(check, 'missing')}, the scenario says "
                    f"{status}"
                )
    checks = {check for wanted in expected.values() for check in wanted}
    for check in sorted(checks):
        statuses = {wanted.get(check) for wanted in expected.values()}
        if "pass" not in statuses:
            found.append(f"{check}: passes in no scenario (can it pass at all?)")
        if not statuses & {"fail", "skipped"}:
            found.append(f"{check}: fails in no scenario (a check that cannot fail proves nothing)")
    return found
