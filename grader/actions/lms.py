"""Marks to the LMS and back (LTI Assignment and Grade Services), and the LMS course's members
beside the roster (Names and Role Provisioning).

Every score goes through the outbox (grader.course.lti.outbox), fed from one place: ``feed``
looks at what changed in the book since it last looked (gradings, requests, ``course due``,
overrides, drops, regrades, acceptances, releases, whoever made them) and queues each touched
student's score that differs from the one queued last. ``grade serve`` feeds and pushes every
few seconds; ``grade book sync`` does both for the whole course and reads the LMS's results
back. A score is what the student's page says: the mark and its maximum as the book has them,
``Pending`` while the mark is incomplete, a comment with the marks lost (hidden checks never
named), the time of the grading that counts. A lab whose feedback is ``on_release`` sends
nothing until it is released.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from grader.actions.common import Actor, NotFound
from grader.actions.student import hidden
from grader.base.clock import now
from grader.course import access
from grader.course.config import LtiPlatform
from grader.course.gradebook import Gradebook
from grader.course.lti import outbox, services, store
from grader.course.lti.launch import ROLES, role_of, roster_match

log = logging.getLogger("grader.lti")


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def score_of(course: Gradebook, student: str, lab_id: str) -> dict[str, Any] | None:
    """The score the LMS should hold for the student's lab now (None: nothing to send: no
    mark yet, or feedback kept back until a release)."""
    lab = course.course.lab(lab_id)
    if lab.feedback == "on_release" and not access.released(course.book, lab.id):
        return None
    explained = course.explain(student, lab.id)
    row, decided = explained.row, explained.decided
    if row.mark is None or row.max is None:
        return None
    secret = hidden(course, lab.id)
    lost = [f"{o.id} ({o.points:g} of {o.max_points:g})" for o in decided.outcomes
            if o.lost and o.id not in secret]  # fmt: skip
    unchecked = [c for c in row.incomplete if c not in secret]
    said = [f"Lost: {', '.join(lost)}." if lost else "No marks lost."]
    if unchecked or row.incomplete:
        said.append("Not checked yet (graded again): " + (", ".join(unchecked) or "a check") + ".")
    if row.days_late:
        said.append(f"{row.days_late} day(s) late: {row.penalty:.0%} off.")
    if row.overridden:
        said.append("Set by staff.")
    return {
        "scoreGiven": round(row.mark, 4), "scoreMaximum": round(row.max, 4),
        "activityProgress": "Completed",
        "gradingProgress": "Pending" if row.incomplete else "FullyGraded",
        "comment": " ".join(said)[:1000],
        "timestamp": _stamp(decided.run_at or now()),
    }  # fmt: skip


def feed(course: Gradebook, everything: bool = False) -> int:
    """Queue the score of each student whose mark changed since the outbox last looked (every
    student, ``everything``); how many were queued."""
    if not course.course.lti:
        return 0
    marker, touched, released = outbox.changes(course.book)
    labs = list(course.course.labs)
    if everything or touched is None:
        pairs = {(s, lab) for s in course.roster for lab in labs}
    else:
        pairs = touched | {(s, lab) for lab in released for s in course.roster}
    queued = 0
    for student, lab in sorted(pairs):
        if lab not in course.course.labs or student not in course.roster:
            continue
        score = score_of(course, student, lab)
        if score is None:
            continue
        queued += outbox.put(course.book, student, lab, score)
    outbox.seen(course.book, marker)
    return queued


@dataclass(frozen=True)
class Pushed:
    sent: int = 0
    refused: int = 0
    waiting: int = 0  # tried again later (the LMS down, or a score waiting for its student)


def push(course: Gradebook, limit: int = 100) -> Pushed:
    """Send what the outbox holds that is due now."""
    counts = {"sent": 0, "refused": 0, "waiting": 0}
    for entry in outbox.ready(course.book, limit):
        if not outbox.take(course.book, entry):
            continue
        try:
            counts[_send(course, entry)] += 1
        except Exception as e:
            outbox.later(course.book, entry, f"{type(e).__name__}: {e}", tried=True)
            counts["waiting"] += 1
    return Pushed(**counts)


def _platform(course: Gradebook, context: store.Context) -> LtiPlatform | None:
    return next((p for p in course.course.lti if p.issuer == context.issuer
                 and p.client_id == context.client_id), None)  # fmt: skip


def _send(course: Gradebook, entry: outbox.Entry) -> str:
    book, folder = course.book, course.course.folder
    bound = store.binding_of(book, entry.student)
    context = store.context_by_id(book, bound.context) if bound and bound.context else None
    if bound is None or context is None:
        outbox.later(book, entry, "waits for the student's first launch from the LMS (the LMS "
                     "user they are is not known yet)", tried=False)  # fmt: skip
        return "waiting"
    platform = _platform(course, context)
    if platform is None or not context.lineitems_url:
        why = (
            "the LMS is no longer in course.toml's [[lti]]"
            if platform is None
            else "the LMS course offers no Assignment and Grade Services (no lineitems address)"
        )
        outbox.later(book, entry, why, tried=False)
        return "waiting"
    try:
        lineitem = lineitem_for(course, platform, context, entry.lab)
        if lineitem is None:
            outbox.later(book, entry, "its line item is being made", tried=False)
            return "waiting"
        score = {**entry.score, "userId": bound.sub}
        services.post_score(folder, platform, lineitem, score)
    except services.Unreachable as e:
        outbox.later(book, entry, f"the LMS could not be reached ({e})", tried=True)
        log.warning("LTI score for %s %s not sent yet: %s", entry.student, entry.lab, e)
        return "waiting"
    except services.ServiceError as e:
        outbox.refused(book, entry, str(e))
        log.warning("LTI score for %s %s refused by the LMS: %s", entry.student, entry.lab, e)
        return "refused"
    outbox.sent(book, entry, score)
    return "sent"


def lineitem_for(
    course: Gradebook, platform: LtiPlatform, context: store.Context, lab: str
) -> str | None:
    """The lab's line item in the LMS course: the one bound (once: stored), else found there by
    its resourceId, else made; None while another sender is making it."""
    book = course.book
    found = store.lineitem_of(book, context.id, lab)
    if found is not None or context.lineitems_url is None:
        return found
    if not store.claim_lineitem(book, context.id, lab):
        return None
    folder, lineitems = course.course.folder, context.lineitems_url
    try:
        url = services.find_lineitem(folder, platform, lineitems, lab)
        how = "found"
        if url is None:
            rubric = course.rubric(lab)
            url = services.create_lineitem(folder, platform, lineitems, lab,
                                           f"{lab}: {rubric.title}", rubric.max_score)  # fmt: skip
            how = "created"
    except BaseException:
        store.release_lineitem(book, context.id, lab)
        raise
    return store.bind_lineitem(book, context.id, lab, url, how)


# -- grade book sync ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    student: str
    lab: str
    ours: float | None
    theirs: float | None
    what: str  # lost (the LMS holds none) | differs


@dataclass(frozen=True)
class SyncRequest:
    resend: bool = False  # send our score again where the LMS holds another, or refused it
    read_back: bool = True  # read the line items' results back


@dataclass(frozen=True)
class Synced:
    queued: int
    pushed: Pushed
    pending: list[outbox.Entry]
    refused: list[outbox.Entry]
    differences: list[Difference] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)  # line items whose results could not be read


def sync(course: Gradebook, actor: Actor, request: SyncRequest) -> Synced:
    """Every student's score queued where it changed, everything due sent now, and the LMS's
    results read back: scores it lost are queued again; scores it holds differently are shown
    (and sent again with ``resend``)."""
    actor.must_be_staff("sync marks with the LMS")
    queued = feed(course, everything=True)
    if request.resend:  # the scores the LMS refused, tried again (staff put the LMS right)
        for entry in outbox.entries(course.book, (outbox.REFUSED,), limit=100_000):
            outbox.put_again(course.book, entry)
    outbox.now_again(course.book)
    pushed = push(course, limit=100_000)
    differences: list[Difference] = []
    unread: list[str] = []
    if request.read_back:
        differences, unread = _read_back(course, request.resend)
        if any(d.what == "lost" for d in differences) or request.resend:
            pushed = _add(pushed, push(course, limit=100_000))
    return Synced(queued, pushed, outbox.entries(course.book, (outbox.PENDING, outbox.SENDING)),
                  outbox.entries(course.book, (outbox.REFUSED,)), differences, unread)  # fmt: skip


def _add(a: Pushed, b: Pushed) -> Pushed:
    return Pushed(a.sent + b.sent, a.refused + b.refused, b.waiting)


def _read_back(course: Gradebook, resend: bool) -> tuple[list[Difference], list[str]]:
    book, folder = course.book, course.course.folder
    found: list[Difference] = []
    unread: list[str] = []
    for context in store.all_contexts(book):
        platform = _platform(course, context)
        if platform is None:
            continue
        subs = {s: sub for s, sub in store.bindings(book, platform.issuer).items()}
        for lab in course.course.labs:
            lineitem = store.lineitem_of(book, context.id, lab)
            if lineitem is None:
                continue
            try:
                results = services.results(folder, platform, lineitem)
            except services.ServiceError as e:
                unread.append(f"{lab} in {context.title or context.context_id}: {e}")
                continue
            held = {str(r.get("userId")): r for r in results}
            for student, sub in subs.items():
                last = outbox.last_sent(book, student, lab)
                if last is None or "scoreGiven" not in last.score:
                    continue
                ours = float(last.score["scoreGiven"])
                result = held.get(sub)
                theirs = _scaled(result, float(last.score.get("scoreMaximum") or 0))
                if theirs is None:
                    found.append(Difference(student, lab, ours, None, "lost"))
                    outbox.put_again(book, last)
                elif not math.isclose(theirs, ours, abs_tol=1e-3):
                    found.append(Difference(student, lab, ours, theirs, "differs"))
                    if resend:
                        outbox.put_again(book, last)
    return found, unread


def _scaled(result: dict[str, Any] | None, maximum: float) -> float | None:
    """A result's score on our scale (an LMS may keep it on the line item's)."""
    if result is None or not isinstance(result.get("resultScore"), (int, float)):
        return None
    score = float(result["resultScore"])
    theirs = result.get("resultMaximum")
    if isinstance(theirs, (int, float)) and theirs > 0 and maximum > 0:
        score = score * maximum / float(theirs)
    return score


# -- what staff and students see ------------------------------------------------------------------


@dataclass(frozen=True)
class Reached:
    """When the student's mark for a lab last reached the LMS (None: it has not)."""

    at: datetime | None
    score: float | None
    waiting: str | None  # a newer score not there yet, and why


