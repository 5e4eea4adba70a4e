"""The LMS's services, as the tool calls them: an access token by OAuth 2 client credentials
with a JWT assertion the tool signs (RFC 7523, as the IMS Security Framework says), kept until
it expires; Assignment and Grade Services (line items found by ``resourceId`` or created, scores
posted, results read back); Names and Role Provisioning (the course's members).

A token the LMS answers 401 to (one that has just expired by its clock) is dropped and a new
one asked for, once. An LMS that cannot be reached, or answers 5xx or 429, is ``Unreachable``
(the outbox tries again later); one that refuses (another 4xx) is ``ServiceError`` with its
answer. Bodies are read up to a bound; every address comes from the launch or course.toml, is
https when the LMS's token address is, and no redirect or next page to another origin is
followed with the token.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from grader.course.config import LtiPlatform
from grader.course.lti import keys

AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
LINEITEM, LINEITEM_READ = AGS + "lineitem", AGS + "lineitem.readonly"
RESULTS, SCORE = AGS + "result.readonly", AGS + "score"
MEMBERS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
BODY_LIMIT = 4 * 1024 * 1024
TIMEOUT = 15.0
PAGES = 50  # pages followed at most (a Link: next that never ends is not followed for ever)


class ServiceError(Exception):
    """The LMS refused what the tool asked (its status and its answer, clipped)."""

    def __init__(self, status: int, answer: str) -> None:
        super().__init__(f"HTTP {status}: {answer}")
        self.status, self.answer = status, answer


class Unreachable(ServiceError):
    """The LMS could not be reached, or said to try later: nothing is lost, it is tried again."""


_tokens: dict[tuple[str, str, str], tuple[str, float]] = {}
_lock = threading.Lock()


def token(folder: Path, platform: LtiPlatform, scopes: tuple[str, ...], fresh: bool = False) -> str:
    """An access token for ``scopes``, from the cache while it lasts (``fresh``: a new one)."""
    key = (platform.auth_token_url, platform.client_id, " ".join(sorted(scopes)))
    with _lock:
        cached = _tokens.get(key)
        if cached and not fresh and cached[1] > time.monotonic():
            return cached[0]
    moment = int(time.time())  # the LMS's clock, not the course's: a JWT lives in real time
    assertion = keys.sign(folder, {
        "iss": platform.client_id, "sub": platform.client_id,
        "aud": platform.auth_audience or platform.auth_token_url,
        "iat": moment, "exp": moment + 300, "jti": secrets.token_urlsafe(16),
    })  # fmt: skip
    form = urlencode({"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                      "client_assertion": assertion, "scope": key[2]}).encode()  # fmt: skip
    status, _, body = _http("POST", platform.auth_token_url, form,
                            {"Content-Type": "application/x-www-form-urlencoded",
                             "Accept": "application/json"})  # fmt: skip
    if status >= 500 or status == 429:  # the LMS down or busy: tried again, not a refusal
        raise Unreachable(status, f"no access token: {_clip(body)}")
    found = _json(body)
    if (
        status != 200
        or not isinstance(found, dict)
        or not isinstance(found.get("access_token"), str)
    ):
        raise ServiceError(status, f"no access token: {_clip(body)}")
    lasts = found.get("expires_in", 3600)
    lasts = lasts if isinstance(lasts, int) and lasts > 0 else 3600
    with _lock:
        _tokens[key] = (found["access_token"], time.monotonic() + max(lasts - 30, 1))
    return str(found["access_token"])


def forget_tokens() -> None:
    with _lock:
        _tokens.clear()


def call(
    folder: Path, platform: LtiPlatform, method: str, url: str, scopes: tuple[str, ...],
    body: Any = None, content_type: str | None = None, accept: str = "application/json",
) -> tuple[int, dict[str, str], Any]:  # fmt: skip
    """One call of a service with a token (a 401: once again with a new token): its status,
    headers and JSON body."""
    if urlsplit(url).scheme != "https" and urlsplit(platform.auth_token_url).scheme == "https":
        raise ServiceError(0, f"the LMS's service address is not https: {url[:200]!r}")
    data = json.dumps(body).encode() if body is not None else None
    for attempt in (0, 1):
        headers = {"Authorization": f"Bearer {token(folder, platform, scopes, attempt == 1)}",
                   "Accept": accept}  # fmt: skip
        if content_type:
            headers["Content-Type"] = content_type
        status, answer_headers, answer = _http(method, url, data, headers)
        if status == 401 and attempt == 0:
            continue
        if status >= 500 or status == 429:
            raise Unreachable(status, _clip(answer))
        if status >= 300:  # a refusal, or a redirect: not followed with the token
            raise ServiceError(status, _clip(answer) or answer_headers.get("Location", ""))
        return status, answer_headers, _json(answer)
    raise ServiceError(401, "the LMS refused a new token too")


def _http(
    method: str, url: str, data: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    if not url.startswith(("https://", "http://")):
        raise ServiceError(0, f"not an http(s) address: {url[:200]!r}")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers.items()), response.read(BODY_LIMIT)
    except urllib.error.HTTPError as e:
        with e:  # closed once read (a redirect's answer too)
            return e.code, dict(e.headers.items()) if e.headers else {}, e.read(BODY_LIMIT)
    except (OSError, ValueError) as e:  # refused, reset, timed out, a bad address
        raise Unreachable(0, f"{type(e).__name__}: {e}") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is the LMS's answer, not followed: urllib would carry the token (and the
    score) to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _clip(body: bytes) -> str:
    return body[:500].decode("utf-8", "replace")


def _with_query(url: str, **more: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *more.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _below(url: str, tail: str) -> str:
    """A line item's service address: its path with ``/scores`` or ``/results`` appended."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + tail))


