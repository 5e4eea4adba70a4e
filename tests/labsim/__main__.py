"""The lab simulator from the command line (as root):

python -m tests.labsim demo     boot the sample VMs, grade each with `grade --host`, remove them
python -m tests.labsim up       boot the sample VMs and leave them running, to try by hand
python -m tests.labsim down     remove the VMs `up` left running
python -m tests.labsim class N  grade a class of N simulated VMs with `grade --roster`
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from grader.engine.rubric import default_rubric_path, load_rubric
from grader.report.render.text import points

from .fleet import Fleet
from .scenarios import SCENARIOS, Scenario
from .scenarios import TOOLS as LAB6_TOOLS
from .vm import VM, missing_requirements

PROJECT = Path(__file__).resolve().parents[2]
STATE = Path("/run/labsim/state.json")  # what `up` left running, for `down`
FULL_MARKS = {i.id: points(i.points) for i in load_rubric(default_rubric_path()).items}


def demo(names: list[str], show: str, out: Path) -> int:
    console = Console()
    problems = missing_requirements()
    if problems:
        console.print(f"[red]The lab simulator cannot run here: {'; '.join(problems)}[/red]")
        return 2
    grade = shutil.which("grade", path=str(Path(sys.executable).parent)) or "grade"
    started = time.monotonic()
    with Fleet() as fleet:
        vms = boot_with_progress(console, fleet, names)
        base = [
            grade,
            "--identity",
            str(fleet.identity),
            "--var",
            f"bob_password={fleet.password}",
            "--known-hosts",
            str(fleet.workdir / "known_hosts"),
        ]
        summary = Table(title="The sample VMs, graded", header_style="bold")
        summary.add_column("VM", no_wrap=True)
        summary.add_column("What the student did")
        summary.add_column("Score", no_wrap=True, justify="right")
        summary.add_column("Lost marks")
        summary.add_column("As expected", no_wrap=True)
        all_as_expected = True
        for name, vm in vms.items():
            if name == show:
                console.rule(f"grade --host {vm.address}   ({name}: {SCENARIOS[name].description})")
                subprocess.run([*base, "--host", vm.address], check=False)
                console.rule()
            run = subprocess.run(
                [*base, "--host", vm.address, "--format", "json", "--out", str(out)],
                capture_output=True,
                text=True,
                check=False,
            )
            report = json.loads(run.stdout)
            statuses = {c["id"]: c["status"] for c in report["checks"]}
            ok = statuses == SCENARIOS[name].expected
            all_as_expected &= ok
            lost_ids = [c["id"] for c in report["checks"] if c["status"] != "pass"]
            lost = ", ".join(lost_ids[:3]) + (
                f" (+{len(lost_ids) - 3} more)" if len(lost_ids) > 3 else ""
            )
            summary.add_row(
                f"{name}\n{vm.address}",
                SCENARIOS[name].description,
                f"{report['score']:g} / {report['max_score']:g}",
                lost or "-",
                "[green]yes[/green]" if ok else "[red]NO[/red]",
            )
        console.print(summary)
    console.print(
        f"Reports and evidence archives: {out}/<address>.json, .evidence.json.gz   "
        f"Total time {time.monotonic() - started:.1f} s.\n"
        f"The VMs are gone; to mark them again from their evidence: grade regrade {out}"
    )
    return 0 if all_as_expected else 1


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
        "198.18.0.0/24.\n"
    )
    return vms


def up(names: list[str]) -> int:
    """Boot the sample VMs and leave them running; print how to grade them by hand."""
    console = Console()
    problems = missing_requirements()
    if problems:
        console.print(f"The lab simulator cannot run here: {'; '.join(problems)}", markup=False)
        return 2
    Fleet.take_down(STATE)
    fleet = Fleet().__enter__()
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
        table.add_row(name, vm.address, SCENARIOS[name].description)
    console.print(table)
    first = next(iter(vms.values()))
    console.print(
        f"SSH key: {key}  (root's password on every VM: {fleet.password})\n"
        f"Grade one:  grade --host {first.address} --identity {key} --known-hosts {known} "
        f"--var bob_password={fleet.password}\n"
        f"Log in:     ssh -i {key} -o UserKnownHostsFile={known} root@{first.address}\n"
        "Take them down: python -m tests.labsim down  (running the tests also does)",
        highlight=False,
        markup=False,
    )
    fleet.keep_running(STATE)
    return 0


def prove(pack: Path | None) -> int:
    """Boot a pack's scenarios, grade them as a class, and say whether every check gives the
    verdict each scenario states and both passes and fails somewhere (tests.labsim.prove)."""
    import importlib.util

    from .prove import problems

    console = Console()
    if pack is None:
        rubric, scenarios, tools = PROJECT / "rubric.toml", SCENARIOS, LAB6_TOOLS
        variables: dict[str, str] = {}
    else:
        spec = importlib.util.spec_from_file_location("pack_scenarios", pack / "scenarios.py")
        if spec is None or spec.loader is None:
            console.print(f"{pack}: no scenarios.py", markup=False)
            return 2
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rubric, scenarios, tools = pack / "rubric.toml", module.SCENARIOS, module.TOOLS
        variables = getattr(module, "GRADING_VARS", {})
    missing = missing_requirements(tools)
    if missing:
        console.print(f"The lab simulator cannot run here: {'; '.join(missing)}", markup=False)
        return 2
    grade = shutil.which("grade", path=str(Path(sys.executable).parent)) or "grade"
    with Fleet() as fleet:
        vms = boot_with_progress(console, fleet, [(n, s) for n, s in scenarios.items()])
        roster = fleet.workdir / "class.csv"
        roster.write_text(
            "student,host,identity\n"
            + "".join(f"{n},{vm.address},{fleet.identity}\n" for n, vm in vms.items())
        )
        out = fleet.workdir / "graded"
        given = [a for k, v in variables.items() for a in ("--var", f"{k}={v}")]
        if pack is None:
            given += ["--var", f"bob_password={fleet.password}"]
        subprocess.run(
            [grade, "--roster", str(roster), "--rubric", str(rubric), "--out", str(out),
             "--known-hosts", str(fleet.workdir / "kh"), *given],
            check=False, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        graded = {
            n: {c["id"]: c["status"] for c in json.loads((out / f"{n}.json").read_text())["checks"]}
            for n in vms
        }
    found = problems({n: s.expected for n, s in scenarios.items()}, graded)
    for line in found:
        console.print(f"  {line}", markup=False, highlight=False)
    console.print(
        f"{rubric}: {'the checks prove the lab' if not found else f'{len(found)} problem(s)'} "
        f"on {len(scenarios)} scenarios",
        markup=False,
    )
    return 1 if found else 0


def down() -> int:
    count = Fleet.take_down(STATE)
    print(f"Removed {count} sample VM(s) and the simulator's bridge.")
    return 0


def screenshot(page: Path, picture: Path) -> None:
    """A picture of a page as headless Chromium shows it (for the README)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        tab = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        tab.goto(page.as_uri())
        picture.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(picture), full_page=True)
        browser.close()


