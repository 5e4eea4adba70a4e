"""A pack's simulated VMs (``grade sim``): booted and graded as a demonstration, left running
to try by hand, taken down, graded as a class. They need root: the VMs are network
namespaces on a bridge of their own. What happens as they boot a front end hears through a
``SimWatch`` (grader.sim.watch); each of these returns what it found, for the front end to
show."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grader.base.words import Status
from grader.engine.catalog import built_in_rubric
from grader.engine.rubric import load_rubric
from grader.report.render.text import points
from grader.sim import Fleet
from grader.sim.pack import PackScenarios, chosen
from grader.sim.proof import GRADE, given
from grader.sim.prove import grade_class
from grader.sim.vm import NET, SimNet
from grader.sim.watch import SimWatch, boot

__all__ = [
    "ClassGraded",
    "Demo",
    "DemoWatch",
    "Running",
    "chosen",
    "demo",
    "down",
    "grade_a_class",
    "up",
]

STATE = Path(f"/run/labsim/state{NET or ''}.json")  # what `up` left running, for `down`


def state_of(net: SimNet | None) -> Path:
    """Where ``up`` on ``net`` says what it left running (the default network: ``STATE``)."""
    return STATE if net is None else Path(f"/run/labsim/state-{net.prefix}.json")


def down(net: SimNet | None = None) -> int:
    """Remove the VMs ``up`` left running on ``net`` (and the simulator's bridge); how many
    there were."""
    return Fleet.take_down(state_of(net), net)


@dataclass(frozen=True)
class Running:
    """VMs booted and left running (until ``down``), and how to reach them."""

    vms: tuple[tuple[str, str, str], ...]  # (name, address, what the student did) each
    identity: Path  # the SSH key root logs in with on every VM
    known_hosts: Path
    password: str  # root's on every VM
    options: tuple[str, ...]  # what `grade --host` needs besides: the lab, its variables


def up(pack: PackScenarios, names: Sequence[str], watch: SimWatch | None = None) -> Running:
    """Boot the VMs of the scenarios ``names`` and leave them running."""
    Fleet.take_down(state_of(pack.net), pack.net)
    fleet = pack.fleet().__enter__()
    try:
        vms = boot(fleet, names, watch or SimWatch())
    except BaseException:
        fleet.close()
        raise
    lab = [] if pack.rubric == built_in_rubric().resolve() else ["--rubric", str(pack.rubric)]
    running = Running(
        tuple((name, vm.address, pack.scenarios[name].description) for name, vm in vms.items()),
        fleet.identity, fleet.workdir / "known_hosts", fleet.password,
        (*lab, *given(fleet)),
    )  # fmt: skip
    fleet.keep_running(state_of(pack.net))
    return running


class DemoWatch(SimWatch):
    def show(self, name: str, address: str, description: str, command: Sequence[str]) -> None:
        """A VM asked to be shown in full (``DemoRequest.show``): a front end that shows it
        runs ``command`` (`grade --host` of it, as a person would) where its user sees it."""


@dataclass(frozen=True)
class DemoRow:
    name: str
    address: str
    description: str  # what the student did
    score: float
    max_score: float
    lost: tuple[str, ...]  # the checks that did not pass
    as_expected: bool  # every check gave the verdict the scenario states


@dataclass(frozen=True)
class Demo:
    rows: tuple[DemoRow, ...]
    out: Path  # where the reports and evidence archives are
    seconds: float

    @property
    def as_expected(self) -> bool:
        return all(row.as_expected for row in self.rows)


def demo(
    pack: PackScenarios,
    names: Sequence[str],
    out: Path,
    show: str | None = None,
    watch: DemoWatch | None = None,
) -> Demo:
    """Boot the VMs of the scenarios ``names``, grade each with `grade --host` (its report
    and evidence into ``out``), compare with what its scenario states, and remove them."""
    watch = watch or DemoWatch()
    started = time.monotonic()
    rows = []
    with pack.fleet() as fleet:
        vms = boot(fleet, names, watch)
        base = [*GRADE, "--rubric", str(pack.rubric), "--identity", str(fleet.identity),
                *given(fleet), "--known-hosts", str(fleet.workdir / "known_hosts")]  # fmt: skip
        for name, vm in vms.items():
            scenario = pack.scenarios[name]
            if name == show:
                watch.show(name, vm.address, scenario.description, [*base, "--host", vm.address])
            run = subprocess.run(
                [*base, "--host", vm.address, "--format", "json", "--out", str(out)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            report = json.loads(run.stdout)
            statuses = {c["id"]: c["status"] for c in report["checks"]}
            lost = tuple(c["id"] for c in report["checks"] if c["status"] != "pass")
            row = DemoRow(name, vm.address, scenario.description, report["score"],
                          report["max_score"], lost, statuses == scenario.expected)  # fmt: skip
            rows.append(row)
    return Demo(tuple(rows), out, time.monotonic() - started)


@dataclass(frozen=True)
class ClassGraded:
    wrong: tuple[str, ...]  # the students whose row of the summary is not as their scenario


def grade_a_class(
    pack: PackScenarios, count: int, out: Path, watch: SimWatch | None = None
) -> ClassGraded:
    """Boot ``count`` VMs (the scenarios in turn), grade them with `grade --roster` into
    ``out``, and check every row of its summary against the scenarios."""
    watch = watch or SimWatch()
    full = {i.id: points(i.points) for i in load_rubric(pack.rubric).items}
    names = list(pack.scenarios)
    plan = [(f"s{n + 1:03d}", pack.scenarios[names[n % len(names)]]) for n in range(count)]
    with pack.fleet() as fleet:
        started = time.monotonic()
        with watch.booting_class(count):
            vms = fleet.boot(plan)
        watch.class_booted(count, time.monotonic() - started)
        grade_class(fleet, pack, vms, out, ("--workers", "16"), watch.class_output())
    wrong = []
    with open(out / "summary.csv", newline="") as f:
        for row in csv.DictReader(f):
            expected = dict(plan)[row["student"]].expected
            passed = {check for check, most in full.items() if row[check] == most}
            want = {check for check, status in expected.items() if status == Status.PASS}
            if row["status"] != "graded" or passed != want:
                wrong.append(row["student"])
    return ClassGraded(tuple(wrong))
