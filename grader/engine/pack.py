"""A lab pack, loaded: its rubric, the checks it names (bound both ways), and its probe kinds.

A pack is a folder: ``rubric.toml``, a ``checks`` folder of plain pytest-testinfra tests (and,
optionally, ``probes.py`` there, with the pack's own kinds of outside probe), and the simulated
scenarios that prove it. Binding is checked both ways when it is loaded: a rubric item that
names no check, and a check that no rubric item marks, are both refused, naming the files.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from grader.base.errors import InputError
from grader.base.files import write_atomic
from grader.engine.checkload import Check, load_checks, load_probes
from grader.engine.fixtures import FIXTURES
from grader.engine.rubric import Rubric, bind_checks, load_rubric
from grader.probes import Registry, pack_probes


@dataclass(frozen=True)
class Pack:
    rubric: Rubric
    checks: Mapping[str, Check]
    probes: Registry


def copy_pack(rubric: Rubric, folder: Path) -> Path:
    """An editable copy of a lab in ``folder``: the rubric (comments kept) and its checks folder
    next to it, so it grades where it is put. Returns the copy's rubric; refuses to write over
    a folder that already holds one."""
    target = folder / "rubric.toml"
    if target.exists() or (folder / "checks").exists():
        raise InputError(f"{folder}: already holds a rubric.toml or checks/; copy to a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        rubric.checks_dir, folder / "checks", ignore=shutil.ignore_patterns("__pycache__")
    )
    import tomlkit  # lazy: self-check (its bundle has no tomlkit; only copying a pack needs it)

    document = tomlkit.parse(rubric.path.read_text())
    document["checks"] = "checks"
    write_atomic(target, tomlkit.dumps(document))
    load_pack(load_rubric(target))  # the copy grades as it is, or this is a bug
    return target


def embedded_pack(rubric: Rubric) -> Pack:
    """The pack of a self-check bundle: its rubric compiled, its checks next to it."""
    return load_pack(rubric)


def load_pack(rubric: Rubric) -> Pack:
    checks = load_checks(rubric.checks_dir, FIXTURES)
    bound = bind_checks(rubric, checks)
    return Pack(bound, checks, Registry(pack_probes(load_probes(rubric.checks_dir))))
