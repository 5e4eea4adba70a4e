"""``grade sim`` and ``grade prove``: a pack's simulated VMs, booted from its scenarios module.

    grade sim demo [SCENARIO...]   boot the VMs, grade each with `grade --host`, remove them
    grade sim up [SCENARIO...]     boot them and leave them running, to try by hand
    grade sim down                 remove the VMs `up` left running
    grade sim class N              grade a class of N VMs (the scenarios in turn) with --roster
    grade prove                    grade every scenario; does each check give its verdict, and
                                   both pass and fail somewhere?

Each takes --lab NAME (or --rubric PATH): the pack whose scenarios boot (default: the built-in
lab). They need root: the VMs are network namespaces on a bridge of their own.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from grader.base.errors import ExitStatus, InputError
from grader.engine.catalog import built_in_rubric, find
from grader.engine.rubric import load_rubric
from grader.report.render.text import points
from grader.sim import NETWORK, VM, Fleet, Scenario, missing_requirements
from grader.sim.prove import problems
from grader.sim.vm import NET

STATE = Path(f"/run/labsim/state{NET or ''}.json")  # what `up` left running, for `down`
GRADE = [sys.executable, "-m", "grader"]  # this grader, whatever PATH holds


@dataclass(frozen=True)
class PackScenarios:
    """A pack's scenarios module: what ``grade sim`` and ``grade prove`` boot."""

    rubric: Path
    scenarios: Mapping[str, Scenario]
    tools: tuple[str, ...]
    grading_vars: Mapping[str, str]  # "{password}" in a value: the VMs' password

    def fleet(self) -> Fleet:
        return Fleet(self.scenarios, self.grading_vars)


def pack_scenarios(opts: Mapping[str, Any]) -> PackScenarios:
    """The scenarios of the pack --lab/--rubric names: ``scenarios.py`` or ``scenarios/``
    beside its rubric.toml."""
    rubric = Path(opts.get("rubric_path") or (find(opts["lab"]) if opts.get("lab") else None)
                  or built_in_rubric()).resolve()  # fmt: skip
    folder = rubric.parent
    package = folder / "scenarios" / "__init__.py"
    path = package if package.is_file() else folder / "scenarios.py"
    if not path.is_file():
        raise InputError(
            f"{folder}: this pack has no scenarios (scenarios.py or scenarios/ beside "
            "rubric.toml) to boot"
        )
    name = f"_pack_scenarios_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if path == package else None
    )
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # so that its own `from . import ...` finds it
    spec.loader.exec_module(module)
    for needed in ("SCENARIOS", "TOOLS"):
        if not hasattr(module, needed):
            raise InputError(f"{path}: a pack's scenarios module defines {needed}")
    return PackScenarios(rubric, module.SCENARIOS, tuple(module.TOOLS),
                         dict(getattr(module, "GRADING_VARS", {})))  # fmt: skip


def _ready(console: Console, pack: PackScenarios) -> bool:
    if os.geteuid() != 0:
        why = "the simulated VMs are network namespaces on a bridge of their own"
        console.print(f"grade sim and grade prove need root: {why} (sudo grade ...)", markup=False)
        return False
    missing = missing_requirements(pack.tools)
    if missing:
        console.print(f"The lab simulator cannot run here: {'; '.join(missing)} "
                      "(scripts/setup installs them)", markup=False)  # fmt: skip
    return not missing


def _chosen(pack: PackScenarios, names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in pack.scenarios]
    if unknown:
        raise InputError(
            f"{pack.rubric.parent}: no scenario {unknown[0]!r}; its scenarios are "
            f"{', '.join(pack.scenarios)}"
        )
    return list(names) or list(pack.scenarios)


def boot_with_progress(
    console: Console, fleet: Fleet, names: Sequence[str | tuple[str, Scenario]]
) -> dict[str, VM]:
    """Boot the scenarios' VMs, saying what is happening as each one is ready."""
    started = time.monotonic()
    console.print(
        f"Booting {len(names)} simulated VMs (Linux namespaces running the lab's real "
        "daemons) and doing the lab on each as its scenario says. Each takes a few seconds; "
        "the very first run after installing the packages is slower (daemons build their "
        "maps, caches are cold).",
        highlight=False,
    )
    done = 0

    def booted(vm: VM, seconds: float) -> None:
        nonlocal done
        done += 1
        console.print(f"  [{done}/{len(names)}] {vm.name} ({vm.address}) ready in {seconds:.1f} s",
                      highlight=False, markup=False)  # fmt: skip

    vms = fleet.boot(names, booted=booted)
    console.print(
        f"Booted {len(vms)} VMs in {time.monotonic() - started:.1f} s on the isolated bridge "
        f"{NETWORK}.0/24.\n"
    )
    return vms


