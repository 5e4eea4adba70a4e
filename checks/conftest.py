"""Fixtures for running the checks under plain pytest-testinfra:

    pytest --hosts=paramiko://root@student-vm checks/ [--lab-var bob_password=...]

``grade`` does not use this file: it provides the same ``lab`` and ``outside`` itself.
"""

import functools
import socket
from pathlib import Path

import pytest

from grader.engine.lab import Lab, Paths
from grader.engine.rubric import default_rubric_path, load_rubric
from grader.probes import Outside


def pytest_addoption(parser):
    group = parser.getgroup("lab", "lab checks")
    group.addoption(
        "--rubric",
        default=None,
        metavar="PATH",
        help="rubric.toml with the lab's paths and variables (default: Lab 6's)",
    )
    group.addoption(
        "--lab-var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a rubric variable, e.g. --lab-var bob_password=...",
    )


@pytest.fixture(scope="session")
def rubric(request):
    return load_rubric(Path(request.config.getoption("--rubric") or default_rubric_path()))


@pytest.fixture(scope="session")
def lab(request, rubric):
    given = dict(v.split("=", 1) for v in request.config.getoption("--lab-var"))
    return Lab(Paths(rubric.paths), rubric.resolve_vars(given))


@functools.cache
def _outside(hostname, ports):
    return Outside(socket.gethostbyname(hostname), ports)


@pytest.fixture
def outside(host, rubric):
    return _outside(host.backend.hostname, rubric.ports)
