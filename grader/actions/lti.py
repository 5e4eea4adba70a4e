"""The course as an LTI 1.3 tool: the login and launch from an LMS (who comes in, to which
lab), a lab placed in the LMS by a deep link, the tool's keys and what to paste into each LMS.
(The scores and the members: grader.actions.lms.)

A launch is refused, with nothing recorded and a line in the log for staff, when any check of
grader.course.lti.launch fails, when the browser that posts it is not the one that began the
login (the state's cookie), when a student would place a lab, and when it names a lab the course
does not have. An authentic launch of somebody the roster does not have is kept for staff (the
claim that did not match) and shown a page that says so.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from grader.actions.common import Actor
from grader.base.errors import InputError
from grader.course.gradebook import Gradebook
from grader.course.lti import keys, outbox, store
from grader.course.lti.launch import (
    AGS,
    CONTEXT,
    CUSTOM,
    DEEP,
    DEEP_LINKING,
    DEPLOYMENT,
    MESSAGE_TYPE,
    NRPS,
    TARGET,
    VERSION,
    Launch,
    NotOnRoster,
    Refused,
    matched_value,
    origin_of,
    return_url,
    role_of,
    roster_match,
    staff_name,
    use,
    username_of,
    validate,
)
from grader.course.lti.launch import login as start_login

__all__ = ["NotOnRoster", "Refused"]

log = logging.getLogger("grader.lti")


@dataclass(frozen=True)
class LoginRequest:
    params: Mapping[str, str]  # the LMS's login initiation (iss, login_hint, ...)
    launch_url: str  # this tool's launch address (the redirect URI registered with the LMS)


@dataclass(frozen=True)
class LoginStarted:
    redirect: str  # the LMS's authorization address, with the state and nonce
    state: str  # for the browser's cookie: the launch must come back to the same browser


def login(course: Gradebook, request: LoginRequest) -> LoginStarted:
    """The OIDC login initiation: a state and a nonce kept, and where the browser goes."""
    try:
        redirect, state = start_login(course.book, course.course, request.params,
                                      request.launch_url)  # fmt: skip
    except Refused as e:
        log.warning("LTI login refused: %s", e.why)
        raise
    return LoginStarted(redirect, state)


@dataclass(frozen=True)
class LaunchRequest:
    id_token: str
    state: str
    state_cookie: str | None  # the state the browser kept when the login began


@dataclass(frozen=True)
class DeepLinking:
    """A deep linking request: where the LMS waits for the lab staff pick."""

    issuer: str
    client_id: str
    deployment_id: str
    return_url: str
    data: str | None  # opaque to the tool: given back


@dataclass(frozen=True)
class Launched:
    actor: Actor
    lab: str | None  # the lab the resource link points to (None: the course's home)
    deep_linking: DeepLinking | None = None


def launch(course: Gradebook, request: LaunchRequest) -> Launched:
    """The launch checked and its user found: who signs in, and where they land."""
    try:
        return _launch(course, request)
    except Refused as e:
        log.warning("LTI launch refused: %s", e.why)
        raise
    except NotOnRoster as e:
        log.warning("LTI launch of somebody the course does not have: %s", e)
        raise


def _launch(course: Gradebook, request: LaunchRequest) -> Launched:
    cookie = request.state_cookie or ""
    if not request.state or not hmac.compare_digest(cookie.encode(), request.state.encode()):
        raise Refused("This launch did not come back to the browser that began it: open it again "
                      "from the LMS.", "state not the one this browser's cookie holds")  # fmt: skip
    launched = validate(course.book, course.course, request.id_token)
    claims, platform = launched.claims, launched.platform
    role = role_of(claims)
    if role is None:
        raise Refused("Your role in the LMS course is neither staff nor student here.",
                      f"roles {claims.get('https://purl.imsglobal.org/spec/lti/claim/roles')!r} "
                      f"of {launched.sub!r}")  # fmt: skip
    deep = claims[MESSAGE_TYPE] == DEEP
    if deep and role != "staff":
        raise Refused("Only staff place labs in the LMS.",
                      f"a deep linking request of a student ({launched.sub!r})")  # fmt: skip
    lab = None if deep else _lab_of(claims)
    if lab is not None and lab not in course.course.labs:
        raise Refused("This link is for a lab this course does not have.",
                      f"a launch for lab {lab!r}, not in course.toml")  # fmt: skip
    use(course.book, launched, request.state)  # the last check: nothing is recorded before
    if role == "staff":
        name = staff_name(course.course, claims)
        if name is None:
            claim = (f"staff username {username_of(claims)!r} is not in course.toml's staff "
                     f"{list(course.course.staff)}")  # fmt: skip
            store.note_unmatched(course.book, platform.issuer, launched.sub, launched.name,
                                 "staff", claim)  # fmt: skip
            raise NotOnRoster(
                "You are staff in the LMS, but this course's staff list does not "
                "name you: ask its owner to add you to course.toml's staff."
            )
        _context(course, launched)
        actor = Actor(name, "staff")
        if deep:
            settings = claims[DEEP_LINKING]
            data = settings.get("data")
            return Launched(actor, None, DeepLinking(
                platform.issuer, platform.client_id, str(claims[DEPLOYMENT]),
                str(return_url(claims)), data if isinstance(data, str) else None,
            ))  # fmt: skip
        return Launched(actor, lab)
    student = _student(course, launched)
    context = _context(course, launched)
    if context is not None:
        store.launched_from(course.book, platform.issuer, launched.sub, context.id)
        line = claims.get(AGS) if isinstance(claims.get(AGS), dict) else {}
        given = line.get("lineitem") if isinstance(line, dict) else None
        bound = lab is None or store.lineitem_of(course.book, context.id, lab) is not None
        if isinstance(given, str) and lab is not None and not bound:  # the link's own
            store.bind_lineitem(course.book, context.id, lab, given, "launch")
    outbox.now_again(course.book, student)  # scores that waited for their LMS user
    return Launched(Actor(student, "student", student), lab)


def _lab_of(claims: dict[str, Any]) -> str | None:
    """The lab a resource link points to: its custom parameter ``lab`` (a deep link puts it
    there), else the ``/labs/LAB`` of its target address."""
    custom = claims.get(CUSTOM) or {}
    if isinstance(custom.get("lab"), str) and custom["lab"]:
        return str(custom["lab"])
    target = claims.get(TARGET)
    path = urlsplit(target).path if isinstance(target, str) else ""
    parts = path.rstrip("/").split("/")
    return parts[-1] if len(parts) >= 2 and parts[-2] == "labs" and parts[-1] else None


def _student(course: Gradebook, launched: Launch) -> str:
    """The student the launch is: bound to the LMS user already, or matched now (and bound);
    NotOnRoster (kept for staff) else."""
    platform, sub = launched.platform, launched.sub
    bound = store.bound_student(course.book, platform.issuer, sub)
    if bound is not None and bound in course.roster:
        return bound
    match, label, value = matched_value(platform, launched.claims)
    problem = None
    if bound is not None:
        problem = f"bound to {bound!r}, who is no longer on the roster"
    elif value is None:
        problem = f"{label}: the LMS gave none"
    else:
        found = roster_match(match, value, course.people())
        if len(found) == 1:
            problem = store.bind(course.book, platform.issuer, sub, found[0], f"{label} = {value}")
            if problem is None:
                log.info(
                    "LTI user %s of %s bound to %s by %s", sub, platform.issuer, found[0], label
                )
                return found[0]
        else:
            problem = f"{label} {value!r}: " + (
                "no student of the roster has it" if not found
                else f"{len(found)} students of the roster have it"
            )  # fmt: skip
    store.note_unmatched(course.book, platform.issuer, sub, launched.name, "student", problem)
    raise NotOnRoster(
        "The course's roster does not have you (or not yet): your staff have been "
        "told. Ask them to add you, then open the lab from the LMS again."
    )


def _context(course: Gradebook, launched: Launch) -> store.Context | None:
    """The LMS course the launch came from, kept with its services' addresses."""
    claims = launched.claims
    context = claims.get(CONTEXT)
    if not isinstance(context, dict) or not isinstance(context.get("id"), str):
        return None
    ags = claims.get(AGS) if isinstance(claims.get(AGS), dict) else {}
    nrps = claims.get(NRPS) if isinstance(claims.get(NRPS), dict) else {}
    lineitems = ags.get("lineitems") if isinstance(ags, dict) else None
    members = nrps.get("context_memberships_url") if isinstance(nrps, dict) else None
    scopes = ags.get("scope") if isinstance(ags, dict) else None
    return store.remember_context(
        course.book, launched.platform.issuer, launched.platform.client_id,
        str(claims[DEPLOYMENT]), context["id"], str(context.get("title") or "")[:300],
        lineitems if isinstance(lineitems, str) else None,
        members if isinstance(members, str) else None,
        [s for s in scopes if isinstance(s, str)] if isinstance(scopes, list) else [],
    )  # fmt: skip


