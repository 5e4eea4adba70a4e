"""Speed never changes a mark: grading with the learned prefetch gives exactly the statuses,
messages and points of grading one command per round trip."""

from __future__ import annotations

import json

import pytest

from grader.base.errors import ExitStatus
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


def test_prefetch_gives_the_marks_of_the_slow_path(grade, fleet, prefetch_vms, tmp_path):
    """The five scenarios as one class, three times over one cache: one command per round trip
    (--no-prefetch), then with prefetch while the cache starts empty (it learns), then with
    what it learned."""
    roster = tmp_path / "class.csv"
    rows = [f"{n},{prefetch_vms[f'pf_{n}'].address},{fleet.identity}" for n in SCENARIO_NAMES]
    roster.write_text("\n".join(["student,host,identity", *rows]) + "\n")
    given = [a for k, v in fleet.grading_vars.items() for a in ("--var", f"{k}={v}")]
    base = ["--roster", str(roster), "--cache-dir", str(tmp_path / "cache"), *given]
    runs = {}
    for label, extra in (("slow", ["--no-prefetch"]), ("learning", []), ("fast", [])):
        out = tmp_path / label
        run = grade(*base, "--out", str(out), *extra)
        assert run.exit == ExitStatus.OK, run.stderr  # a class run: every student graded
        runs[label] = {n: json.loads((out / f"{n}.json").read_text()) for n in SCENARIO_NAMES}
    for name in SCENARIO_NAMES:
        slow, learning, fast = (runs[label][name] for label in ("slow", "learning", "fast"))
        assert decided(slow) == decided(learning) == decided(fast), name
        assert {c["id"]: c["status"] for c in fast["checks"]} == SCENARIOS[name].expected, name
        assert slow["round_trips"] > 10 and fast["round_trips"] == 1, name
