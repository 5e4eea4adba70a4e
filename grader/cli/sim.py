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
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import paramiko
from rich.console import Console
from rich.table import Table
from rich.text import Text

from grader.base.errors import CommandTimeout, ExitStatus, HostError, InputError
from grader.cli.definition import Given
from grader.cli.grading import known_hosts_file, ssh_password
from grader.engine.catalog import built_in_rubric, find
from grader.engine.rubric import load_rubric
from grader.machine.execution import Target
from grader.machine.ssh import KnownHosts, connect, load_identity
from grader.report.render.safe import escaped
from grader.report.render.text import points
from grader.sim import NETWORK, VM, Fleet, Scenario, missing_requirements
from grader.sim.mutants import BACKUPS, Mutant, derive, judge, withheld
from grader.sim.pack import PackScenarios, chosen, load_scenarios
from grader.sim.proof import (
    GRADE,
    MUTANT_POOL,
    PASSWORD_VAR,
    Place,
    given,
    leftovers,
    originals_kept,
    report_of,
    resolver,
    verdicts,
    vm_place,
)
from grader.sim.prove import problems
from grader.sim.vm import NET

STATE = Path(f"/run/labsim/state{NET or ''}.json")  # what `up` left running, for `down`


def pack_scenarios(args: Given, live: bool = False) -> PackScenarios:
    """The scenarios of the pack --lab/--rubric names (see grader.sim.pack.load_scenarios)."""
    rubric = Path(args.rubric_path or (find(args.lab) if args.lab else None)
                  or built_in_rubric()).resolve()  # fmt: skip
    return load_scenarios(rubric, live)


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


def demo(console: Console, pack: PackScenarios, names: list[str], show: str | None,
         out: Path) -> int:  # fmt: skip
    started = time.monotonic()
    with pack.fleet() as fleet:
        vms = boot_with_progress(console, fleet, names)
        base = [*GRADE, "--rubric", str(pack.rubric), "--identity", str(fleet.identity),
                *given(fleet), "--known-hosts", str(fleet.workdir / "known_hosts")]  # fmt: skip
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
        f"{' '.join([*lab, *given(fleet)])}\n"
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
               "--known-hosts", str(fleet.workdir / "kh"), *given(fleet), *extra]  # fmt: skip
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


def sim(args: Given) -> int:
    console = Console()
    if args.action == "down":
        count = Fleet.take_down(STATE)
        console.print(f"Removed {count} simulated VM(s) and the simulator's bridge.")
        return ExitStatus.OK
    pack = pack_scenarios(args)
    if not _ready(console, pack):
        return ExitStatus.BAD_INPUT
    if args.action == "class":
        counts = [n for n in (args.scenarios or []) if n.isdigit()]
        return grade_class(console, pack, int(counts[0]) if counts else 30, _out(args, "class"))
    names = chosen(pack, (args.scenarios or []))
    if args.action == "up":
        return up(console, pack, names)
    return demo(console, pack, names, args.show, _out(args, "demo"))


def _out(args: Given, what: str) -> Path:
    return Path(args.out or Path("reports") / f"{what}-{datetime.now():%Y%m%d-%H%M%S}")


def prove_command(args: Given) -> int:
    console = Console()
    if args.host:  # live: a VM of the instructor's own, over SSH; no simulator
        if not args.mutants:
            raise InputError("--host applies to grade prove --mutants (live mode)")
        pack = pack_scenarios(args, live=True)
    else:
        pack = pack_scenarios(args)
        if not _ready(console, pack):
            return ExitStatus.BAD_INPUT
    if args.mutants:
        only = [c.strip() for each in (args.only or []) for c in each.split(",") if c.strip()]
        live = args if args.host else None
        return prove_mutants(console, pack, args.fmt == "json", only,
                             args.max_mutants, live)  # fmt: skip
    if args.only or args.max_mutants:
        raise InputError("--only and --max apply to grade prove --mutants")
    return prove(console, pack, args.fmt == "json")