def grade_class(count: int, workers: int, out: Path, picture: Path | None = None) -> int:
    """Boot ``count`` VMs (the scenarios in turn), grade them with `grade --roster` in this
    terminal, and check every row of the summary against the scenarios."""
    console = Console()
    problems = missing_requirements()
    if problems:
        console.print(f"[red]The lab simulator cannot run here: {'; '.join(problems)}[/red]")
        return 2
    names = list(SCENARIOS)
    plan = [(f"s{n + 1:03d}", SCENARIOS[names[n % len(names)]]) for n in range(count)]
    grade = shutil.which("grade", path=str(Path(sys.executable).parent)) or "grade"
    with Fleet() as fleet:
        started = time.monotonic()
        with console.status(f"Booting {count} VMs and doing the lab on them..."):
            vms = fleet.boot(plan)
        console.print(f"Booted {count} VMs in {time.monotonic() - started:.1f} s.")
        roster = fleet.workdir / "class.csv"
        rows = [
            f"{name},{vm.address},{fleet.identity},{fleet.password}" for name, vm in vms.items()
        ]
        roster.write_text("student,host,identity,bob_password\n" + "\n".join(rows) + "\n")
        command = [
            grade,
            "--roster",
            str(roster),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--known-hosts",
            str(fleet.workdir / "known_hosts"),
        ]
        console.print("$ " + " ".join(command))
        subprocess.run(command, check=False)
    wrong = []
    with open(out / "summary.csv", newline="") as f:
        for row in csv.DictReader(f):
            expected = dict(plan)[row["student"]].expected
            passed = {check for check, full in FULL_MARKS.items() if row[check] == full}
            want = {check for check, status in expected.items() if status == "pass"}
            if row["status"] != "graded" or passed != want:
                wrong.append(row["student"])
    if picture is not None:
        screenshot(out / "index.html", picture)
        console.print(f"Screenshot of the class overview: {picture}")
    console.print(
        f"Summary checked against the scenarios: "
        f"{'all rows as expected' if not wrong else 'WRONG: ' + ', '.join(wrong)}"
    )
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.labsim")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("demo", help="grade the sample VMs (needs root)")
    run.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"which sample VMs (default: all of {', '.join(SCENARIOS)})",
    )
    run.add_argument(
        "--show", default="inetd_not_restarted", help="the VM whose full text report is shown"
    )
    run.add_argument(
        "--out", type=Path, default=PROJECT / "reports" / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    )
    many = sub.add_parser("class", help="grade a class of N simulated VMs with --roster")
    many.add_argument("count", type=int, nargs="?", default=30)
    many.add_argument("--workers", type=int, default=16)
    many.add_argument(
        "--out", type=Path, default=PROJECT / "reports" / f"class-{datetime.now():%Y%m%d-%H%M%S}"
    )
    many.add_argument("--screenshot", type=Path, help="save a picture of index.html here")
    started = sub.add_parser("up", help="boot the sample VMs and leave them running (needs root)")
    started.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    sub.add_parser("down", help="remove the VMs `up` left running")
    proving = sub.add_parser("prove", help="grade a pack's scenarios: do its checks prove it?")
    proving.add_argument("pack", nargs="?", type=Path, help="a pack folder (default: Lab 6)")
    args = parser.parse_args()
    if args.command == "class":
        return grade_class(args.count, args.workers, args.out, args.screenshot)
    if args.command == "down":
        return down()
    if args.command == "prove":
        return prove(args.pack)
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r} (choose from {', '.join(SCENARIOS)})")
    names = args.scenarios or list(SCENARIOS)
    if args.command == "up":
        return up(names)
    return demo(names, args.show, args.out)


if __name__ == "__main__":
    sys.exit(main())
