"""A lab pack, loaded: its rubric, the checks it names (bound both ways), and its probe kinds.

A pack is a folder: ``rubric.toml``, a ``checks`` folder of plain pytest-testinfra tests (and,
optionally, ``probes.py`` there, with the pack's own kinds of outside probe), and the simulated
scenarios that prove it. Binding is checked both ways when it is loaded: a rubric item that
names no check, and a check that no rubric item marks, are both refused, naming the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from grader.checkload import Check, load_checks, load_probes
from grader.probes import Registry, pack_probes
from grader.rubric import Rubric, bind_checks

#: What a check may ask for by parameter name.
FIXTURES = ("host", "lab", "outside")


@dataclass(frozen=True)
class Pack:
    rubric: Rubric
    checks: Mapping[str, Check]
    probes: Registry


def load_pack(rubric: Rubric) -> Pack:
    checks = load_checks(rubric.checks_dir, FIXTURES)
    bound = bind_checks(rubric, checks)
    return Pack(bound, checks, Registry(pack_probes(load_probes(rubric.checks_dir))))
