"""The LMS on the command line: ``grade serve lti-keys`` (the tool's signing key), ``grade
serve lti-config --lms ...`` (what to paste into the LMS), ``grade book sync`` (marks to the
LMS, and read back), ``grade course members --from-lms`` (the LMS course beside the roster).
Each turns its options into one request of grader.actions.lti or grader.actions.lms and prints
what it returns (everything from the LMS escaped)."""

from __future__ import annotations

import sys
from typing import Any

from grader.actions import lms, lti
from grader.actions.book import open_course
from grader.actions.common import Actor, CourseAt
from grader.base.clock import utc_text
from grader.base.errors import ExitStatus
from grader.cli.definition import Given, UsageError
from grader.report.render.safe import escaped


def _say(text: str) -> None:
    sys.stdout.write(escaped(text) + "\n")


def _mark(score: dict[str, Any]) -> str:
    given = score.get("scoreGiven")
    return f"{given:g}" if isinstance(given, (int, float)) else "(no mark)"


def keys(args: Given) -> int:
    actor = Actor.here(args.by)
    with open_course(CourseAt(args.course, args.db), actor, create=True) as course:
        made = lti.make_keys(course, actor, lti.KeysRequest(bool(args.rotate)))
    _say(f"The course's LTI signing key: {made.path} (kid {made.kid}; private, 0600: it never "
         "leaves the course folder).")  # fmt: skip
    _say(f"Published at /lti/jwks: {', '.join(made.published)}.")
    for path in made.deleted:
        _say(f"Deleted {path}: retired long enough for every LMS to have the new key.")
    return ExitStatus.OK


def config(args: Given) -> int:
    actor = Actor.here(args.by)
    public = (args.link_public_url or "http://127.0.0.1:8080").rstrip("/")
    with open_course(CourseAt(args.course, args.db), actor, create=True) as course:
        found = lti.tool_config(course, actor, lti.ConfigRequest(args.lti_lms, public))
    sys.stdout.write(escaped(lti.config_text(found)) if found.json is None
                     else lti.config_text(found))  # fmt: skip
    return ExitStatus.OK


def sync(course: Any, actor: Actor, request: lms.SyncRequest, args: Any) -> int:
    if not course.course.lti:
        raise UsageError(f"{course.course.path}: no [[lti]] table: the course sends no marks to "
                         "an LMS (see the README's \"From the LMS\")")  # fmt: skip
    done = lms.sync(course, actor, request)
    _say(f"{done.queued} mark(s) queued; {done.pushed.sent} sent, {done.pushed.refused} "
         f"refused by the LMS, {len(done.pending)} waiting.")  # fmt: skip
    for e in done.pending:
        _say(
            f"  waiting: {e.student} {e.lab} {_mark(e.score)} "
            f"(tried {e.attempts} time(s); next {utc_text(e.next_try_at)}): {e.waiting or ''}"
        )
    for e in done.refused:
        _say(f"  refused: {e.student} {e.lab} {_mark(e.score)}: {e.answer or ''}")
    for d in done.differences:
        if d.what == "lost":
            _say(f"  the LMS had lost {d.student} {d.lab} ({d.ours:g}): sent again")
        else:
            _say(
                f"  the LMS holds {d.theirs:g} for {d.student} {d.lab}, the book {d.ours:g}"
                + (": sent again" if request.resend else " (--resend sends the book's)")
            )
    for line in done.unread:
        _say(f"  results not read: {line}")
    if done.refused or done.unread:
        return ExitStatus.NOT_GRADED
    return ExitStatus.OK


def members(args: Given) -> int:
    if not args.from_lms:
        raise UsageError("grade course members reads the LMS course's members: give --from-lms")
    actor = Actor.here(args.by)
    with open_course(CourseAt(args.course, args.db), actor, create=False) as course:
        found = lms.members(course, actor)
    for each in found:
        _say(f"{each.context}: {len(each.members)} member(s) in the LMS")
        for m in each.members:
            who = m.student or "-"
            notes = f"  ({'; '.join(m.notes)})" if m.notes else ""
            _say(f"  {who:<12} {m.name} <{m.email}> [{m.kind}, LMS id {m.lms_id}]{notes}")
        if each.missing:
            _say(f"  on the roster, not in the LMS course: {', '.join(each.missing)}")
    return ExitStatus.OK
