"""Shared fixtures: running ``grade`` in-process, and the lab simulator's VMs."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from grader.cli import main
from grader.sim import Fleet, missing_requirements
from labs.lab7.scenarios import TOOLS as LAB7_TOOLS
from scenarios import GRADING_VARS, SCENARIOS
from scenarios import TOOLS as LAB6_TOOLS
from tests.hostile import HOSTILE


@dataclass
class Run:
    exit: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return json.loads(self.stdout)


@pytest.fixture(scope="session")
def plan_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The grader's cache of what each rubric's checks ask (its prefetch plans), shared by the
    session's gradings as an instructor's is shared by theirs: learned once per rubric, not
    once per test (each learning costs a round trip per command)."""
    return tmp_path_factory.mktemp("plans")


@pytest.fixture
def grade(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plan_cache: Path,
) -> Callable[..., Run]:
    """``grade("--host", ...)``: run the CLI in-process, with a known-hosts file of the test's."""
    monkeypatch.setenv("GRADER_KNOWN_HOSTS", str(tmp_path / "known_hosts"))
    monkeypatch.setenv("GRADER_CACHE_DIR", str(plan_cache))

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems = missing_requirements((*LAB6_TOOLS, *LAB7_TOOLS))
    if not problems or os.environ.get("LABSIM_REQUIRED") == "1":
        return  # on CI the simulator is required: its tests run and fail loudly if it cannot
    skip = pytest.mark.skip(reason="lab simulator unavailable: " + "; ".join(problems))
    for item in items:
        if "vm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    with Fleet(SCENARIOS, GRADING_VARS) as booted:
        yield booted


@pytest.fixture(scope="session")
def scenario_vms(fleet: Fleet) -> dict[str, Any]:
    """One VM per scenario, booted and built once for the whole test session."""
    return fleet.boot(list(SCENARIOS))


@pytest.fixture(scope="session")
def lab7_vms(fleet: Fleet) -> dict[str, Any]:
    """One Lab 7 VM per scenario ("l7-<name>", also its student's name), booted once."""
    from labs.lab7.scenarios import SCENARIOS as LAB7

    missing = [
        t for t in LAB7_TOOLS if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None
    ]
    assert not missing, f"Lab 7's simulated VMs need {', '.join(missing)} (scripts/setup)"
    return fleet.boot([(f"l7-{name}", scenario) for name, scenario in LAB7.items()])


@pytest.fixture(scope="session")
def hostile_vms(fleet: Fleet) -> dict[str, Any]:
    """One VM per hostile or broken scenario ("h_<name>"), booted once for the session."""
    return fleet.boot([(f"h_{name}", scenario) for name, scenario in HOSTILE.items()])
