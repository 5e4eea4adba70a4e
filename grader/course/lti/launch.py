"""An LTI 1.3 launch, as the LTI 1.3 Core and OpenID Connect specifications have a tool check
it: the OIDC login initiation (a state and a nonce, kept in the book), then the id_token the
LMS posts to the launch address, validated by PyJWT (RS256 only; the key by ``kid`` from the
platform's JWKS, through PyJWKClient: cached, fetched again on an unknown kid), with ``iss``,
``aud``/``azp``, ``exp``/``iat`` (a minute's leeway), the nonce and state used once, the
deployment known, the message type and the version.

Who the launch is: staff (Instructor, TeachingAssistant, Administrator in the roles claim) or
a student (Learner); a role never comes from a custom parameter. A student is found on the
roster by the LMS user bound to them (``sub``) or, the first time, by the platform's ``match``
(then bound); staff by their LMS user name or whole email in course.toml's ``staff``.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt

from grader.base.errors import InputError
from grader.course.book import Book
from grader.course.config import Course, LtiPlatform
from grader.course.lti import store

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE, VERSION = CLAIM + "message_type", CLAIM + "version"
DEPLOYMENT, ROLES, CUSTOM = CLAIM + "deployment_id", CLAIM + "roles", CLAIM + "custom"
RESOURCE_LINK, CONTEXT, LIS, EXT = (CLAIM + "resource_link", CLAIM + "context", CLAIM + "lis",
                                    CLAIM + "ext")  # fmt: skip
TARGET = CLAIM + "target_link_uri"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
DEEP_LINKING = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
RESOURCE, DEEP = "LtiResourceLinkRequest", "LtiDeepLinkingRequest"

_LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
STAFF_ROLES = {
    _LIS + "membership#Instructor", _LIS + "membership#Administrator",
    _LIS + "membership/Instructor#TeachingAssistant",
    _LIS + "institution/person#Administrator", _LIS + "system/person#Administrator",
}  # fmt: skip
LEARNER = _LIS + "membership#Learner"
#: The simple names of context roles LTI 1.3 lets a platform send instead (the roles claim is
#: the platform's, signed: a name there is as trusted as a URI)
SIMPLE_STAFF, SIMPLE_LEARNER = {"Instructor", "Administrator", "TeachingAssistant"}, "Learner"
#: Custom parameters that would name a role: a launch carrying one is refused (a role comes
#: from the roles claim, which the LMS sets, never from a parameter)
ROLE_PARAMETERS = ("role", "roles", "lti_role", "staff", "is_staff", "instructor", "admin")
LEEWAY = 60  # seconds of clock difference allowed in exp and iat


class Refused(InputError):
    """A launch (or a login) refused: ``str()`` is what the person reads; ``why`` is the log
    line for staff (it may name a claim's value)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class NotOnRoster(InputError):
    """An authentic launch of somebody the course does not have (kept for staff)."""


def platform_of(course: Course, issuer: str, client_id: str | None) -> LtiPlatform:
    found = [p for p in course.lti if p.issuer == issuer and client_id in (None, p.client_id)]
    if len(found) != 1:
        said = "no LMS registered" if not found else "more than one registration"
        raise Refused("This LMS is not one this course is registered with.",
                      f"{said} for issuer {issuer!r}, client_id {client_id!r}")  # fmt: skip
    return found[0]


def login(
    book: Book, course: Course, params: Mapping[str, str], launch_url: str
) -> tuple[str, str]:
    """The OIDC login initiation: where to send the browser (the platform's authorization
    address, with a new state and nonce kept in the book), and the state."""
    issuer, hint = params.get("iss", ""), params.get("login_hint", "")
    if not issuer or not hint:
        raise Refused("This is not an LTI login: the LMS gave no issuer or login hint.",
                      "login initiation without iss or login_hint")  # fmt: skip
    platform = platform_of(course, issuer, params.get("client_id") or None)
    deployment = params.get("lti_deployment_id")
    if deployment and deployment not in platform.deployment_ids:
        raise Refused("This LMS deployment is not one this course is registered with.",
                      f"login for unknown deployment {deployment!r} of {issuer}")  # fmt: skip
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.start_login(book, state, nonce, platform.issuer, platform.client_id)
    query = {
        "scope": "openid", "response_type": "id_token", "response_mode": "form_post",
        "prompt": "none", "client_id": platform.client_id, "redirect_uri": launch_url,
        "login_hint": hint, "state": state, "nonce": nonce,
    }  # fmt: skip
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    joiner = "&" if "?" in platform.auth_login_url else "?"
    return platform.auth_login_url + joiner + urlencode(query), state


#: Seconds between two fetches of a platform's key set for a kid it does not have (a token
#: naming kids at random makes the tool fetch no more often than this)
REFETCH_AFTER = 10.0
_clients: dict[str, jwt.PyJWKClient] = {}
_clients_lock = threading.Lock()


def key_client(url: str) -> jwt.PyJWKClient:
    """The platform's JWKS client, one per address for the process: its key set cached five
    minutes, fetched again (at most every REFETCH_AFTER seconds) for a kid it does not have."""
    with _clients_lock:
        if url not in _clients:
            _clients[url] = jwt.PyJWKClient(url, lifespan=300, timeout=10,
                                            cooldown_duration=REFETCH_AFTER)  # fmt: skip
        return _clients[url]


@dataclass(frozen=True)
class Launch:
    platform: LtiPlatform
    claims: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.claims[MESSAGE_TYPE])

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def name(self) -> str:
        found = self.claims.get("name") or " ".join(
            str(self.claims.get(k, "")) for k in ("given_name", "family_name")
        )
        return str(found).strip()[:200]