def _roster(fleet: Fleet, vms: Mapping[str, VM], path: Path) -> Path:
    rows = "".join(f"{name},{vm.address},{fleet.identity}\n" for name, vm in vms.items())
    path.write_text("student,host,identity\n" + rows)
    return path


def _given(fleet: Fleet) -> list[str]:
    return [a for k, v in fleet.grading_vars.items() for a in ("--var", f"{k}={v}")]


def demo(console: Console, pack: PackScenarios, names: list[str], show: str | None,
         out: Path) -> int:  # fmt: skip
    started = time.monotonic()
    with pack.fleet() as fleet:
        vms = boot_with_progress(console, fleet, names)
        base = [*GRADE, "--rubric", str(pack.rubric), "--identity", str(fleet.identity),
                *_given(fleet), "--known-hosts", str(fleet.workdir / "known_hosts")]  # fmt: skip
        summary = Table(title="The sample VMs, graded", header_style="bold")
        for column in ("VM", "What the student did", "Score", "Lost marks", "As expected"):
            summary.add_column(column, no_wrap=column in ("VM", "Score", "As expected"))
        all_as_expected = True
        for name, vm in vms.items():
            scenario = pack.scenarios[name]
            if name == show:
                console.rule(f"grade --host {vm.address}   ({name}: {scenario.description})")
                subprocess.run([*base, "--host", vm.address], check=False)
                console.rule()
            run = subprocess.run(
                [*base, "--host", vm.address, "--format", "json", "--out", str(out)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            report = json.loads(run.stdout)
            statuses = {c["id"]: c["status"] for c in report["checks"]}
            ok = statuses == scenario.expected
            all_as_expected &= ok
            lost_ids = [c["id"] for c in report["checks"] if c["status"] != "pass"]
            more = f" (+{len(lost_ids) - 3} more)" if len(lost_ids) > 3 else ""
            summary.add_row(
                f"{name}\n{vm.address}",
                scenario.description,
                f"{report['score']:g} / {report['max_score']:g}",
                ", ".join(lost_ids[:3]) + more if lost_ids else "-",
                "[green]yes[/green]" if ok else "[red]NO[/red]",
            )
        console.print(summary)
    console.print(
        f"Reports and evidence archives: {out}/<address>.json, .evidence.json.gz   "
        f"Total time {time.monotonic() - started:.1f} s.\n"
        f"The VMs are gone; to mark them again from their evidence: grade regrade {out}",
        highlight=False,
        markup=False,
    )
    return ExitStatus.OK if all_as_expected else ExitStatus.NOT_ALL_PASSED


def up(console: Console, pack: PackScenarios, names: list[str]) -> int:
    """Boot the VMs and leave them running; print how to grade them by hand."""
    Fleet.take_down(STATE)
    fleet = pack.fleet().__enter__()
    try:
        vms = boot_with_progress(console, fleet, names)
    except BaseException:
        fleet.close()
        raise
    key, known = fleet.identity, fleet.workdir / "known_hosts"
    table = Table(title="Sample VMs, running", header_style="bold")
    for column in ("VM", "address", "what the student did"):
        table.add_column(column)
    for name, vm in vms.items():
        table.add_row(name, vm.address, pack.scenarios[name].description)
    console.print(table)
    first = next(iter(vms.values()))
    lab = [] if pack.rubric == built_in_rubric().resolve() else ["--rubric", str(pack.rubric)]
    console.print(
        f"SSH key: {key}  (root's password on every VM: {fleet.password})\n"
        f"Grade one:  grade --host {first.address} --identity {key} --known-hosts {known} "
        f"{' '.join([*lab, *_given(fleet)])}\n"
        f"Log in:     ssh -i {key} -o UserKnownHostsFile={known} root@{first.address}\n"
        "Take them down: grade sim down  (running the tests also does)",
        highlight=False,
        markup=False,
    )
    fleet.keep_running(STATE)
    return ExitStatus.OK


def _grade_class(fleet: Fleet, pack: PackScenarios, vms: Mapping[str, VM], out: Path,
                 *extra: str) -> None:  # fmt: skip
    roster = _roster(fleet, vms, fleet.workdir / "class.csv")
    command = [*GRADE, "--roster", str(roster), "--rubric", str(pack.rubric), "--out", str(out),
               "--known-hosts", str(fleet.workdir / "kh"), *_given(fleet), *extra]  # fmt: skip
    subprocess.run(command, check=False, stdout=None if extra else subprocess.DEVNULL)


def prove(console: Console, pack: PackScenarios, as_json: bool) -> int:
    """Boot every scenario, grade them as a class, and say whether every check gives the
    verdict each scenario states and both passes and fails somewhere."""
    with pack.fleet() as fleet:
        vms = boot_with_progress(Console(stderr=True) if as_json else console, fleet,
                                 list(pack.scenarios))  # fmt: skip
        out = fleet.workdir / "graded"
        _grade_class(fleet, pack, vms, out)
        graded = {}
        for name in vms:
            report = json.loads((out / f"{name}.json").read_text())
            graded[name] = {c["id"]: c["status"] for c in report["checks"]}
    found = problems({n: s.expected for n, s in pack.scenarios.items()}, graded)
    if as_json:
        shown = {"rubric": str(pack.rubric), "problems": found, "graded": graded}
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    else:
        for line in found:
            console.print(f"  {line}", markup=False, highlight=False)
        verdict = "the checks prove the lab" if not found else f"{len(found)} problem(s)"
        console.print(f"{pack.rubric}: {verdict} on {len(graded)} scenarios", markup=False)
    return ExitStatus.NOT_ALL_PASSED if found else ExitStatus.OK


def grade_class(console: Console, pack: PackScenarios, count: int, out: Path) -> int:
    """Boot ``count`` VMs (the scenarios in turn), grade them with `grade --roster` in this
    terminal, and check every row of the summary against the scenarios."""

    full = {i.id: points(i.points) for i in load_rubric(pack.rubric).items}
    names = list(pack.scenarios)
    plan = [(f"s{n + 1:03d}", pack.scenarios[names[n % len(names)]]) for n in range(count)]
    with pack.fleet() as fleet:
        started = time.monotonic()
        with console.status(f"Booting {count} VMs and doing the lab on them..."):
            vms = fleet.boot(plan)
        console.print(f"Booted {count} VMs in {time.monotonic() - started:.1f} s.")
        _grade_class(fleet, pack, vms, out, "--workers", "16")
    wrong = []
    with open(out / "summary.csv", newline="") as f:
        for row in csv.DictReader(f):
            expected = dict(plan)[row["student"]].expected
            passed = {check for check, most in full.items() if row[check] == most}
            want = {check for check, status in expected.items() if status == "pass"}
            if row["status"] != "graded" or passed != want:
                wrong.append(row["student"])
    verdict = "all rows as expected" if not wrong else "WRONG: " + ", ".join(wrong)
    console.print(f"Summary checked against the scenarios: {verdict}", markup=False)
    return ExitStatus.NOT_ALL_PASSED if wrong else ExitStatus.OK


def sim(opts: dict[str, Any]) -> int:
    console = Console()
    if opts["action"] == "down":
        count = Fleet.take_down(STATE)
        console.print(f"Removed {count} simulated VM(s) and the simulator's bridge.")
        return ExitStatus.OK
    pack = pack_scenarios(opts)
    if not _ready(console, pack):
        return ExitStatus.BAD_INPUT
    if opts["action"] == "class":
        counts = [n for n in opts.get("scenarios", []) if n.isdigit()]
        return grade_class(console, pack, int(counts[0]) if counts else 30, _out(opts, "class"))
    names = _chosen(pack, opts.get("scenarios", []))
    if opts["action"] == "up":
        return up(console, pack, names)
    return demo(console, pack, names, opts.get("show"), _out(opts, "demo"))


def _out(opts: Mapping[str, Any], what: str) -> Path:
    return Path(opts.get("out") or Path("reports") / f"{what}-{datetime.now():%Y%m%d-%H%M%S}")


def prove_command(opts: dict[str, Any]) -> int:
    console = Console()
    pack = pack_scenarios(opts)
    if not _ready(console, pack):
        return ExitStatus.BAD_INPUT
    return prove(console, pack, opts.get("fmt") == "json")
