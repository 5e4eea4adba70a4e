"""What a front end hears while simulated VMs boot and a proof runs: nothing below the front
end prints, it tells a watch (each method does nothing here; a front end's watch shows)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Sequence
from typing import IO, Any

from grader.sim.fleet import Fleet
from grader.sim.mutants import Mutant
from grader.sim.scenario import Scenario
from grader.sim.vm import DEFAULT, VM


class SimWatch:
    """Simulated VMs booting."""

    def booting(self, count: int) -> None:
        """``count`` VMs are about to boot, each built as its scenario says."""

    def booted(self, vm: VM, done: int, count: int, seconds: float) -> None:
        """``vm`` is ready, the ``done``-th of ``count``, built in ``seconds``."""

    def ready(self, count: int, seconds: float, network: str) -> None:
        """Every VM is ready, on the simulator's isolated bridge (``network``: "198.18.N.0/24")."""

    def booting_class(self, count: int) -> contextlib.AbstractContextManager[Any]:
        """What is around the boot of a class of ``count`` VMs (``grade sim class``), which
        hears of no VM one by one."""
        return contextlib.nullcontext()

    def class_booted(self, count: int, seconds: float) -> None:
        """The class's VMs are ready."""

    def class_output(self) -> int | IO[Any] | None:
        """Where `grade --roster`'s own output goes when a class of VMs is graded (its
        progress and its class table): a file, ``subprocess.DEVNULL``, or None (this
        process's own standard output)."""
        return subprocess.DEVNULL


class ProofWatch(SimWatch):
    """A proof with mutants as it goes."""

    def planned(
        self, reference: str, live: bool, score: float, made: int, taken: int, withheld: int
    ) -> None:
        """The reference (a scenario, or the live VM's address) got full marks (``score``):
        ``made`` mutants were derived, ``taken`` of them taken (--max), ``withheld`` of those
        will not be applied."""

    def tried(
        self, mutant: Mutant, done: int, count: int, error: str | None, changed: Sequence[str]
    ) -> None:
        """``mutant`` was graded (the ``done``-th of ``count``): the checks whose verdict it
        changed, or why it could not be graded."""

    def note(self, text: str) -> None:
        """A line for people that may hold what a VM wrote (a path, a command's error): the
        originals a live VM keeps, when the proof stops before its end."""


def boot(
    fleet: Fleet, names: Sequence[str | tuple[str, Scenario]], watch: SimWatch
) -> dict[str, VM]:
    """Boot the scenarios' VMs, telling ``watch`` as each one is ready."""
    started = time.monotonic()
    watch.booting(len(names))
    done = 0

    def booted(vm: VM, seconds: float) -> None:
        nonlocal done
        done += 1
        watch.booted(vm, done, len(names), seconds)

    vms = fleet.boot(names, booted=booted)
    watch.ready(len(vms), time.monotonic() - started, (fleet.net or DEFAULT).cidr)
    return vms