def validate(book: Book, course: Course, id_token: str) -> Launch:
    """The launch's id_token checked in full (its state and nonce: ``use``); Refused else."""

    def refuse(why: str, said: str = "This launch could not be verified.") -> Refused:
        return Refused(said, why)

    if not id_token or len(id_token) > 64 * 1024:
        raise refuse("no id_token, or one too long")
    try:
        header = jwt.get_unverified_header(id_token)
        unverified = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise refuse(f"id_token not a JWT: {e}") from None
    if header.get("alg") != "RS256":
        raise refuse(f"id_token signed with {header.get('alg')!r}, not RS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise refuse("id_token without a kid")
    issuer, audience = unverified.get("iss"), unverified.get("aud")
    given = [audience] if isinstance(audience, str) else audience
    if not isinstance(issuer, str) or not isinstance(given, list):
        raise refuse("id_token without iss or aud")
    registered = [p for p in course.lti if p.issuer == issuer and p.client_id in given]
    if len(registered) != 1:
        raise refuse(f"id_token of issuer {issuer!r} for audience {given!r}: no such registration",
                     "This launch is not for this course's registration with the LMS.")  # fmt: skip
    platform = registered[0]
    try:
        key = key_client(platform.key_set_url).get_signing_key(kid)
    except jwt.PyJWKClientConnectionError as e:
        raise refuse(
            f"the platform's key set could not be fetched: {e}",
            "The LMS's keys could not be fetched: try again in a minute.",
        ) from None
    except jwt.PyJWTError as e:
        raise refuse(f"kid {kid!r} is not a key of {platform.key_set_url}: {e}") from None
    try:
        claims = jwt.decode(
            id_token, key.key, algorithms=["RS256"], audience=platform.client_id,
            issuer=platform.issuer, leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
        )  # fmt: skip
    except jwt.ExpiredSignatureError:
        raise refuse(
            "id_token expired", "This launch has expired: open it again from the LMS."
        ) from None
    except jwt.PyJWTError as e:
        raise refuse(f"id_token refused: {type(e).__name__}: {e}") from None
    azp = claims.get("azp")
    if (len(given) > 1 and azp is None) or (azp is not None and azp != platform.client_id):
        raise refuse(f"azp {azp!r} is not this tool's client_id")
    if claims.get(VERSION) != "1.3.0":
        raise refuse(f"LTI version {claims.get(VERSION)!r}, not 1.3.0")
    if claims.get(MESSAGE_TYPE) not in (RESOURCE, DEEP):
        raise refuse(f"message type {claims.get(MESSAGE_TYPE)!r}")
    if claims.get(DEPLOYMENT) not in platform.deployment_ids:
        raise refuse(
            f"deployment {claims.get(DEPLOYMENT)!r} is not registered",
            "This LMS deployment is not one this course is registered with.",
        )
    if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
        raise refuse("no sub: an anonymous launch", "This launch names no user.")
    if claims[MESSAGE_TYPE] == RESOURCE and not isinstance(claims.get(RESOURCE_LINK), dict):
        raise refuse("a resource link launch without its resource_link claim")
    if claims[MESSAGE_TYPE] == DEEP and not _return_url(claims):
        raise refuse("a deep linking request without its deep_link_return_url")
    custom = claims.get(CUSTOM) or {}
    if not isinstance(custom, dict):
        raise refuse("a custom claim that is not an object")
    named = sorted(k for k in custom if str(k).lower() in ROLE_PARAMETERS)
    if named:
        raise refuse(
            f"custom parameter {named[0]!r} names a role (roles come from the roles claim only)",
            "This launch names a role in a custom parameter: refused.",
        )
    return Launch(platform, claims)


def use(book: Book, launched: Launch, state: str) -> None:
    """The launch's state and nonce used up (a second launch with either is refused): the
    last check, after every other has passed and before anything is recorded."""
    platform, nonce = launched.platform, launched.claims.get("nonce")
    if not isinstance(nonce, str) or not store.use_login(
        book, state, nonce, platform.issuer, platform.client_id
    ):
        raise Refused(
            "This launch was used already or has expired: open it again from the LMS.",
            "state unknown, used, expired or not this nonce's (a replay?)",
        )


#: What a deep linking return address's host may be made of (its origin goes into the
#: picker's Content-Security-Policy: the form's action, and who may frame it)
_NETLOC = re.compile(r"[A-Za-z0-9.:\[\]-]{1,300}")


def _return_url(claims: dict[str, Any]) -> str | None:
    settings = claims.get(DEEP_LINKING)
    url = settings.get("deep_link_return_url") if isinstance(settings, dict) else None
    if not isinstance(url, str) or len(url) > 2000:
        return None
    try:
        where = urlsplit(url)
    except ValueError:
        return None
    if where.scheme not in ("https", "http") or not _NETLOC.fullmatch(where.netloc):
        return None
    return url


def origin_of(url: str) -> str:
    """A checked return address's origin (scheme://host[:port])."""
    where = urlsplit(url)
    return f"{where.scheme}://{where.netloc}"


def role_of(claims: dict[str, Any]) -> str | None:
    """staff, student, or None (neither: a role the tool has no use for)."""
    roles = claims.get(ROLES) or []
    roles = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
    if any(r in STAFF_ROLES or r in SIMPLE_STAFF for r in roles):
        return "staff"
    return "student" if LEARNER in roles or SIMPLE_LEARNER in roles else None


def claim_at(claims: dict[str, Any], path: str) -> str | None:
    """A claim's value by its path: CLAIM, or CLAIM#KEY[#KEY...] into an object claim."""
    first, *keys = path.split("#")
    value: Any = claims.get(first)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None


def username_of(claims: dict[str, Any]) -> str | None:
    ext = claims.get(EXT) if isinstance(claims.get(EXT), dict) else {}
    found = claims.get("preferred_username") or (ext or {}).get("user_username")
    return found if isinstance(found, str) and found else None


def matched_value(platform: LtiPlatform, claims: dict[str, Any]) -> tuple[str, str, str | None]:
    """What identifies the user on the roster the first time: (how it is matched: a
    ``match``, the claim's name, its value). A launch without the claim ``match`` names (a
    student the LMS gives no email) is matched by its SIS id, when it gives one."""
    sis = claim_at(claims, LIS + "#person_sourcedid")
    if platform.match == "email":
        found, label = claim_at(claims, "email"), "email"
    elif platform.match == "sis_id":
        return "sis_id", "sis_id (lis person_sourcedid)", sis
    elif platform.match == "username":
        found, label = username_of(claims), "username"
    else:
        found, label = claim_at(claims, platform.match), platform.match
    if found is None and sis is not None:
        return "sis_id", f"sis_id (lis person_sourcedid; the LMS gave no {label})", sis
    return platform.match, label, found


def roster_match(match: str, value: str, people: dict[str, dict[str, str]]) -> list[str]:
    """The students of the roster ``value`` names, matched as ``match`` says."""

    def cells(person: dict[str, str], *names: str) -> set[str]:
        return {person[n].strip().casefold() for n in names if person.get(n)}

    wanted = value.strip().casefold()
    found = []
    for student, person in people.items():
        if match == "email":
            keys = cells(person, "email", "email address")
        elif match == "sis_id":
            keys = {student.casefold()} | cells(person, "sis user id", "id number")
        elif match == "username":
            keys = {student.casefold()} | cells(person, "username", "sis login id")
        else:
            keys = {student.casefold()}
        if wanted in keys:
            found.append(student)
    return found


def staff_name(course: Course, claims: dict[str, Any]) -> str | None:
    """Which of course.toml's staff the LMS user is: their LMS user name, or their whole email,
    when course.toml names it. Never an email's first part alone: anna@anywhere is not anna
    (any instructor of any LMS course under the deployment could choose such an email)."""
    email = claim_at(claims, "email")
    for name in (username_of(claims), email):
        if name and name in course.staff:
            return name
    return None


def return_url(claims: dict[str, Any]) -> str | None:
    return _return_url(claims)
