"""The fixtures every pack's checks get under plain pytest, as a pytest plugin (registered as
the ``pytest11`` entry point ``lab_grader``, the way testinfra gives ``host`` to any folder):

    pytest --hosts=paramiko://root@student-vm checks/ --lab-var NAME=VALUE
    pytest --hosts=paramiko://root@vm labs/lab7/checks --lab-var course_secret=... \\
        --lab-var student=s2400137

``lab`` (the rubric's paths and variables) and ``outside`` (probes from this machine to the
host, the pack's own probe kinds included) are built by the same function the grader's runner
uses (grader.engine.fixtures). The pack is the one whose checks folder holds the tests being
run (its rubric.toml next to the folder), or ``--rubric PATH`` / ``--lab NAME``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab-grader", "lab packs (lab-grader)")
    group.addoption(
        "--rubric",
        default=None,
        metavar="PATH",
        help="The pack's rubric.toml (default: the one next to the checks folder being run, "
        "else Lab 6's).",
    )
    group.addoption("--lab", default=None, metavar="NAME", help="The pack, by name.")
    group.addoption(
        "--lab-var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="A rubric variable (repeatable), e.g. --lab-var NAME=VALUE; "
        "--lab-var student=ID gives a student's own variant.",
    )


def _rubric_path(config: pytest.Config) -> Path:
    # lazy: plugin (pytest loads it in every run where the grader is installed)
    from grader.engine.catalog import built_in_rubric, find

    given = config.getoption("--rubric")
    if given:
        return Path(given)
    if config.getoption("--lab"):
        return find(config.getoption("--lab"))
    for arg in config.args:
        start = Path(str(arg).split("::", 1)[0]).resolve()
        for folder in (start, *start.parents):
            candidate = folder / "rubric.toml"
            if candidate.is_file() and (start == folder / "checks" or (folder / "checks") in
                                        start.parents or start == folder):  # fmt: skip
                return candidate
    return built_in_rubric()


@pytest.fixture(scope="session")
def lab_pack(request: pytest.FixtureRequest) -> Any:
    """The pack whose checks are being run (its rubric and probe kinds)."""
    # lazy: plugin (pytest loads it in every run where the grader is installed)
    from grader.engine.pack import load_pack
    from grader.engine.rubric import load_rubric

    return load_pack(load_rubric(_rubric_path(request.config)))


@pytest.fixture(scope="session")
def lab_variables(request: pytest.FixtureRequest, lab_pack: Any) -> dict[str, str]:
    given = dict(v.split("=", 1) for v in request.config.getoption("--lab-var"))
    student = given.pop("student", None)
    return dict(lab_pack.rubric.resolve_vars(given, student=student))


@pytest.fixture(scope="session")
def _outsides() -> dict[str, Any]:
    return {}


@pytest.fixture
def lab(host: Any, lab_pack: Any, lab_variables: dict[str, str], _outsides: dict[str, Any]) -> Any:
    return _fixtures(host, lab_pack, lab_variables, _outsides)["lab"]


@pytest.fixture
def outside(
    host: Any, lab_pack: Any, lab_variables: dict[str, str], _outsides: dict[str, Any]
) -> Any:
    return _fixtures(host, lab_pack, lab_variables, _outsides)["outside"]


def _fixtures(host: Any, pack: Any, variables: dict[str, str], outsides: dict[str, Any]) -> Any:
    # lazy: plugin (pytest loads it in every run where the grader is installed)
    from grader.engine.fixtures import check_fixtures
    from grader.probes import Outside

    name = host.backend.hostname
    if name not in outsides:  # one outside view a host: each probe asked once
        outsides[name] = Outside(socket.gethostbyname(name), pack.rubric.ports,
                                 registry=pack.probes)  # fmt: skip
    return check_fixtures(host, pack.rubric, variables, outsides[name])
