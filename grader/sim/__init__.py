"""The lab simulator, and the public API a pack's scenarios module imports (only this module).

Simulated student VMs are Linux namespaces on an isolated bridge (198.18.0.0/24, no uplink)
running the lab's real daemons. A pack's ``scenarios.py`` (or ``scenarios/`` package), beside its
``rubric.toml``, declares:

- ``SCENARIOS``: {name: Scenario}, each a way a student may have done the lab, with the verdict
  every check must give on it (``grade prove`` holds the pack to them);
- ``TOOLS``: the programs its VMs run besides sshd (to say what is missing before booting);
- ``GRADING_VARS`` (optional): rubric variables to grade its VMs with; ``{password}`` in a
  value stands for the simulated VMs' password (a lab user's, set by the scenario);
- ``REFERENCE`` (optional, default "complete"): the scenario of the lab done right, where
  ``grade prove --mutants`` starts; ``MUTANTS`` (optional): mutants of the pack's own kinds,
  besides those derived from what its checks read; ``LINE_KINDS`` (optional): the pack's own
  kinds of line mutant, for its files' syntax (each a ``LineKind``: given a file's lines,
  ``Line`` each, the changes it makes, ``LineChange`` each; see grader.sim.mutants);
  ``KINDS`` (optional): the pack's own kinds of mutant of what a check asked, by what was
  asked ("user", "file", "service", "processes" ...: ``Asked``), each a ``Kind``: given a
  ``Ground`` (what was asked, by which checks, and the reference VM), its ``Mutant`` each
  (see grader.sim.kinds).

``grade sim up|down|demo`` and ``grade prove`` run them; the project's tests use the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from grader.sim.asked import Asked
from grader.sim.fleet import Fleet
from grader.sim.kinds import Ground, Kind
from grader.sim.mutants import MAX_LINES, Line, LineChange, LineKind, Mutant, derive, described
from grader.sim.scenario import Scenario, wait_for
from grader.sim.vm import GATEWAY, NETWORK, VM, SimulatorError, missing_requirements

__all__ = [
    "GATEWAY",
    "MAX_LINES",
    "NETWORK",
    "VM",
    "Asked",
    "Fleet",
    "Ground",
    "Kind",
    "Line",
    "LineChange",
    "LineKind",
    "Mutant",
    "Scenario",
    "SimulatorError",
    "derive",
    "described",
    "missing_requirements",
    "rubric_variables",
    "wait_for",
]


def rubric_variables(
    rubric: Path, given: Mapping[str, str], student: str | None = None
) -> dict[str, str]:
    """A rubric's variables as the grader resolves them (defaults, ``given``, and ``student``'s
    variant derived): what a scenario needs to build a VM the way one student's is graded."""
    from grader.engine.rubric import load_rubric  # lazy: start-up (the engine only if asked)

    return load_rubric(rubric).resolve_vars(given, student=student)
