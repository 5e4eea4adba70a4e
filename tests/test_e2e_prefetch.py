"""Speed never changes a mark: grading with the learned prefetch gives exactly the statuses,
messages and points of grading one command per round trip."""

from __future__ import annotations

import pytest

from scenarios import SCENARIOS

pytestmark = pytest.mark.vm
SCENARIO_NAMES = [
    "complete",
    "inetd_not_restarted",
    "hostile_strings",
    "mailbox_world_readable",
    "sendmail_never_started",
]


@pytest.fixture(scope="module")
def prefetch_vms(fleet):
    return fleet.boot([(f"pf_{n}", SCENARIOS[n]) for n in SCENARIO_NAMES])


def decided(report: dict) -> list[tuple]:
    return [(c["id"], c["status"], c["message"], c["points"]) for c in report["checks"]]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_prefetch_gives_the_marks_of_the_slow_path(grade, fleet, prefetch_vms, name, tmp_path):
    vm = prefetch_vms[f"pf_{name}"]
    args = [*fleet.grade_args(vm), "--cache-dir", str(tmp_path / "cache")]
    slow = grade(*args, "--no-prefetch").report
    learning = grade(*args).report  # this cache starts empty: this learns
    fast = grade(*args).report
    assert decided(slow) == decided(learning) == decided(fast)
    assert {c["id"]: c["status"] for c in fast["checks"]} == SCENARIOS[name].expected
    assert slow["round_trips"] > 10 and fast["round_trips"] == 1