# -- deep linking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeepLinkForm:
    """What the browser posts to the LMS to place a lab: the signed response, as field
    ``JWT``."""

    lab: str
    title: str
    jwt: str


@dataclass(frozen=True)
class Picker:
    """The labs staff may place, each a form posting straight to the LMS (``return_url``,
    whose ``origin`` may frame the picker and receive its forms)."""

    return_url: str
    origin: str
    forms: list[DeepLinkForm]


#: Seconds a picker's responses stay good (the LMS refuses them after)
PICK_WITHIN = 600


def picker(course: Gradebook, actor: Actor, settings: DeepLinking, public_url: str) -> Picker:
    """The deep linking responses placing each lab: a resource link to it, with its line item
    (label, maximum points, the lab as its resourceId), opened in a window of its own. They go
    from the browser to the LMS, not back here: the picker works in the LMS's frame, where the
    tool has no session."""
    actor.must_be_staff("place labs in the LMS")
    moment = int(time.time())  # the LMS's clock
    forms = []
    for lab in course.course.labs:
        rubric = course.rubric(lab)
        title = f"{lab}: {rubric.title}"
        item = {
            "type": "ltiResourceLink", "title": title, "url": f"{public_url}/lti/launch",
            "custom": {"lab": lab},
            "lineItem": {"label": title, "scoreMaximum": rubric.max_score, "resourceId": lab,
                         "tag": "grade"},
            "window": {"targetName": "_blank"},  # a window of its own: the lab refuses frames
        }  # fmt: skip
        claims: dict[str, Any] = {
            "iss": settings.client_id, "aud": settings.issuer, "iat": moment,
            "exp": moment + PICK_WITHIN, "nonce": secrets.token_urlsafe(16),
            DEPLOYMENT: settings.deployment_id, MESSAGE_TYPE: "LtiDeepLinkingResponse",
            VERSION: "1.3.0", "https://purl.imsglobal.org/spec/lti-dl/claim/content_items": [item],
        }  # fmt: skip
        if settings.data is not None:
            claims["https://purl.imsglobal.org/spec/lti-dl/claim/data"] = settings.data
        forms.append(DeepLinkForm(lab, title, keys.sign(course.course.folder, claims)))
    log.info("LTI deep link: %s offered the labs to place in %s", actor.name, settings.issuer)
    return Picker(settings.return_url, origin_of(settings.return_url), forms)


