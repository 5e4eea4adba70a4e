"""A small LTI 1.3 platform (an LMS's side) for the tests, built on ``lti1p3platform`` from PyPI
(an implementation this project did not write): its registration, JWKS, OIDC login
initiation, id_token launch (resource links and deep linking), access tokens (it checks the
tool's client assertion against the tool's JWKS), Assignment and Grade Services (line items,
scores, results) and Names and Role Provisioning all come from the library. What the library
leaves to an LMS is played here, plainly: its storage (line items, scores, users), the web
framework (Starlette; the library's own adapters are Django's and FastAPI's), the "course
page" a user launches from, and what it does with a deep linking response (the library
validates the response; placing the link and its line item is the LMS's own work).

It serves on loopback (uvicorn in a thread) and can be stopped and started again on its port.
It also plays quirks real LMSs have (``Quirks``): NRPS ids other than the launch's ``sub``, a
student with no email, a line item made anew each time one is asked for, a 401 on a token that
has just expired, a deep link's line item ignored.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.membership import Context
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request as LtiRequest
from lti1p3platform.request import TRequest
from lti1p3platform.service_connector import (
    AssignmentsGradesService,
    NamesRoleProvisioningService,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
LEARNER, INSTRUCTOR = LIS + "membership#Learner", LIS + "membership#Instructor"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def public_pem(private: str) -> str:
    key = serialization.load_pem_private_key(private.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass
class User:
    sub: str
    name: str
    roles: list[str]
    email: str | None = None
    sourcedid: str | None = None  # lis person_sourcedid (the SIS id)
    username: str | None = None
    nrps_id: str | None = None  # what NRPS calls them, when not their sub (a quirk)
    custom: dict[str, str] = field(default_factory=dict)  # extra custom parameters


@dataclass
class Quirks:
    nrps_ids_differ: bool = False  # NRPS gives users' nrps_id, not their sub
    expired_before: float = 0.0  # a token issued before this time is "expired" (401)
    ignore_deep_link_lineitem: bool = False  # a deep link's line item is not made
    refuse_scores_of: set[str] = field(default_factory=set)  # userIds whose scores get 400
    token_unavailable: bool = False  # its token address answers 503 (behind a proxy, down)


class Platform:
    """The LMS: one course (``context``), its users, the tool registered as the README says."""

    def __init__(self, tool_url: str, tool_jwks: Callable[[], dict[str, Any]] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = self.url
        self.client_id, self.deployment_id = "grader-tool-1", "deployment-7"
        self.tool_url = tool_url.rstrip("/")
        self.tool_jwks = tool_jwks  # the tool's key set given, not fetched (an in-process tool)
        self.private, self.quirks = private_pem(), Quirks()
        self.users: dict[str, User] = {}
        self.links: dict[str, dict[str, Any]] = {}  # resource link id -> {title, custom, lineitem}
        self.lineitems: dict[str, dict[str, Any]] = {}  # id -> line item
        self.scores: dict[str, list[dict[str, Any]]] = {}  # line item id -> scores, in order
        self.tokens_issued = 0
        self.unauthorized = 0  # 401s answered
        self.lineitem_posts = 0
        self.placed: list[dict[str, Any]] = []  # deep linking responses' content items
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    # -- what course.toml says of it ---------------------------------------------------------

    def toml(self, match: str = "email") -> str:
        return (f'[[lti]]\nissuer = "{self.issuer}"\nclient_id = "{self.client_id}"\n'
                f'deployment_ids = ["{self.deployment_id}"]\n'
                f'auth_login_url = "{self.url}/auth"\nauth_token_url = "{self.url}/token"\n'
                f'key_set_url = "{self.url}/jwks"\nmatch = "{match}"\n')  # fmt: skip

    # -- the library's pieces ----------------------------------------------------------------

    def config(self) -> LTI1P3PlatformConfAbstract:
        platform = self

        class Conf(LTI1P3PlatformConfAbstract):
            def init_platform_config(self, **kwargs: Any) -> None:
                registration = (
                    Registration()
                    .set_iss(platform.issuer)
                    .set_client_id(platform.client_id)
                    .set_deployment_id(platform.deployment_id)
                    .set_launch_url(f"{platform.tool_url}/lti/launch")
                    .set_deeplink_launch_url(f"{platform.tool_url}/lti/launch")
                    .set_oidc_login_url(f"{platform.tool_url}/lti/login")
                    .set_tool_key_set_url(f"{platform.tool_url}/lti/jwks")
                    .set_platform_public_key(public_pem(platform.private))
                    .set_platform_private_key(platform.private)
                )
                if platform.tool_jwks is not None:
                    registration.set_tool_key_set(platform.tool_jwks())
                self._registration = registration

            def get_registration_by_params(self, **kwargs: Any) -> Registration:
                assert self._registration is not None
                return self._registration

        return Conf()

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        """A JWT signed with the platform's key (as its launches are), for hostile tests."""
        registration = self.config().get_registration()
        kid = registration.get_kid()
        return Registration.encode_and_sign(claims, self.private,
                                            {"kid": kid, **(headers or {})})  # fmt: skip

    def jwks(self) -> dict[str, Any]:
        return dict(self.config().get_jwks())

    # -- the web ----------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/jwks", lambda r: JSONResponse(self.jwks())),
            Route("/course", self._course_page),
            Route("/course/launch", self._initiate),
            Route("/course/add", self._add_page),
            Route("/auth", self._auth, methods=["GET", "POST"]),
            Route("/token", self._token, methods=["POST"]),
            Route("/ags/lineitems", self._lineitems, methods=["GET", "POST"]),
            Route("/ags/lineitems/{id}", self._lineitem, methods=["GET"]),
            Route("/ags/lineitems/{id}/scores", self._scores, methods=["POST"]),
            Route("/ags/lineitems/{id}/results", self._results, methods=["GET"]),
            Route("/nrps/members", self._members, methods=["GET"]),
            Route("/deep-link-return", self._deep_link_return, methods=["POST"]),
        ])  # fmt: skip

    def start(self) -> None:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="error",
                                lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the platform did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        """The LMS down: its port refuses connections until ``start`` again."""
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(20)
            self.server = None

    @contextlib.contextmanager
    def running(self) -> Iterator[Platform]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # -- launches ---------------------------------------------------------------------------

    def _course_page(self, request: Request) -> Response:
        """The LMS course's page for a user: a link for each placed resource link."""
        user = request.query_params.get("user", "")
        items = "".join(
            f'<li><a href="/course/launch?{urlencode({"user": user, "link": link})}">'
            f"{data['title']}</a></li>"
            for link, data in self.links.items()
        )
        add = f'<a href="/course/add?{urlencode({"user": user})}">Add the tool</a>'
        return HTMLResponse(
            f"<!DOCTYPE html><html lang=en><title>LMS course</title><main>"
            f"<h1>The LMS course</h1><ul>{items}</ul><p>{add}</p></main></html>"
        )

    def _add_page(self, request: Request) -> Response:
        """Adding the tool: its deep linking picker in a frame of the LMS's page (as Moodle's
        "Select content" and Canvas's assignment selection open it)."""
        src = f"/course/launch?{urlencode({'user': request.query_params['user'], 'deep': '1'})}"
        return HTMLResponse(
            f"<!DOCTYPE html><html lang=en><title>Add the tool</title><main><h1>Add the tool"
            f'</h1><iframe title="The tool" src="{src}" width="800" height="600"></iframe>'
            f"</main></html>"
        )

    def _initiate(self, request: Request) -> Response:
        """A user follows a link in the LMS: the OIDC login initiation, sent to the tool."""
        user = request.query_params["user"]
        hint = json.dumps({"link": request.query_params.get("link"),
                           "deep": request.query_params.get("deep") == "1"})  # fmt: skip

        class Login(OIDCLoginAbstract):
            def set_lti_message_hint(self, **kwargs: Any) -> None:
                self._lti_message_hint = kwargs["hint"]

            def get_redirect(self, url: str) -> RedirectResponse:
                return RedirectResponse(url, status_code=302)

        login = Login(None, self.config())
        login.set_lti_message_hint(hint=hint)
        return login.initiate_login(user)  # type: ignore[no-any-return]

    async def _auth(self, request: Request) -> Response:
        """The OIDC authorization: the tool's request checked (by the library), the launch's
        id_token made and posted to the tool by the browser."""
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.form()).items()})
        user = self.users.get(params.get("login_hint", ""))
        if user is None or params.get("redirect_uri") != f"{self.tool_url}/lti/launch":
            return HTMLResponse("not a user of this LMS, or not the tool's redirect URI", 400)
        hint = json.loads(params.get("lti_message_hint") or "{}")
        platform = self

        class Launch(LTIAdvantageMessageLaunchAbstract):
            def get_preflight_response(self) -> dict[str, Any]:
                return params

            def prepare_launch(self, preflight_response: dict[str, Any]) -> None:
                self.set_user_data(user.sub, user.roles, user.name, user.email, user.username)
                if user.sourcedid:
                    self.set_extra_claims({"https://purl.imsglobal.org/spec/lti/claim/lis":
                                           {"person_sourcedid": user.sourcedid}})  # fmt: skip
                self.set_launch_context_claim("course-1", context_title="Systems 2026")
                link = platform.links.get(hint.get("link") or "")
                if link is not None:
                    self.set_resource_link_claim(hint["link"], title=link["title"])
                    self.set_custom_parameters_claim({**link["custom"], **user.custom})
                elif user.custom:
                    self.set_custom_parameters_claim(user.custom)
                lineitem = link.get("lineitem") if link else None
                self.set_ags(
                    f"{platform.url}/ags/lineitems",
                    f"{platform.url}/ags/lineitems/{lineitem}" if lineitem else None,
                )
                self.set_nrps(f"{platform.url}/nrps/members")
                if hint.get("deep"):
                    self.set_dl(f"{platform.url}/deep-link-return", title="Add a lab",
                                accept_types={"ltiResourceLink"})  # fmt: skip

            def render_launch_form(self, launch_data: dict[str, Any], **kwargs: Any) -> Response:
                return HTMLResponse(
                    "<!DOCTYPE html><html lang=en><title>Launching</title><body>"
                    f'<form id=f method=post action="{launch_data["launch_url"]}">'
                    f'<input type=hidden name=id_token value="{launch_data["id_token"]}">'
                    f'<input type=hidden name=state value="{launch_data["state"]}">'
                    "<button>Continue</button></form>"
                    "<script>document.getElementById('f').submit()</script></body></html>"
                )

        return Launch(None, self.config()).lti_launch()  # type: ignore[no-any-return]

    # -- services ---------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if self.quirks.token_unavailable:
            return HTMLResponse("<h1>503 Service Unavailable</h1>", 503)
        try:
            answer = self.config().get_access_token(form)
        except Exception as e:  # the library's refusal: the tool's assertion was not good
            return JSONResponse({"error": "invalid_client", "detail": str(e)}, 400)
        self.tokens_issued += 1
        return JSONResponse(dict(answer))

    async def _lti_request(self, request: Request) -> LtiRequest:
        body = await request.body()
        data: TRequest = {
            "method": request.method, "form_data": {}, "get_data": dict(request.query_params),
            "headers": request.headers, "content_type": request.headers.get("content-type"),
            "path": request.url.path, "json": json.loads(body) if body else None,
        }  # fmt: skip

        class Given(LtiRequest):
            def build_metadata(self, request: Any) -> TRequest:
                return data

        return Given(None)

    def _expired(self, request: Request) -> bool:
        """The quirk: a token the tool thinks good for an hour, that the LMS calls expired."""
        import jwt

        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            issued = jwt.decode(token, options={"verify_signature": False}).get("iat", 0)
        except jwt.PyJWTError:
            return False
        if issued < self.quirks.expired_before:
            self.unauthorized += 1
            return True
        return False

    def _answer(self, found: Any) -> Response:
        if found.code >= 400:
            if found.code == 401:
                self.unauthorized += 1
            return JSONResponse({"error": found.message}, found.code)
        if found.result is None:
            return Response(status_code=found.code)
        return JSONResponse(found.result, found.code, media_type=found.media_type)

    async def _ags(self, request: Request) -> AssignmentsGradesService:
        return _Ags(await self._lti_request(request), self.config(), self,
                    f"{self.url}/ags/lineitems")  # fmt: skip

    async def _lineitems(self, request: Request) -> Response:
        if self._expired(request):
            return JSONResponse({"error": "token expired"}, 401)
        service = await self._ags(request)
        if request.method == "POST":
            self.lineitem_posts += 1
            return self._answer(service.handle_resp(service.handle_create_lineitem))
        return self._answer(service.handle_resp(service.handle_get_lineitems))

    async def _lineitem(self, request: Request) -> Response:
        if self._expired(request):
            return JSONResponse({"error": "token expired"}, 401)
        service = await self._ags(request)
        return self._answer(
            service.handle_resp(service.handle_get_lineitem, line_item_id=request.path_params["id"])
        )

    async def _scores(self, request: Request) -> Response:
        if self._expired(request):
            return JSONResponse({"error": "token expired"}, 401)
        body = json.loads(await request.body())
        if body.get("userId") in self.quirks.refuse_scores_of:
            return JSONResponse({"error": "this user is not in the course"}, 400)
        service = await self._ags(request)
        return self._answer(
            service.handle_resp(service.handle_update_score, line_item_id=request.path_params["id"])
        )

    async def _results(self, request: Request) -> Response:
        if self._expired(request):
            return JSONResponse({"error": "token expired"}, 401)
        service = await self._ags(request)
        return self._answer(
            service.handle_resp(service.handle_get_results, line_item_id=request.path_params["id"])
        )

    async def _members(self, request: Request) -> Response:
        if self._expired(request):
            return JSONResponse({"error": "token expired"}, 401)
        service = _Nrps(await self._lti_request(request), self.config(), self,
                        f"{self.url}/nrps/members")  # fmt: skip
        return self._answer(service.handle_resp(service.handle_get_members))

    async def _deep_link_return(self, request: Request) -> Response:
        """The deep linking response: validated by the library; the LMS places the links (and,
        unless the quirk, their line items)."""
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            items = self.config().validate_deeplinking_resp(form)
        except Exception as e:
            return HTMLResponse(f"refused: {e}", 400)
        placed = []
        for item in items:
            self.placed.append(item)
            link = f"link-{len(self.links) + 1}"
            lineitem = None
            if item.get("lineItem") and not self.quirks.ignore_deep_link_lineitem:
                lineitem = self._make_lineitem({**item["lineItem"], "resourceLinkId": link})["id"]
                lineitem = lineitem.rsplit("/", 1)[-1]
            self.links[link] = {"title": item.get("title", link), "custom": item.get("custom", {}),
                                "lineitem": lineitem}  # fmt: skip
            placed.append(item.get("title", link))
        return HTMLResponse(f"<!DOCTYPE html><html lang=en><title>Placed</title><main><h1>Placed: "
                            f"{', '.join(placed)}</h1></main></html>")  # fmt: skip

    def _make_lineitem(self, data: dict[str, Any]) -> dict[str, Any]:
        number = str(len(self.lineitems) + 1)
        made = {**data, "id": f"{self.url}/ags/lineitems/{number}"}
        self.lineitems[number] = made
        self.scores[number] = []
        return made

    # -- what the tests look at ---------------------------------------------------------------

    def scores_of(self, lab: str) -> list[dict[str, Any]]:
        """Every score posted to the lab's line items (by resourceId), in order."""
        return [s for n, item in self.lineitems.items() if item.get("resourceId") == lab
                for s in self.scores[n]]  # fmt: skip

    def items_of(self, lab: str) -> list[dict[str, Any]]:
        return [i for i in self.lineitems.values() if i.get("resourceId") == lab]