def reached(course: Gradebook, actor: Actor, student: str, lab: str) -> Reached | None:
    """For the student's page (None: the course has no LMS)."""
    actor.may_see(student)
    if not course.course.lti:
        return None
    last = outbox.last_sent(course.book, student, lab)
    newest = outbox.latest(course.book, student, lab)
    waiting = None
    if newest is not None and newest.state in (outbox.PENDING, outbox.SENDING):
        waiting = "a newer mark is on its way to the LMS"
        if newest.waiting and "first launch" in newest.waiting:
            waiting = "it goes once you open this lab from the LMS"
    elif newest is not None and newest.state == outbox.REFUSED:
        waiting = "the LMS refused the newest mark: your staff have been told"
    return Reached(last.sent_at if last else None,
                   last.score.get("scoreGiven") if last else None, waiting)  # fmt: skip


@dataclass(frozen=True)
class LtiStatus:
    unmatched: list[store.Unmatched]
    refused: list[outbox.Entry]
    pending: list[outbox.Entry]


def status(course: Gradebook, actor: Actor) -> LtiStatus:
    """Staff's view: launches the roster could not match (and the claim), scores the LMS
    refused (with its answer), scores waiting (and why)."""
    actor.must_be_staff("see the LMS's launches and scores")
    return LtiStatus(store.unmatched_launches(course.book),
                     outbox.entries(course.book, (outbox.REFUSED,)),
                     outbox.entries(course.book, (outbox.PENDING, outbox.SENDING)))  # fmt: skip


