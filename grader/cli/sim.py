"""``grade sim`` and ``grade prove``: a pack's simulated VMs, booted from its scenarios module.

    grade sim demo [SCENARIO...]   boot the VMs, grade each with `grade --host`, remove them
    grade sim up [SCENARIO...]     boot them and leave them running, to try by hand
    grade sim down                 remove the VMs `up` left running
    grade sim class N              grade a class of N VMs (the scenarios in turn) with --roster
    grade prove                    grade every scenario; does each check give its verdict, and
                                   both pass and fail somewhere?

Each takes --lab NAME (or --rubric PATH): the pack whose scenarios boot (default: the built-in
lab). They need root: the VMs are network namespaces on a bridge of their own.

Each command turns its options into a request of grader.actions.sim or grader.actions.prove,
calls that action with a watch that shows on the terminal what it hears, and renders what it
returns (the proofs' findings: grader.report.render.proof).
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from grader.actions import prove as act
from grader.actions import sim as sims
from grader.base.errors import ExitStatus, InputError
from grader.base.proving import ProofStopped
from grader.cli.definition import Given
from grader.cli.grading import connection_of
from grader.engine.catalog import built_in_rubric, find
from grader.report.render import render
from grader.report.render.safe import escaped
from grader.sim.vm import SimNet


def pack_scenarios(args: Given, live: bool = False) -> act.PackScenarios:
    """The scenarios of the pack --lab/--rubric names (see grader.actions.prove.pack_of), its
    VMs on the network --sim-network and --sim-prefix give."""
    rubric = Path(args.rubric_path or (find(args.lab) if args.lab else None)
                  or built_in_rubric()).resolve()  # fmt: skip
    return dataclasses.replace(act.pack_of(rubric, live), net=sim_net(args))


def sim_net(args: Given) -> SimNet | None:
    """The simulator network of --sim-network and --sim-prefix (None: the default)."""
    if args.sim_network is None and args.sim_prefix is None:
        return None
    try:
        return SimNet.of(args.sim_network, args.sim_prefix)
    except ValueError as e:
        raise InputError(f"--sim-network/--sim-prefix: {e}") from None


def _ready(console: Console, pack: act.PackScenarios) -> bool:
    why = act.simulator_missing(pack)
    if why is not None:
        console.print(why, markup=False)
    return why is None


def _tell(console: Console, text: str) -> None:
    """A line for people that may hold what a VM wrote (a file's line, a command's error):
    control characters escaped, no markup read."""
    console.print(escaped(text), markup=False, highlight=False)


class Watch(sims.DemoWatch, act.ProofWatch):
    """Simulated VMs booting, a VM shown in full, a proof as it goes: on ``console``."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def booting(self, count: int) -> None:
        self.console.print(
            f"Booting {count} simulated VMs (Linux namespaces running the lab's real "
            "daemons) and doing the lab on each as its scenario says. Each takes a few seconds; "
            "the very first run after installing the packages is slower (daemons build their "
            "maps, caches are cold).",
            highlight=False,
        )

    def booted(self, vm: act.VM, done: int, count: int, seconds: float) -> None:
        self.console.print(f"  [{done}/{count}] {vm.name} ({vm.address}) ready in {seconds:.1f} s",
                           highlight=False, markup=False)  # fmt: skip

    def ready(self, count: int, seconds: float, network: str) -> None:
        self.console.print(
            f"Booted {count} VMs in {seconds:.1f} s on the isolated bridge {network}.\n"
        )

    def booting_class(self, count: int) -> contextlib.AbstractContextManager[Any]:
        return self.console.status(f"Booting {count} VMs and doing the lab on them...")

    def class_booted(self, count: int, seconds: float) -> None:
        self.console.print(f"Booted {count} VMs in {seconds:.1f} s.")

    def class_output(self) -> int | IO[Any] | None:
        return None  # `grade --roster`'s progress and class table, on this terminal

    def show(self, name: str, address: str, description: str, command: Sequence[str]) -> None:
        self.console.rule(f"grade --host {address}   ({name}: {description})")
        subprocess.run(command, check=False)
        self.console.rule()

    def planned(
        self, reference: str, live: bool, score: float, made: int, taken: int, withheld: int
    ) -> None:
        _tell(
            self.console,
            f"Reference {'on ' + reference if live else reference}: full marks "
            f"({score:g}). {made} mutant(s) of what its checks read"
            + (f", {taken} taken (--max)" if taken < made else "")
            + (f", {withheld} not applied" if withheld else "")
            + ".",
        )

    def tried(
        self, mutant: act.Mutant, done: int, count: int, error: str | None, changed: Sequence[str]
    ) -> None:
        _tell(
            self.console,
            f"  [{done}/{count}] {mutant.description}: "
            + (error or (", ".join(changed) or "no verdict changed")),
        )

    def note(self, text: str) -> None:
        _tell(self.console, text)


