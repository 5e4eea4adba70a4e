"""``grade serve``'s application: the course's pages and API behind the session, CSRF and
security-header layers, and the workers that grade what is asked for.

The graders (``--graders N``: gradings at once) run in a process of their own, started with
the server: they take the next requests of one lab from the book's queue and grade them as one
class run. Stopped (Ctrl-C, SIGTERM), the server takes no more requests and waits for the
gradings under way to end (each is bounded by the grading's time limit); a grading cut short
records nothing, and its request is taken again by the next grader to start, since its lease
ends. None is lost, none is recorded twice.

A course registered with an LMS (course.toml's ``[[lti]]``) has its marks sent from the same
process (the outbox, grader.actions.lms), even with no graders: looking at a whole class's
marks is work the pages need not wait behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import os
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starsessions import SessionAutoloadMiddleware, SessionMiddleware

from grader.actions.book import open_course
from grader.actions.common import Actor, CourseAt
from grader.actions.grading import Connection
from grader.actions.requests import work_one
from grader.base.files import write_atomic
from grader.web import api, lti, pages
from grader.web.sessions import IDLE, BookStore

if TYPE_CHECKING:
    from grader.course.gradebook import Gradebook

#: The course folder's file of the web's own secret (signing its CSRF tokens): 0600
SECRET_FILE = "web.key"


@dataclass(frozen=True)
class WebConfig:
    where: CourseAt
    public_url: str = "http://127.0.0.1:8080"
    graders: int = 2  # workers grading what is asked for (0: this process grades nothing)
    connection: Connection = field(default_factory=Connection)
    poll: float = 1.0  # seconds a worker waits when the queue is empty
    lms_every: float = 5.0  # seconds between two looks for marks to send to the LMS (0: none)

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def lease(self) -> timedelta:
        """How long a worker holds a request before another may take it (its grading is
        bounded well within)."""
        return timedelta(seconds=2 * self.connection.host_timeout + 120)


def secret_of(folder: Path) -> str:
    """The web's secret, made once (0600) in the course folder."""
    path = folder / SECRET_FILE
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            write_atomic(path, secrets.token_hex(32), private=True)
    return path.read_text().strip()


class Workers:
    """Graders taking requests from the queue: a few loops (threads), each taking the next
    requests of one lab, up to its share of ``graders``, and grading them as one class run
    (as ``grade course run`` grades a class: its hosts at once)."""

    def __init__(self, course: Gradebook, config: WebConfig) -> None:
        self.course, self.config = course, config
        self.stop = threading.Event()
        loops = min(max(config.graders, 0), LOOPS)
        self.most = math.ceil(config.graders / loops) if loops else 0
        self.connection = dataclasses.replace(config.connection, workers=max(self.most, 1))
        self.threads = [
            threading.Thread(target=self._work, args=(n,), name=f"grader-{n}", daemon=True)
            for n in range(loops)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _work(self, n: int) -> None:
        name = f"{os.uname().nodename} pid {os.getpid()} #{n}"
        while not self.stop.is_set():
            try:
                done = work_one(self.course.fresh(), name, self.connection, self.config.lease,
                                self.most)  # fmt: skip
            except Exception:  # the book unreachable for a moment: try again shortly
                done = []
            if not done:
                self.stop.wait(self.config.poll)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=self.config.connection.host_timeout + 60)


#: How much lower the graders' process runs than the pages' (nice): on a machine the gradings
#: keep busy, a page waits for them otherwise
NICER = 10


class Outbox(threading.Thread):
    """The marks for the LMS: every ``lms_every`` seconds, what changed in the book is queued
    and what is due is sent (grader.actions.lms); the whole course looked at once at start."""

    def __init__(self, course: Gradebook, every: float) -> None:
        super().__init__(name="lms-outbox", daemon=True)
        self.course, self.every = course, every
        self.stop = threading.Event()

    def run(self) -> None:
        from grader.actions import lms  # lazy: only a course with an LMS sends marks

        everything = True
        while not self.stop.is_set():
            try:
                lms.feed(self.course.fresh(), everything=everything)
                lms.push(self.course.fresh())
                everything = False
            except Exception as e:  # the book or the LMS unreachable for a moment: again soon
                logging.getLogger("grader.lti").warning("sending marks to the LMS: %s", e)
            self.stop.wait(self.every)

    def join(self, timeout: float | None = None) -> None:
        self.stop.set()
        if self.is_alive():
            super().join(timeout)


#: Loops taking requests at once: one slow VM holds its own class run, not every request
LOOPS = 2