@contextmanager
def _live_place(args: Given, pack: PackScenarios) -> Iterator[Place]:
    """The VM of ``--host``: one SSH session for the mutants' scripts, ``grade --host`` with
    the same connection options for each grading."""
    host = str(args.host)
    password = ssh_password(args)
    if args.identity is not None:
        load_identity(args.identity)  # an unusable key file is bad input, refused at once
    accept = frozenset(name or host for name in args.accept_changed)
    known_hosts = KnownHosts(known_hosts_file(args), accept)
    target = Target(host, args.port, args.user, args.identity, password, args.sudo)
    session = connect(target, known_hosts, args.connect_timeout)
    env = {**os.environ, **({PASSWORD_VAR: password} if password else {})}
    argv = [
        "--host", host, "--rubric", str(pack.rubric), "--port", str(args.port),
        "--user", str(args.user), "--known-hosts", str(known_hosts_file(args)),
        "--connect-timeout", str(args.connect_timeout),
        "--command-timeout", str(args.command_timeout),
        "--reply-timeout", str(args.reply_timeout),
        "--host-timeout", str(args.host_timeout),
        *(["--sudo"] if args.sudo else []),
        *(["--identity", str(args.identity)] if args.identity else []),
        *(["--password-env", PASSWORD_VAR] if password else []),
        *(["--student", str(args.student)] if args.student else []),
        *[a for value in args.variables for a in ("--var", value)],
        *[a for value in args.var_env for a in ("--var-env", value)],
        "--format", "json",
    ]  # fmt: skip

    def sh(script: str) -> tuple[int, str, str]:
        try:
            done = session.exec(script.encode(), timeout=120)
        except (HostError, CommandTimeout) as e:
            return 255, "", str(e)
        except (paramiko.SSHException, EOFError, OSError) as e:  # the connection lost meanwhile
            return 255, "", f"the SSH connection to {host} was lost: {e}"
        return (
            done.exit_status,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )

    def grade(only: Sequence[str]) -> dict[str, Any] | None:
        run = subprocess.run(
            [*GRADE, *argv, *[a for check in only for a in ("--only", check)]],
            capture_output=True, text=True, check=False, env=env,
        )  # fmt: skip
        report, why = report_of(run)
        if report is None:
            place.failed.append(why)
        return report

    place = Place(host, sh, grade)
    try:
        yield place
    finally:
        session.close()


def _tell(console: Console, text: str) -> None:
    """A line for people that may hold what a VM wrote (a file's line, a command's error):
    control characters escaped, no markup read."""
    console.print(escaped(text), markup=False, highlight=False)


