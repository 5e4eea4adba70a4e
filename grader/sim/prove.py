"""A pack proves its own checks: graded on its simulated scenarios, every check must give the
verdict each scenario declares, and must both pass somewhere and fail (or be skipped by a
dependency that failed) somewhere, or it cannot tell a lab done right from one not done: a
check that cannot fail is a defect in a rubric, as in a test suite.

    grade prove              # Lab 6 (as root: it boots the scenarios' VMs)
    grade prove --lab lab7   # a pack, by name or folder
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from grader.base.proving import ScenariosProved
from grader.sim.fleet import Fleet
from grader.sim.pack import PackScenarios
from grader.sim.place import GRADE, given
from grader.sim.vm import VM
from grader.sim.watch import SimWatch, boot

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


def prove_scenarios(pack: PackScenarios, watch: SimWatch) -> ScenariosProved:
    """Boot every scenario, grade them as a class, and say whether every check gives the
    verdict each scenario states and both passes and fails somewhere."""
    with pack.fleet() as fleet:
        vms = boot(fleet, list(pack.scenarios), watch)
        out = fleet.workdir / "graded"
        grade_class(fleet, pack, vms, out)
        graded = {}
        for name in vms:
            report = json.loads((out / f"{name}.json").read_text())
            graded[name] = {c["id"]: c["status"] for c in report["checks"]}
    found = problems({n: s.expected for n, s in pack.scenarios.items()}, graded)
    return ScenariosProved(pack.rubric, found, graded)


def roster(fleet: Fleet, vms: Mapping[str, VM], path: Path) -> Path:
    """A roster of ``vms`` (each VM's name its student's), written to ``path``."""
    rows = "".join(f"{name},{vm.address},{fleet.identity}\n" for name, vm in vms.items())
    path.write_text("student,host,identity\n" + rows)
    return path


def grade_class(
    fleet: Fleet,
    pack: PackScenarios,
    vms: Mapping[str, VM],
    out: Path,
    extra: Sequence[str] = (),
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
) -> None:
    """Grade ``vms`` as a class with `grade --roster` into ``out`` (``extra``: its further
    options), its own output to ``stdout`` (None: this process's)."""
    listed = roster(fleet, vms, fleet.workdir / "class.csv")
    command = [*GRADE, "--roster", str(listed), "--rubric", str(pack.rubric), "--out", str(out),
               "--known-hosts", str(fleet.workdir / "kh"), *given(fleet), *extra]  # fmt: skip
    subprocess.run(command, check=False, stdout=stdout)