def graders(config: WebConfig, stop: Any) -> None:
    """The serve process's graders (and the outbox of marks for the LMS), in a process of
    their own (``stop``: a multiprocessing Event the server sets when it stops): the pages stay
    quick while a class is graded (one Python process would share its one interpreter lock
    between both). Ctrl-C reaches the
    server, which stops this after its gradings end; SIGTERM (systemd stops the whole group)
    does the same here. The handler only notes the signal: setting ``stop`` from it, in the
    thread that waits on ``stop``, would wait for that thread to wake (multiprocessing's
    Condition.notify), forever."""
    termed: list[int] = []
    os.nice(NICER)  # the pages first: a class's grading waits a moment for a page, not the reverse
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda number, _: termed.append(number))
    with open_course(config.where, Actor("web"), create=True) as course:
        workers = Workers(course, config)
        sender = Outbox(course, config.lms_every)
        workers.start()
        if sends(course, config):
            sender.start()
        while not termed and not stop.wait(0.5):
            pass
        workers.join()
        sender.join(30.0)


def sends(course: Gradebook, config: WebConfig) -> bool:
    """Whether the server sends marks to an LMS."""
    return bool(course.course.lti) and config.lms_every > 0


def make_app(config: WebConfig, course: Gradebook | None = None) -> Any:
    """The ASGI application serving the course ``config.where`` (or an open ``course``)."""
    opened: contextlib.ExitStack = contextlib.ExitStack()
    if course is None:
        course = opened.enter_context(open_course(config.where, Actor("web"), create=True))
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    process = context.Process(target=graders, args=(config, stop), name="grader-graders")
    background = config.graders > 0 or sends(course, config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if background:
            process.start()
        if course.course.lti and not lti.keys_made(course):
            logging.getLogger("grader.lti").warning(
                "course.toml registers an LMS ([[lti]]) but the course has no LTI signing key: "
                "make it with `grade serve lti-keys`"
            )
        try:
            yield
        finally:
            from anyio import to_thread  # lazy: only a stopping server waits so

            if background:
                stop.set()
                await to_thread.run_sync(process.join, config.connection.host_timeout + 90)
                if process.is_alive():
                    process.terminate()
            opened.close()

    static = StaticFiles(packages=[("grader.web", "static")])
    store = BookStore(course)
    app = Starlette(
        routes=[*pages.ROUTES, *api.ROUTES, *lti.ROUTES,
                Mount("/static", app=static, name="static")],
        middleware=[
            Middleware(
                SessionMiddleware, store=store, lifetime=IDLE, rolling=True,
                cookie_name="grader_session", cookie_https_only=config.https,
                cookie_same_site="lax",
            ),
            Middleware(SessionAutoloadMiddleware),
        ],
        lifespan=lifespan,
    )  # fmt: skip
    app.router.redirect_slashes = False  # a redirect names no host the request gave
    app.state.course = course
    app.state.title = course.course.title
    app.state.secret = secret_of(course.course.folder).encode()
    app.state.store = store
    app.state.public_url = config.public_url.rstrip("/")
    public = urlsplit(config.public_url).hostname or "127.0.0.1"
    hosts = TrustedHostMiddleware(app, allowed_hosts=[public, "127.0.0.1", "localhost", "[::1]"])
    return headers(limited(hosts))


#: What every response says of itself: no script, style or frame but the server's own, no
#: referrer (a sign-in address holds its token), nothing sniffed
HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
     b"img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     b"base-uri 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


#: The largest body a request may send: a form or a JSON request is a few hundred bytes
BODY_LIMIT = 64 * 1024


def limited(app: Callable[..., Any], limit: int = BODY_LIMIT) -> Callable[..., Any]:
    """``app``, with a request's body past ``limit`` bytes refused (413) before it is read
    whole: by its Content-Length, or as it comes."""

    async def refuse(scope: Any, send: Any) -> None:
        api = str(scope.get("path", "")).startswith("/api/")
        kind = b"application/json" if api else b"text/plain; charset=utf-8"
        said = b'{"error": "request body too large"}' if api else b"Request body too large.\n"
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", kind)]})  # fmt: skip
        await send({"type": "http.response.body", "body": said})

    async def with_limit(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not length.isdigit() or len(length) > 12 or int(length) > limit:
            await refuse(scope, send)
            return
        seen = 0
        started = False

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge()
            return message

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await app(scope, counted, sending)
        except _TooLarge:
            if not started:
                await refuse(scope, send)

    return with_limit


class _TooLarge(Exception):
    pass


def headers(app: Callable[..., Any]) -> Callable[..., Any]:
    """``app`` with HEADERS on every HTTP response (a route's own policy kept: one whose
    frame-ancestors is not 'none' is not sent X-Frame-Options)."""

    async def with_headers(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                given = {k.lower(): v for k, v in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in given]
                policy = given.get(b"content-security-policy")
                if policy is not None and b"frame-ancestors 'none'" not in policy:
                    # a route that lets one origin frame it (the LTI picker): no DENY
                    extra = [(k, v) for k, v in extra if k != b"x-frame-options"]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await app(scope, receive, sending)

    return with_headers