def sim(args: Given) -> int:
    console = Console()
    if args.action == "down":
        count = sims.down(sim_net(args))
        console.print(f"Removed {count} simulated VM(s) and the simulator's bridge.")
        return ExitStatus.OK
    pack = pack_scenarios(args)
    if not _ready(console, pack):
        return ExitStatus.BAD_INPUT
    watch = Watch(console)
    if args.action == "class":
        counts = [n for n in (args.scenarios or []) if n.isdigit()]
        count = int(counts[0]) if counts else 30
        graded = sims.grade_a_class(pack, count, _out(args, "class"), watch)
        wrong = graded.wrong
        verdict = "all rows as expected" if not wrong else "WRONG: " + ", ".join(wrong)
        console.print(f"Summary checked against the scenarios: {verdict}", markup=False)
        return ExitStatus.NOT_ALL_PASSED if wrong else ExitStatus.OK
    names = sims.chosen(pack, (args.scenarios or []))
    if args.action == "up":
        _running(console, sims.up(pack, names, watch))
        return ExitStatus.OK
    done = sims.demo(pack, names, _out(args, "demo"), args.show, watch)
    _demo(console, done)
    return ExitStatus.OK if done.as_expected else ExitStatus.NOT_ALL_PASSED


def _out(args: Given, what: str) -> Path:
    return Path(args.out or Path("reports") / f"{what}-{datetime.now():%Y%m%d-%H%M%S}")


def _running(console: Console, running: sims.Running) -> None:
    """The VMs `grade sim up` left running, and how to grade one and log in."""
    key, known = running.identity, running.known_hosts
    table = Table(title="Sample VMs, running", header_style="bold")
    for column in ("VM", "address", "what the student did"):
        table.add_column(column)
    for name, address, description in running.vms:
        table.add_row(name, address, description)
    console.print(table)
    first = running.vms[0][1]
    console.print(
        f"SSH key: {key}  (root's password on every VM: {running.password})\n"
        f"Grade one:  grade --host {first} --identity {key} --known-hosts {known} "
        f"{' '.join(running.options)}\n"
        f"Log in:     ssh -i {key} -o UserKnownHostsFile={known} root@{first}\n"
        "Take them down: grade sim down  (running the tests also does)",
        highlight=False,
        markup=False,
    )


def _demo(console: Console, done: sims.Demo) -> None:
    """The sample VMs graded, each against its scenario."""
    summary = Table(title="The sample VMs, graded", header_style="bold")
    for column in ("VM", "What the student did", "Score", "Lost marks", "As expected"):
        summary.add_column(column, no_wrap=column in ("VM", "Score", "As expected"))
    for row in done.rows:
        lost = row.lost
        more = f" (+{len(lost) - 3} more)" if len(lost) > 3 else ""
        summary.add_row(
            f"{row.name}\n{row.address}",
            row.description,
            f"{row.score:g} / {row.max_score:g}",
            ", ".join(lost[:3]) + more if lost else "-",
            "[green]yes[/green]" if row.as_expected else "[red]NO[/red]",
        )
    console.print(summary)
    out = done.out
    console.print(
        f"Reports and evidence archives: {out}/<address>.json, .evidence.json.gz   "
        f"Total time {done.seconds:.1f} s.\n"
        f"The VMs are gone; to mark them again from their evidence: grade regrade {out}",
        highlight=False,
        markup=False,
    )


def prove_command(args: Given) -> int:
    console = Console()
    if args.expect is not None:  # the VMs of the pack's expected verdicts
        # lazy: start-up (grade prove --expect's own command)
        from grader.cli.labauthor import prove_expected

        pack = pack_scenarios(args, live=True)
        watch = Watch(Console(stderr=True) if args.fmt == "json" else console)
        return prove_expected(args, pack, lambda: _ready(console, pack), watch)
    if args.host:  # live: a VM of the instructor's own, over SSH; no simulator
        if not args.mutants:
            raise InputError("--host applies to grade prove --mutants (live mode)")
        pack = pack_scenarios(args, live=True)
    else:
        pack = pack_scenarios(args)
        if not _ready(console, pack):
            return ExitStatus.BAD_INPUT
    as_json = args.fmt == "json"
    watch = Watch(Console(stderr=True) if as_json else console)
    if not args.mutants:
        if args.only or args.max_mutants:
            raise InputError("--only and --max apply to grade prove --mutants")
        if args.allow:
            raise InputError("--allow applies to grade prove --mutants")
        proved = act.prove_pack(pack, watch)
        _render(console, "proof_json" if as_json else "proof", proved)
        return ExitStatus.NOT_ALL_PASSED if proved.problems else ExitStatus.OK
    only = tuple(c.strip() for each in (args.only or []) for c in each.split(",") if c.strip())
    act.check_mutants(pack, only, live=bool(args.host))  # said before any VM boots
    live = None
    if args.host:
        _tell(
            watch.console,
            f"Live proof on {args.host}: each mutant is applied there over SSH and undone. "
            "Only ever a throwaway VM of your own, never a student's.",
        )  # before the password is asked for
        live = act.LiveVM(args.host, connection_of(args), args.student,
                          tuple(args.variables), tuple(args.var_env))  # fmt: skip
    allowed = tuple(args.allow or ())
    done = act.prove_mutants(act.MutantsRequest(pack, only, args.max_mutants, live, allowed), watch)
    if isinstance(done, ProofStopped):
        _tell(watch.console, done.why)
        return ExitStatus.NOT_GRADED if done.unreachable else ExitStatus.NOT_ALL_PASSED
    _render(console, "kill_matrix_json" if as_json else "kill_matrix", done)
    return ExitStatus.OK if done.proved else ExitStatus.NOT_ALL_PASSED


def _render(console: Console, kind: str, found: Any) -> None:
    """A proof's findings on stdout, drawn for this terminal (or plain, when it is none)."""
    sys.stdout.write(render(kind, found, terminal=console.is_terminal, width=console.width))
    sys.stdout.flush()
