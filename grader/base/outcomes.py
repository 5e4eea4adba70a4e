"""How a check says "skip me" or "I failed" besides a failing assert: pytest's own outcomes.

A check is a plain pytest-testinfra test, so it may call ``pytest.skip()`` or ``pytest.fail()``
and still run unchanged under plain pytest. The self-check bundle runs on a lab VM's own Python
without pytest; there the grader's stand-ins are raised instead (``skip``, ``fail``), and a
check that imports pytest itself cannot run in the bundle.
"""

from __future__ import annotations

from typing import NoReturn

try:
    from _pytest.outcomes import Failed, Skipped
except ImportError:  # the self-check bundle: no pytest on the VM

    class Skipped(Exception):  # type: ignore[no-redef]
        """The check did not run (a variable it needs was not given, ...)."""

        def __init__(self, msg: str = "") -> None:
            super().__init__(msg)
            self.msg = msg

    class Failed(Exception):  # type: ignore[no-redef]
        """The check failed, with a message (``fail()``)."""

        def __init__(self, msg: str = "") -> None:
            super().__init__(msg)
            self.msg = msg


class NeedsVariable(Skipped):
    """The check needs a rubric variable that was not given: it is not checked (skipped)."""


def skip(reason: str) -> NoReturn:
    """Skip the check being run (under plain pytest too), saying why."""
    raise Skipped(msg=reason)


def fail(reason: str, *, cause: str | None = None) -> NoReturn:
    """Fail the check being run with ``reason`` as its message.

    ``cause`` says what the failure comes from, when several checks can fail for one reason: a
    cause the rubric's ``[causes]`` defines (``"daemon_down"``), or the id of another item
    that must pass first (``"service_enabled"``). The report then names the cause once, first,
    with its hint, and the checks it fails point to it."""
    error = Failed(msg=reason)
    error.cause = cause  # type: ignore[attr-defined]
    raise error