# -- Names and Role Provisioning -------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    lms_id: str
    name: str
    email: str
    roles: list[str]
    student: str | None  # the roster's student this member is (None: none)
    notes: list[str]  # what differs from the roster, or from the launch

    @property
    def kind(self) -> str:
        """learner, staff, or other (by the roles' full or simple names, as a launch's)."""
        return {"student": "learner", "staff": "staff"}.get(role_of({ROLES: self.roles}) or "",
                                                           "other")  # fmt: skip


@dataclass(frozen=True)
class Members:
    context: str  # the LMS course
    members: list[Member]
    missing: list[str]  # students of the roster the LMS course does not have


def members(course: Gradebook, actor: Actor) -> list[Members]:
    """Each LMS course's members beside the roster (every LMS course a launch came from)."""
    actor.must_be_staff("read the LMS course's members")
    contexts = [c for c in store.all_contexts(course.book) if c.memberships_url]
    if not contexts:
        raise NotFound(
            "no LMS course with Names and Role Provisioning has launched the tool yet: "
            "open a lab from the LMS once (as staff or a student), then ask again"
        )
    people = course.people()
    found = []
    for context in contexts:
        platform = _platform(course, context)
        if platform is None or context.memberships_url is None:
            continue
        listed = services.members(course.course.folder, platform, context.memberships_url)
        found.append(_beside(course, platform, context, listed, people))
    return found


