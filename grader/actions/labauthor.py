"""What a lab's author does besides proving its checks (grader.actions.prove): make a new pack
that runs as made (``grade new-lab``), and grade the VMs its expected-verdicts file names,
saying where a verdict differs (``grade prove --expect``)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.actions.grading import Connection, HostRequest, grade_host
from grader.base.errors import InputError
from grader.engine.pack import load_pack
from grader.engine.rubric import load_rubric
from grader.engine.scaffold import make_pack
from grader.sim.expect import (
    Difference,
    Expected,
    ExpectedVM,
    differences,
    load_expected,
    shown,
)
from grader.sim.pack import PackScenarios, load_scenarios
from grader.sim.proof import given
from grader.sim.watch import SimWatch, boot

__all__ = [
    "Difference",
    "ExpectRequest",
    "ExpectedChecked",
    "NewLab",
    "NewLabRequest",
    "PackScenarios",
    "SimWatch",
    "check_expected",
    "expected_of",
    "new_lab",
    "shown",
]


@dataclass(frozen=True)
class NewLabRequest:
    folder: Path  # a new folder, or an empty one
    title: str | None = None  # the lab's title (None: from the folder's name)


@dataclass(frozen=True)
class NewLab:
    rubric: Path
    title: str
    files: tuple[Path, ...]  # what was written, in order


def new_lab(request: NewLabRequest) -> NewLab:
    """Write a new pack into the folder and check it loads as a pack and as scenarios (a pack
    that does not is a bug of the grader's, never the author's)."""
    files = tuple(make_pack(request.folder, request.title))
    rubric = request.folder / "rubric.toml"
    loaded = load_pack(load_rubric(rubric))
    load_scenarios(rubric)
    return NewLab(rubric, loaded.rubric.title, files)


def expected_of(pack: PackScenarios, path: Path | None = None) -> Expected:
    """The pack's expected verdicts: ``path``, or the ``expected.toml`` beside its rubric;
    validated against its checks and its scenarios. Said before any VM boots or is reached."""
    path = path or pack.rubric.parent / "expected.toml"
    if not path.is_file():
        raise InputError(
            f"{path}: no expected verdicts there (an expected.toml of [[vm]] tables: see "
            "grade new-lab's)"
        )
    rubric = load_rubric(pack.rubric)
    scenarios = list(pack.scenarios) if pack.scenarios else None
    return load_expected(path, [item.id for item in rubric.items], scenarios)


@dataclass(frozen=True)
class ExpectRequest:
    """Grade each VM of ``expected`` and compare: hosts with ``connection`` (None: there are
    none), scenarios on the simulator (the pack's network)."""

    pack: PackScenarios
    expected: Expected
    connection: Connection | None = None
    variables: Mapping[str, str] = field(default_factory=dict, repr=False)  # for the hosts
    student: str | None = None  # whose variant the hosts are


@dataclass(frozen=True)
class GradedVM:
    name: str
    where: str  # "scenario complete", "host 10.0.0.5"
    statuses: Mapping[str, str]  # check -> status ({}: not graded)


@dataclass(frozen=True)
class ExpectedChecked:
    path: Path
    vms: tuple[GradedVM, ...]
    differences: tuple[Difference, ...]
    seconds: float

    @property
    def as_expected(self) -> bool:
        return not self.differences


def check_expected(request: ExpectRequest, watch: SimWatch | None = None) -> ExpectedChecked:
    """Grade every VM the expected verdicts name (the scenarios booted on the simulator, the
    hosts reached over SSH) and say where a verdict differs from the one expected."""
    started = time.monotonic()
    expected, pack = request.expected, request.pack
    hosts = [vm for vm in expected.vms if vm.host is not None]
    if hosts and request.connection is None:
        raise InputError(f"{expected.path}: its hosts need the connection options (--identity ...)")
    reports: dict[str, tuple[dict[str, Any] | None, str]] = {}
    if expected.scenarios:
        reports.update(_graded_scenarios(pack, expected.scenarios, watch or SimWatch()))
    graded = []
    found: list[Difference] = []
    for vm in expected.vms:
        if vm.host is not None:
            assert request.connection is not None
            report, why = _graded_host(pack, vm, request)
            where = f"host {vm.host}"
        else:
            report, why = reports[str(vm.scenario)]
            where = f"scenario {vm.scenario}"
        statuses = {c["id"]: c["status"] for c in (report or {}).get("checks", ())}
        graded.append(GradedVM(vm.name, where, statuses))
        found += differences(vm, report, why)
    return ExpectedChecked(expected.path, tuple(graded), tuple(found), time.monotonic() - started)


def _graded_host(
    pack: PackScenarios, vm: ExpectedVM, request: ExpectRequest
) -> tuple[dict[str, Any] | None, str]:
    """A host's JSON report (as `grade --host` makes it), graded as any host is: its
    connection failures retried."""
    assert request.connection is not None and vm.host is not None
    done = grade_host(
        HostRequest(load_pack(load_rubric(pack.rubric)), request.connection, host=vm.host,
                    variables=request.variables, student=request.student)
    )  # fmt: skip
    return done.report.to_dict(), ""


def _graded_scenarios(
    pack: PackScenarios, names: Sequence[str], watch: SimWatch
) -> dict[str, tuple[dict[str, Any] | None, str]]:
    """Each scenario's VM booted and graded (named after its scenario, whose student it is,
    as grade prove's are), its JSON report."""
    loaded = load_pack(load_rubric(pack.rubric))
    found: dict[str, tuple[dict[str, Any] | None, str]] = {}
    with pack.fleet() as fleet:
        vms = boot(fleet, list(names), watch)
        connection = Connection(identity=fleet.identity, known_hosts=fleet.workdir / "kh")
        for name, vm in vms.items():
            variables = dict(_pairs(given(fleet)))
            variables.update(pack.scenarios[name].vars)
            done = grade_host(
                HostRequest(loaded, connection, host=vm.address, variables=variables,
                            student=name)
            )  # fmt: skip
            found[name] = (done.report.to_dict(), "")
    return found


def _pairs(arguments: Sequence[str]) -> list[tuple[str, str]]:
    """``--var NAME=VALUE`` pairs, as (NAME, VALUE)."""
    values = arguments[1::2]
    return [(v.partition("=")[0], v.partition("=")[2]) for v in values]