# -- the tool's keys, and its registration with an LMS --------------------------------------------


def jwks(course: Gradebook) -> dict[str, list[dict[str, Any]]]:
    """The tool's public keys (their public halves only)."""
    return keys.jwks(course.course.folder)


@dataclass(frozen=True)
class KeysRequest:
    rotate: bool = False


@dataclass(frozen=True)
class KeysMade:
    kid: str
    path: Path
    published: list[str]  # the kids the JWKS holds
    deleted: list[Path]  # retired keys past their time


def make_keys(course: Gradebook, actor: Actor, request: KeysRequest) -> KeysMade:
    """The tool's signing key, made once (0600, in the course folder), or a new one."""
    actor.must_be_staff("make the course's LTI key")
    made, gone = keys.make(course.course.folder, request.rotate)
    published = [k["kid"] for k in keys.jwks(course.course.folder)["keys"]]
    return KeysMade(made.kid, made.path, published, gone)


Lms = Literal["moodle", "canvas", "brightspace"]


@dataclass(frozen=True)
class ConfigRequest:
    lms: Lms
    public_url: str


@dataclass(frozen=True)
class ToolConfig:
    lms: str
    fields: list[tuple[str, str]]  # what to paste, field by field, as the LMS names them
    json: dict[str, Any] | None  # Canvas: the developer key's JSON