def prove_mutants(
    console: Console,
    pack: PackScenarios,
    as_json: bool,
    only: Sequence[str],
    limit: int | None,
    live: Given | None = None,
) -> int:
    """Grade the reference (a scenario booted, or with ``live`` the options of a VM done
    right), derive its mutants from what its checks read, grade each, and say which checks no
    mutant made fail (see grader.sim.mutants)."""
    say = Console(stderr=True) if as_json else console
    if not live and pack.reference not in pack.scenarios:
        raise InputError(
            f"{pack.rubric.parent}: no reference scenario {pack.reference!r} "
            "(REFERENCE in its scenarios module names the lab done right)"
        )
    known = {item.id for item in load_rubric(pack.rubric).items}
    unknown = [c for c in only if c not in known]
    if unknown:  # said before any VM boots
        raise InputError(f"{pack.rubric}: no check {unknown[0]!r} (--only)")
    problems_found: list[str] = []
    graded: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    kept_back: dict[str, str] = {}  # mutant -> why it was not applied
    started = time.monotonic()
    pool: list[Place] = []
    finished = False  # the VMs were graded again at the end
    why_kept: dict[str, str] = {}  # place -> why the originals of its files are kept there
    try:
        with ExitStack() as stack:
            if live:
                what = f"{live.host} (live: the lab done right)"
                _tell(
                    say,
                    f"Live proof on {live.host}: each mutant is applied there over SSH and "
                    "undone. Only ever a throwaway VM of your own, never a student's.",
                )
                try:
                    pool.append(stack.enter_context(_live_place(live, pack)))
                except HostError as e:
                    _tell(say, f"{live.host} could not be reached: {e}")
                    return ExitStatus.NOT_GRADED
            else:
                what = f"The reference scenario {pack.reference!r}"
                fleet = stack.enter_context(pack.fleet())
                scenario = pack.scenarios[pack.reference]
                booted = boot_with_progress(
                    say, fleet, [(f"reference{n + 1}", scenario) for n in range(MUTANT_POOL)]
                )
                pool += [vm_place(fleet, pack, vm) for vm in booted.values()]
            for place in pool:
                left = leftovers(place)
                if left:
                    _tell(
                        say,
                        f"{place.name}: {BACKUPS} holds what an earlier proof kept there (the "
                        f"originals of the files its mutants changed: {left}). Put back what you "
                        "need, remove the folder, and prove again.",
                    )
                    return ExitStatus.NOT_GRADED
            first = pool[0].grade(())
            if first is None and live:  # the session reached it: what did the grading say?
                why = pool[0].failed[-1] if pool[0].failed else "no report"
                _tell(say, f"{what} could not be graded: {why}")
                return ExitStatus.NOT_GRADED
            if first is None or first["score"] != first["max_score"]:
                score = (
                    "not graded" if first is None else f"{first['score']:g}/{first['max_score']:g}"
                )
                _tell(say, f"{what} must get full marks: it got {score}")
                return ExitStatus.NOT_ALL_PASSED
            reference = verdicts(first)

            def contents(path: str) -> str | None:
                q = shlex.quote(path)
                status, text, _ = pool[0].sh(f"[ -f {q} ] && [ ! -L {q} ] && head -c 262144 -- {q}")
                return text if status == 0 else None

            made = derive(first["checks"], contents, only, kinds=pack.line_kinds)
            made += [m for m in pack.mutants if not only or set(only) & set(m.read_by)]
            chosen = made[:limit] if limit else made
            resolve = resolver(pool[0])
            for mutant in chosen:
                reason = withheld(mutant, live=bool(live), resolve=resolve)
                if reason:
                    kept_back[mutant.id] = reason
            mutants = [m for m in chosen if m.id not in kept_back]
            _tell(
                say,
                f"Reference {'on ' + str(live.host) if live else pack.reference}: full marks "
                f"({first['score']:g}). {len(made)} mutant(s) of what its checks read"
                + (f", {len(chosen)} taken (--max)" if len(chosen) < len(made) else "")
                + (f", {len(kept_back)} not applied" if kept_back else "")
                + ".",
            )
            alone = [m for m in mutants if m.undo is None]  # never live: withheld there
            own = (
                boot_with_progress(
                    say, fleet, [(f"mutant{n + 1}", scenario) for n in range(len(alone))]
                )
                if alone
                else {}
            )
            done, counting = 0, threading.Lock()

            def try_one(mutant: Mutant, place: Place) -> None:
                nonlocal done
                try:
                    if mutant.backup:  # kept from here on (the apply may fail after saving)
                        place.originals.pop(mutant.path, None)
                        place.originals[mutant.path] = mutant.backup
                    status, _, err = place.sh(mutant.apply)
                    if status != 0:
                        errors[mutant.id] = f"could not be applied: {err.strip()[:200]}"
                    else:
                        # a file changed: the checks that name it or its folder, no more (each
                        # grading talks to the VM's daemons, and a daemon may turn away an address
                        # that connects too often); a daemon stopped: every check
                        report = place.grade(mutant.read_by if mutant.undo else only)
                        if report is None:
                            errors[mutant.id] = "the VM could not be graded with it"
                        else:
                            graded[mutant.id] = verdicts(report)
                finally:  # Ctrl-C included: a live VM is never left with a mutant applied
                    if mutant.undo is not None:
                        status, _, err = place.sh(mutant.undo)
                        if status != 0:  # the VM is not the reference: no more mutants there
                            place.stuck.append(mutant)
                            kept = (
                                f"; the original of {mutant.path} is kept there at {mutant.backup}"
                                if mutant.backup
                                else ""
                            )
                            problems_found.append(
                                f"{place.name}: undoing {mutant.description} failed: "
                                f"{err.strip()[:200] or f'exit status {status}'}{kept}; no more "
                                "mutants were applied there"
                            )
                with counting:
                    done += 1
                changed = sorted(
                    c for c, s in graded.get(mutant.id, {}).items() if reference[c] != s
                )
                _tell(
                    say,
                    f"  [{done}/{len(mutants)}] {mutant.description}: "
                    + (errors.get(mutant.id) or (", ".join(changed) or "no verdict changed")),
                )

            stopping = threading.Event()  # Ctrl-C: each VM finishes the mutant it has, no more

            def take(place: Place, share: Sequence[Mutant]) -> None:
                for mutant in share:
                    if stopping.is_set():
                        return
                    if place.stuck:
                        errors[mutant.id] = (
                            f"not applied: undoing {place.stuck[0].description} on {place.name} "
                            "failed"
                        )
                        continue
                    try_one(mutant, place)

            undoable = [m for m in mutants if m.undo is not None]
            shares = [(place, undoable[n :: len(pool)]) for n, place in enumerate(pool)]
            shares += [
                (vm_place(fleet, pack, vm), [m]) for vm, m in zip(own.values(), alone, strict=True)
            ]
            if live:  # one VM: in this thread, so that Ctrl-C undoes the mutant it has
                take(*shares[0])
            else:
                with ThreadPoolExecutor(len(shares)) as workers:
                    try:
                        list(workers.map(lambda pair: take(*pair), shares))
                    except KeyboardInterrupt:
                        stopping.set()
                        raise
            for place in pool:  # each undo put the VM back as it was: graded again, the reference
                again = place.grade(only)
                now = verdicts(again) if again is not None else {}
                moved = [f"{c} {reference[c]} -> {s}" for c, s in now.items() if reference[c] != s]
                if again is None or moved:
                    problems_found.append(
                        f"{place.name} did not come back to the reference after its mutants "
                        "were undone: " + ("; ".join(moved) if moved else "it could not be graded")
                    )
                    why_kept[place.name] = "it did not come back to the reference"
                elif place.stuck:
                    why_kept[place.name] = "undoing a mutant failed"
                elif place.originals:  # as it was at the start: the originals go
                    status, _, err = place.sh(f"rm -rf -- {shlex.quote(BACKUPS)}")
                    if status == 0:
                        place.originals.clear()
                    else:
                        why_kept[place.name] = (
                            f"they could not be removed: {err.strip()[:200] or status}"
                        )
            finished = True
    finally:  # Ctrl-C and a lost connection included: say where the originals are
        for place in pool if live else ():
            if place.originals:
                why = why_kept.get(place.name, "the proof stopped before the VM was graded again")
                kept = originals_kept(place, why)
                if finished:
                    problems_found.append(kept)
                else:
                    _tell(say, kept)

    matrix = judge(reference, graded, errors)
    checks = list(only) or list(reference)
    survivors = matrix.survivors(checks)
    tried = {m.id: m for m in chosen}
    # a survivor whose mutants were all kept back was not proved here, rather than passing
    unproved = {
        check: reasons
        for check in survivors
        if not any(check in m.read_by for m in mutants)
        and (
            reasons := [kept_back[m.id] for m in chosen if check in m.read_by and m.id in kept_back]
        )
    }
    if as_json:
        shown = {
            "rubric": str(pack.rubric),
            "reference": f"live:{live.host}" if live else pack.reference,
            "mutants": [
                {
                    "id": m.id,
                    "description": m.description,
                    "read_by": list(m.read_by),
                    "changed": matrix.changed.get(m.id),
                    "error": errors.get(m.id),
                    "not_applied": kept_back.get(m.id),
                }
                for m in chosen
            ],
            "killed": {c: matrix.killed_by(c) for c in checks},
            "survivors": survivors,
            "not_proved": {c: why[0] for c, why in unproved.items()},
            "gaps": matrix.gaps(),
            "problems": problems_found,
            # on the live VM: file -> where its original is (kept when it did not come back)
            "originals_kept": {p.name: p.originals for p in pool if live and p.originals},
        }
        sys.stdout.write(json.dumps(shown, indent=2) + "\n")
    else:
        table = Table(
            title=f"Mutants of {'the VM at ' + str(live.host) if live else pack.reference}: "
            "which made each check fail",
            header_style="bold",
        )
        for column in ("Check", "Killed by", "For example"):
            table.add_column(column, overflow="fold")
        for check in checks:
            killers = matrix.killed_by(check)
            table.add_row(
                check,
                str(len(killers)) if killers else "[red]none[/red]",
                Text(escaped(tried[killers[0]].description)) if killers else "",
            )
        console.print(table)
        gaps = matrix.gaps()
        if gaps:
            console.print(
                f"{len(gaps)} mutant(s) changed no verdict (a gap in the rubric, or "
                "harmless: the lab's author judges), e.g.:",
                markup=False,
            )
            for gap in gaps[:8]:
                _tell(console, f"  {tried[gap].description}")
        if kept_back:
            console.print(f"{len(kept_back)} mutant(s) not applied:", markup=False)
            for key, why in list(kept_back.items())[:8]:
                _tell(console, f"  {tried[key].description}: {why}")
        for line in problems_found:
            _tell(console, f"  {line}")
        for check in survivors:
            read = [m.description for m in mutants if check in m.read_by][:2]
            if check in unproved:
                _tell(
                    console,
                    f"not proved: {check}: every mutant of what it reads was not applied "
                    f"({unproved[check][0]})",
                )
                continue
            _tell(
                console,
                f"survives: {check} passes with every mutant"
                + (
                    f" (e.g. {'; '.join(read)})"
                    if read
                    else " (it reads nothing of the VM a mutant can change)"
                ),
            )
        verdict = (
            "every check fails when it should"
            if not survivors and not problems_found
            else f"{len(survivors)} check(s) no mutant made fail"
            + (f" ({len(unproved)} of them not proved here)" if unproved else "")
            + (f"; {len(problems_found)} problem(s)" if problems_found else "")
        )
        _tell(
            console,
            f"{pack.rubric}: {verdict} ({len(mutants)} mutants in "
            f"{time.monotonic() - started:.0f} s)",
        )
    return ExitStatus.NOT_ALL_PASSED if survivors or problems_found else ExitStatus.OK