class _Ags(AssignmentsGradesService):
    def __init__(self, request: Any, config: Any, platform: Platform, url: str) -> None:
        super().__init__(request, config, url)
        self.platform = platform

    def find_lineitems(self, page: int = 1, limit: int | None = None, line_item_id: Any = None,
                       resource_link_id: Any = None, resource_id: Any = None, tag: Any = None,
                       **more: Any) -> Any:  # fmt: skip
        found = [i for i in self.platform.lineitems.values()
                 if resource_id is None or i.get("resourceId") == resource_id]  # fmt: skip
        return {"content": found, "has_next": False, "next": None}

    def handle_get_lineitems(self) -> Any:  # the library's returns the page; an LMS its items
        answer = super().handle_get_lineitems()
        if answer.code == 200:
            answer.result = answer.result["content"]
        return answer

    def find_lineitem(self, line_item_id: str) -> Any:
        from lti1p3platform.exceptions import LineItemNotFoundException

        if line_item_id not in self.platform.lineitems:
            raise LineItemNotFoundException()
        return self.platform.lineitems[line_item_id]

    def create_lineitem(self, creation_data: Any) -> Any:
        return self.platform._make_lineitem(dict(creation_data))

    def update_lineitem(self, update_data: Any) -> Any:
        raise NotImplementedError

    def delete_lineitem(self, line_item_id: str) -> None:
        raise NotImplementedError

    def update_score(self, line_item_id: str, score: Any) -> Any:
        from lti1p3platform.exceptions import LineItemNotFoundException
        from lti1p3platform.score import UpdateScoreStatus

        if line_item_id not in self.platform.scores:
            raise LineItemNotFoundException()
        self.platform.scores[line_item_id].append(dict(score))
        return UpdateScoreStatus.SUCCESS

    def get_results(self, line_item_id: str, page: int = 1, limit: int | None = None,
                    user_id: str | None = None, **more: Any) -> Any:  # fmt: skip
        from lti1p3platform.exceptions import LineItemNotFoundException

        if line_item_id not in self.platform.scores:
            raise LineItemNotFoundException()
        latest: dict[str, dict[str, Any]] = {}
        for s in self.platform.scores[line_item_id]:
            latest[s["userId"]] = s
        item = self.platform.lineitems[line_item_id]
        found = [{"id": f"{item['id']}/results/{u}", "userId": u,
                  "resultScore": s.get("scoreGiven"), "resultMaximum": s.get("scoreMaximum"),
                  "scoreOf": item["id"], "comment": s.get("comment")}
                 for u, s in latest.items()]  # fmt: skip
        return {"content": found, "has_next": False, "next": None}

    def handle_get_results(self, line_item_id: str) -> Any:
        answer = super().handle_get_results(line_item_id)
        if answer.code == 200:
            answer.result = answer.result["content"]
        return answer


class _Nrps(NamesRoleProvisioningService):
    def __init__(self, request: Any, config: Any, platform: Platform, url: str) -> None:
        super().__init__(request, config, url)
        self.platform = platform

    def get_context_by_id(self) -> Context:
        return Context(id="course-1", label="SYS", title="Systems 2026")

    def get_member_data_page(self, page: int = 1, limit: int | None = None, role: Any = None,
                             since: Any = None, **more: Any) -> Any:  # fmt: skip
        members = []
        for user in self.platform.users.values():
            member = {"user_id": (user.nrps_id if self.platform.quirks.nrps_ids_differ
                                  and user.nrps_id else user.sub),
                      "roles": user.roles, "name": user.name, "status": "Active"}  # fmt: skip
            if user.email:
                member["email"] = user.email
            if user.sourcedid:
                member["lis_person_sourcedid"] = user.sourcedid
            members.append(member)
        return {"content": members, "has_next": False, "next": None}