def tool_config(course: Gradebook, actor: Actor, request: ConfigRequest) -> ToolConfig:
    """What to paste into the LMS to register this course's tool."""
    actor.must_be_staff("register the course with an LMS")
    base = request.public_url.rstrip("/")
    if not base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise InputError(f"--public-url {base!r}: an LMS reaches the tool at an https:// address")
    launch, login_url, jwks_url = f"{base}/lti/launch", f"{base}/lti/login", f"{base}/lti/jwks"
    title = course.course.title
    ags = "IMS LTI Assignment and Grade Services"
    if request.lms == "moodle":
        return ToolConfig("moodle", [
            ("Tool name", title), ("Tool URL", launch), ("LTI version", "LTI 1.3"),
            ("Public key type", "Keyset URL"), ("Public keyset", jwks_url),
            ("Initiate login URL", login_url), ("Redirection URI(s)", launch),
            ("Supports Deep Linking (Content-Item Message)", "yes"),
            ("Content Selection URL", launch),
            (ags, "Use this service for grade sync and column management"),
            ("IMS LTI Names and Role Provisioning",
             "Use this service to retrieve members' information as per privacy settings"),
            ("Share launcher's name with tool", "Always"),
            ("Share launcher's email with tool", "Always"),
            ("Default launch container", "New window"),
        ], None)  # fmt: skip
    if request.lms == "brightspace":
        return ToolConfig("brightspace", [
            ("Name", title), ("Domain", base), ("Redirect URLs", launch),
            ("OpenID Connect Login URL", login_url), ("Target Link URI", launch),
            ("Keyset URL", jwks_url),
            ("Extensions", "Assignment and Grade Services, Deep Linking, Names and Role "
             "Provisioning Services"),
            ("Roles", "Send Institution Role"), ("Substitution parameters", "none"),
            ("Security settings", "Name, Email, User ID, Username, Org Defined Id"),
            ("Open as External Resource", "yes (a new window)"),
        ], None)  # fmt: skip
    developer_key = {
        "title": title,
        "description": f"{title}: marks and gradings of the course's lab VMs",
        "oidc_initiation_url": login_url, "target_link_uri": launch,
        "public_jwk_url": jwks_url,
        "scopes": [
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
            "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
            "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
            "https://purl.imsglobal.org/spec/lti-ags/scope/score",
            "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
        ],
        "extensions": [{
            "platform": "canvas.instructure.com", "privacy_level": "public",
            "settings": {"placements": [
                {"placement": "assignment_selection", "message_type": "LtiDeepLinkingRequest",
                 "target_link_uri": launch},
                {"placement": "link_selection", "message_type": "LtiDeepLinkingRequest",
                 "target_link_uri": launch},
            ]},
        }],
        "custom_fields": {},
    }  # fmt: skip
    return ToolConfig("canvas", [
        ("Method", "Paste JSON"), ("Redirect URIs", launch), ("LTI 1.3 JSON", "below"),
    ], developer_key)  # fmt: skip


def config_text(config: ToolConfig) -> str:
    """A ToolConfig as the lines ``grade serve lti-config`` prints."""
    width = max(len(k) for k, _ in config.fields)
    lines = [f"{k.ljust(width)}  {v}" for k, v in config.fields]
    if config.json is not None:
        lines += ["", json.dumps(config.json, indent=2)]
    return "\n".join(lines) + "\n"
