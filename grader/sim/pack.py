"""A pack's scenarios module, loaded: what ``grade sim`` and ``grade prove`` boot."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from grader.base.errors import InputError
from grader.sim.fleet import Fleet
from grader.sim.mutants import LineKind, Mutant
from grader.sim.scenario import Scenario
from grader.sim.vm import SimNet


@dataclass(frozen=True)
class PackScenarios:
    """A pack's scenarios module: what ``grade sim`` and ``grade prove`` boot."""

    rubric: Path
    scenarios: Mapping[str, Scenario]
    tools: tuple[str, ...]
    grading_vars: Mapping[str, str]  # "{password}" in a value: the VMs' password
    reference: str = "complete"  # the scenario of the lab done right (mutants start from it)
    mutants: tuple[Mutant, ...] = ()  # the pack's own kinds, besides the derived ones
    line_kinds: tuple[LineKind, ...] = ()  # its own kinds of line mutant (its files' syntax)
    #: its own kinds of mutant of what a check asked ("user", "file" ...: grader.sim.kinds)
    kinds: Mapping[str, tuple[Callable[..., Any], ...]] = field(default_factory=dict)
    net: SimNet | None = None  # the simulator network its VMs boot on (None: the default)

    def fleet(self, net: SimNet | None = None) -> Fleet:
        """Its VMs' fleet, on ``net`` (None: the simulator network GRADER_SIM_NET gives)."""
        return Fleet(self.scenarios, self.grading_vars, net=net or self.net)


def load_scenarios(rubric: Path, live: bool = False) -> PackScenarios:
    """The scenarios of the pack of ``rubric``: ``scenarios.py`` or ``scenarios/`` beside it.
    ``live``: a pack without one will do (a live proof takes only its own mutants from it, if
    it has one)."""
    folder = rubric.parent
    package = folder / "scenarios" / "__init__.py"
    path = package if package.is_file() else folder / "scenarios.py"
    if not path.is_file() and live:
        return PackScenarios(rubric, {}, (), {})
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
    reference = getattr(module, "REFERENCE", "complete")
    own = tuple(getattr(module, "MUTANTS", ()))
    if not all(isinstance(m, Mutant) for m in own):
        raise InputError(f"{path}: MUTANTS holds grader.sim.Mutant objects")
    kinds = tuple(getattr(module, "LINE_KINDS", ()))
    if not all(callable(kind) for kind in kinds):
        raise InputError(f"{path}: LINE_KINDS holds functions (grader.sim.LineKind)")
    return PackScenarios(rubric, module.SCENARIOS, tuple(module.TOOLS),
                         dict(getattr(module, "GRADING_VARS", {})), reference, own,
                         kinds, _own_kinds(path, getattr(module, "KINDS", {})))  # fmt: skip


def _own_kinds(path: Path, given: Any) -> dict[str, tuple[Callable[..., Any], ...]]:
    """A scenarios module's KINDS: {what was asked: [kind, ...]}, each kind a function."""
    from grader.sim.asked import LISTED, NAMED  # lazy: start-up

    known = (*NAMED, *LISTED)
    if not isinstance(given, Mapping):
        raise InputError(f"{path}: KINDS maps what a check asked to kinds (grader.sim.Kind)")
    found = {}
    for what, kinds in given.items():
        if what not in known:
            raise InputError(f"{path}: KINDS: {what!r} is none of {', '.join(known)}")
        if not isinstance(kinds, (list, tuple)) or not all(callable(k) for k in kinds):
            raise InputError(f"{path}: KINDS[{what!r}] is a list of functions (grader.sim.Kind)")
        found[what] = tuple(kinds)
    return found


def chosen(pack: PackScenarios, names: Sequence[str]) -> list[str]:
    """The scenarios ``names`` (all of the pack's when none), each one the pack has."""
    unknown = [n for n in names if n not in pack.scenarios]
    if unknown:
        raise InputError(
            f"{pack.rubric.parent}: no scenario {unknown[0]!r}; its scenarios are "
            f"{', '.join(pack.scenarios)}"
        )
    return list(names) or list(pack.scenarios)