def _beside(
    course: Gradebook, platform: LtiPlatform, context: store.Context,
    listed: list[dict[str, Any]], people: dict[str, dict[str, str]],
) -> Members:  # fmt: skip
    subs = store.bindings(course.book, platform.issuer)
    by_sub = {sub: student for student, sub in subs.items()}
    shown: list[Member] = []
    seen: set[str] = set()
    for m in listed:
        lms_id = str(m.get("user_id") or "")
        roles = [str(r) for r in m.get("roles") or [] if isinstance(r, str)]
        email = str(m.get("email") or "")
        notes: list[str] = []
        student = by_sub.get(lms_id)
        if student is None:
            match, value = _member_value(platform, m)
            matches = roster_match(match, value, people) if value else []
            student = matches[0] if len(matches) == 1 else None
            if student is not None and student in subs and subs[student] != lms_id:
                notes.append(f"its LMS id {lms_id} differs from the one their launch gave "
                             f"({subs[student]}): scores go to the launch's")  # fmt: skip
            elif student is None and role_of({ROLES: roles}) != "student":
                pass  # staff of the LMS course: not on the roster, and need not be
            elif student is None:
                notes.append(
                    f"not on the roster ({platform.match} {value!r})"
                    if value
                    else f"not on the roster (no {platform.match})"
                )
        if student is not None:
            seen.add(student)
            ours = (people.get(student, {}).get("email") or
                    people.get(student, {}).get("email address") or "")  # fmt: skip
            if email and ours and email.casefold() != ours.casefold():
                notes.append(f"email {email} in the LMS, {ours} on the roster")
            if not email:
                notes.append("the LMS gives no email")
        shown.append(Member(lms_id, str(m.get("name") or ""), email, roles, student, notes))
    missing = [s for s in course.roster if s not in seen]
    return Members(context.title or context.context_id, shown, missing)


def _member_value(platform: LtiPlatform, member: dict[str, Any]) -> tuple[str, str | None]:
    """What identifies a member on the roster, as NRPS names it (how it is matched, and the
    value); a member without it (no email) by their SIS id, when NRPS gives one."""
    if platform.match == "email":
        found = member.get("email")
    elif platform.match == "sis_id":
        found = member.get("lis_person_sourcedid")
    elif platform.match == "username":
        found = member.get("ext_user_username") or member.get("preferred_username")
    else:
        found = member.get(platform.match.split("#")[-1])
    sis = member.get("lis_person_sourcedid")
    if not (isinstance(found, str) and found) and isinstance(sis, str) and sis:
        return "sis_id", sis
    return platform.match, found if isinstance(found, str) and found else None
