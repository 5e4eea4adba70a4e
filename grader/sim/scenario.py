"""A pack's scenario: a student's VM after doing the lab some way, and the verdict every check
must give on it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from grader.sim.vm import VM


@dataclass(frozen=True)
class Scenario:
    """A way a student may have done the lab: ``build`` makes a booted VM so (as root, with
    ``vm.sh``), and ``expected`` says the status every check must give on it (pass, fail,
    error, skipped), which ``grade prove`` holds the pack to."""

    name: str
    description: str
    build: Callable[[VM], None]
    expected: dict[str, str] = field(default_factory=dict)  # check id -> pass/fail/skipped/error
    vars: dict[str, str] = field(default_factory=dict)  # rubric variables it is graded with


#: Wait (inside the VM) until a shell condition holds, at most ~30 s.
_WAIT = """
wait_for() {{ for _ in $(seq 600); do if {condition}; then return 0; fi; sleep 0.05; done
  echo "timed out waiting for: {shown}" >&2; return 1; }}
wait_for
"""


def wait_for(vm: VM, condition: str) -> None:
    """Wait inside ``vm`` until the shell ``condition`` holds (a daemon listening, a file
    written), at most about 30 s."""
    vm.sh(_WAIT.format(condition=condition, shown=condition.replace('"', "'")))
