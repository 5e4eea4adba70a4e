"""Running a pack's checks on one machine: each check's exceptions become its verdict (never
the grading's end), then the verdicts are settled through the rubric's dependencies
(grader.engine.scoring). grader.engine.runner grades a host with it."""

from __future__ import annotations

import dataclasses
import os
import traceback
from collections.abc import Mapping
from typing import Any

import testinfra

from grader.base import evidence
from grader.base.budget import Deadline, DeadlinePassed
from grader.base.errors import CheckError, CommandTimeout, HostError
from grader.base.outcomes import Failed, NeedsVariable, Skipped
from grader.base.results import Outcome, Redactor, redact
from grader.base.words import ErrorKind
from grader.engine.checkload import Check
from grader.engine.rubric import Rubric
from grader.engine.scoring import NotRun, Verdict, settle
from grader.evidence.archive import NeedsLiveVM
from grader.evidence.holes import NeedsSecret

#: Longest message a check leaves: a sentence. The evidence is where the text lives.
MESSAGE_LIMIT = 600


def _clip(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    return message[:MESSAGE_LIMIT] + f"... ({len(message) - MESSAGE_LIMIT} more characters)"


def run_check(
    check: Check, fixtures: Mapping[str, object], mask: Redactor | None = None
) -> Outcome:
    """Run one check; its exceptions become its status, never the run's end. What came back
    from the VM is passed through ``mask`` before anything is kept."""
    mask = mask or Redactor()
    with evidence.collect(mask) as seen:
        try:
            check.function(**{name: fixtures[name] for name in check.params})
        except AssertionError as e:
            outcome = _read_by_testinfra(e, seen) or Outcome("fail", str(e) or _assert_line(e))
        except Failed as e:
            message = str(getattr(e, "msg", "") or e) or "failed"
            outcome = Outcome("fail", message, cause=getattr(e, "cause", None))
        except NeedsVariable as e:
            message = str(getattr(e, "msg", "") or e) or "skipped"
            outcome = Outcome("skipped", message, error_kind=ErrorKind.NEEDS_VARIABLE)
        except Skipped as e:
            message = str(getattr(e, "msg", "") or e) or "skipped"
            outcome = Outcome("skipped", message, error_kind=ErrorKind.NOT_APPLICABLE)
        except HostError:
            raise  # the connection is gone: the host, not the check, failed
        except PermissionError as e:
            outcome = Outcome("error", f"needs root: {e}", error_kind=ErrorKind.NEEDS_ROOT)
        except CommandTimeout as e:
            outcome = Outcome("error", str(e), error_kind=ErrorKind.TIMEOUT)
        except DeadlinePassed as e:
            outcome = Outcome("error", str(e), error_kind=ErrorKind.DEADLINE)
        except NeedsLiveVM as e:
            outcome = Outcome("error", str(e), error_kind=ErrorKind.NEEDS_LIVE_VM)
        except NeedsSecret as e:
            outcome = Outcome("error", str(e), error_kind=ErrorKind.NEEDS_SECRET)
        except CheckError as e:
            outcome = Outcome("error", str(e), error_kind=e.kind)
        except Exception as e:
            message = f"the check itself failed ({check.source}): {type(e).__name__}: {e}"
            outcome = _read_by_testinfra(e, seen) or Outcome(
                "error", message, error_kind=ErrorKind.CHECK_CRASHED
            )
        else:
            outcome = Outcome("pass")
    outcome = dataclasses.replace(
        outcome,
        message=_clip(outcome.message),
        evidence=tuple(seen.evidence),
        notes=tuple(seen.notes),
    )
    return redact(outcome, mask)


#: Where testinfra's modules are: what they raise, they raised reading what the VM answered
_TESTINFRA = os.path.dirname(testinfra.__file__) + os.sep


def _read_by_testinfra(error: BaseException, seen: evidence.Seen) -> Outcome | None:
    """An error of the grading (``unreadable``) when ``error`` was raised inside testinfra: its
    modules read what the VM answered (``uname``, ``/etc/os-release``, ``lsb_release``, a
    command's exit status) and raise when it is not what they expect. That is no bug of the
    check (``check_crashed``) and no verdict on the student's VM (an assertion of
    testinfra's own, ``check_output``'s, is not the check's). The message names the answer:
    the last one the check was given."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames or not frames[-1].filename.startswith(_TESTINFRA):
        return None
    last = seen.evidence[-1].source if seen.evidence else ""
    answer = f" to {evidence.command_in_words(last)}" if last else ""
    return Outcome(
        "error",
        f"testinfra could not read what the VM answered{answer} ({type(error).__name__}: "
        f"{error}), so this is not decided on it",
        error_kind=ErrorKind.UNREADABLE,
    )


def _assert_line(error: AssertionError) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    line = frames[-1].line if frames else ""
    return f"failed: {line}" if line else "failed"


def run_checks(
    rubric: Rubric,
    checks: Mapping[str, Check],
    fixtures: Mapping[str, object],
    deadline: Deadline | None = None,
    mask: Redactor | None = None,
    cut_off: frozenset[str] = frozenset(),
) -> dict[str, Outcome]:
    """Run the checks in dependency order, then settle their verdicts (grader.engine.scoring).
    A check whose dependency did not pass is still asked, ahead, with its verdict thrown away:
    its answers on the VM go into the evidence archive, so a regrade with this dependency
    dropped needs no live VM for them (its probes included: a regrade cannot ask a VM that is
    gone); and what it will need once they pass is said now, not a run later. Past
    ``deadline`` the checks not yet started are errors, so one VM can never hold a class up for
    long; ``cut_off`` names checks to treat so (a replay of a grading whose deadline cut them
    off)."""
    verdicts: dict[str, Verdict] = {}
    as_user = any(item.needs_root for item in rubric.items) and not _as_root(fixtures)
    for item in rubric.items:  # dependency order
        if item.id in cut_off or (deadline is not None and deadline.passed):
            why = "not checked: grading this host took longer than its time limit (--host-timeout)"
            if deadline is not None and deadline.cancel.is_set():
                why = "not checked: the grading was interrupted"
            verdicts[item.id] = NotRun(Outcome("error", why, error_kind=ErrorKind.DEADLINE))
        else:
            outcome = run_check(checks[item.id], fixtures, mask)
            if as_user and item.needs_root:  # what it was told as a user decides nothing
                outcome = dataclasses.replace(
                    outcome, status="error", message=NEEDS_ROOT, error_kind=ErrorKind.NEEDS_ROOT,
                    cause=None,
                )  # fmt: skip
            verdicts[item.id] = outcome
    return {s.id: s.outcome for s in settle(rubric.items, verdicts)}


#: What a check the rubric says needs root (``needs_root = true``) says when a user who is not
#: root ran the grading (a self-check without sudo), whatever its commands answered
NEEDS_ROOT = "not checked: run it with sudo (this check reads what only root may read)"


def _as_root(fixtures: Mapping[str, object]) -> bool:
    """Whether the checks' commands run as root on the machine graded: the machine's own
    answer to ``id -u`` (asked once; recorded, so a regrade reads the same answer). An
    answer that does not say (a regrade of a grading that never asked) is root's: the checks
    decided then as they did."""
    host: Any = fixtures.get("host")
    try:
        result = host.run("id -u")
    except CheckError:  # no answer to go on (a regrade that never asked): as they decide
        return True
    return not (result.rc == 0 and result.stdout.strip() not in ("", "0"))