def _pages(
    folder: Path, platform: LtiPlatform, url: str, scopes: tuple[str, ...], accept: str,
    key: str | None,
) -> list[Any]:  # fmt: skip
    """Every item of a paged container (its ``Link: <...>; rel="next"`` followed)."""
    found: list[Any] = []
    for _ in range(PAGES):
        _, headers, body = call(folder, platform, "GET", url, scopes, accept=accept)
        items = body.get(key) if key and isinstance(body, dict) else body
        found += [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        following = _next(headers)
        if following is None or urlsplit(following)[:2] != urlsplit(url)[:2]:
            break  # the next page is the same service's (the token goes nowhere else)
        url = following
    return found


def _next(headers: dict[str, str]) -> str | None:
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for part in link.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            return part.split(";")[0].strip().strip("<>") or None
    return None


LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
RESULTS_TYPE = "application/vnd.ims.lis.v2.resultcontainer+json"
MEMBERS_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"


def find_lineitem(folder: Path, platform: LtiPlatform, lineitems: str, lab: str) -> str | None:
    """The line item of the LMS course whose resourceId is the lab (the oldest, when the LMS
    holds more than one)."""
    url = _with_query(lineitems, resource_id=lab)
    items = _pages(folder, platform, url, (LINEITEM,), LINEITEMS_TYPE, None)
    mine = [i for i in items if i.get("resourceId") == lab and isinstance(i.get("id"), str)]
    return str(mine[0]["id"]) if mine else None


def create_lineitem(
    folder: Path, platform: LtiPlatform, lineitems: str, lab: str, label: str, maximum: float
) -> str:
    body = {"scoreMaximum": maximum, "label": label, "resourceId": lab, "tag": "grade"}
    _, _, made = call(folder, platform, "POST", lineitems, (LINEITEM,), body, LINEITEM_TYPE,
                      LINEITEM_TYPE)  # fmt: skip
    if not isinstance(made, dict) or not isinstance(made.get("id"), str):
        raise ServiceError(201, f"the LMS made a line item but gave no id: {made!r:.200}")
    return str(made["id"])


def post_score(folder: Path, platform: LtiPlatform, lineitem: str, score: dict[str, Any]) -> int:
    status, _, _ = call(folder, platform, "POST", _below(lineitem, "/scores"), (SCORE,), score,
                        SCORE_TYPE)  # fmt: skip
    return status


def results(folder: Path, platform: LtiPlatform, lineitem: str) -> list[dict[str, Any]]:
    return _pages(folder, platform, _below(lineitem, "/results"), (RESULTS,), RESULTS_TYPE, None)


def members(folder: Path, platform: LtiPlatform, memberships: str) -> list[dict[str, Any]]:
    return _pages(folder, platform, memberships, (MEMBERS,), MEMBERS_TYPE, "members")
