"""``grade serve`` (the course on the web), ``grade serve link`` (sign-in links) and ``grade
worker`` (gradings asked for on the web, from the book's queue)."""

from __future__ import annotations

import csv
import io
import re
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path

from grader.actions import access
from grader.actions.book import open_course
from grader.actions.common import Actor, CourseAt
from grader.base.clock import utc_text
from grader.base.errors import ExitStatus
from grader.base.files import write_atomic
from grader.cli.definition import Given, UsageError
from grader.cli.grading import connection_of
from grader.report.render.safe import escaped

_SPAN = re.compile(r"([0-9]{1,5})([mhd])")


def _span(text: str) -> timedelta:
    found = _SPAN.fullmatch(text)
    if found is None:
        raise UsageError(f"--expires {text!r}: a number and m, h or d (30m, 72h, 7d)")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
    return timedelta(**{unit: int(found.group(1))})


def _listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdecimal() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: give ADDRESS:PORT (e.g. 127.0.0.1:8080)")
    return host.strip("[]"), int(port)


def serve(args: Given) -> int:
    if args.serve_command == "link":
        return _link(args)
    if args.serve_command in ("lti-keys", "lti-config"):
        try:
            from grader.cli import lti  # lazy: optional (the web's libraries: PyJWT)
        except ImportError as e:
            raise UsageError(
                f"grade serve {args.serve_command} needs the web's libraries "
                f"({e.name} is missing): pip install 'lab-grader[web]'"
            ) from None
        return lti.keys(args) if args.serve_command == "lti-keys" else lti.config(args)
    host, port = _listen(args.listen or "127.0.0.1:8080")
    public = (args.public_url or f"http://{args.listen or '127.0.0.1:8080'}").rstrip("/")
    if not public.startswith(("http://", "https://")):
        raise UsageError(f"--public-url {public!r}: an http:// or https:// address")
    try:
        # lazy: optional (the web's libraries: pip install 'lab-grader[web]')
        import uvicorn

        from grader.web.app import WebConfig, make_app
    except ImportError as e:
        raise UsageError(
            f"grade serve needs the web's libraries ({e.name} is missing): pip install "
            "'lab-grader[web]'"
        ) from None
    config = WebConfig(CourseAt(args.course, args.db), public, args.graders, connection_of(args))
    app = make_app(config)
    sys.stderr.write(
        f"Serving the course at {public} (listening on {host}:{port}); Ctrl-C stops.\n"
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips="127.0.0.1")  # fmt: skip
    return ExitStatus.OK


def _link(args: Given) -> int:
    actor = Actor.here(args.by)
    lasts = _span(args.expires) if args.expires else None
    public = (args.link_public_url or "http://127.0.0.1:8080").rstrip("/")
    given = [x for x in (args.student, args.staff, args.link_roster) if x]
    if len(given) != 1:
        raise UsageError("give one of STUDENT, --staff NAME or --roster")
    if args.link_roster and args.link_out is None:
        raise UsageError("--roster makes a link for every student: give --out FILE for them")
    with open_course(CourseAt(args.course, args.db), actor, create=True) as course:
        if args.link_roster:
            made = access.roster_links(course, actor, lasts)
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["student", "address", "expires"])
            for m in made:
                writer.writerow([m.name, f"{public}/signin/{m.token}", utc_text(m.expires_at)])
            write_atomic(Path(args.link_out), buffer.getvalue(), private=True)
            sys.stdout.write(
                escaped(f"{len(made)} sign-in links written to {args.link_out}") + "\n"
            )
            return ExitStatus.OK
        request = (
            access.LinkRequest("staff", args.staff, lasts)
            if args.staff
            else access.LinkRequest("student", args.student, lasts)
        )
        link = access.make_link(course, actor, request)
    sys.stdout.write(f"{public}/signin/{link.token}\n")
    sys.stderr.write(escaped(f"A single-use sign-in link for {link.name} ({link.role}), until "
                             f"{utc_text(link.expires_at)}.") + "\n")  # fmt: skip
    return ExitStatus.OK


def worker(args: Given) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.web.app import WebConfig, Workers

    config = WebConfig(CourseAt(args.course, args.db), graders=args.graders,
                       connection=connection_of(args))  # fmt: skip
    with open_course(config.where, Actor.here(args.by), create=False) as course:
        if not course.book.url.startswith("postgresql"):
            raise UsageError(
                "grade worker shares the queue of a book on PostgreSQL with grade serve and "
                "other workers; with a SQLite book, grade serve --graders N grades the requests"
            )
        workers = Workers(course, config)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        workers.start()
        sys.stderr.write(f"Grading requests of {course.course.title} ({args.graders} at once); "
                         "Ctrl-C stops.\n")  # fmt: skip
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            workers.join()
            signal.signal(signal.SIGTERM, previous)
    return ExitStatus.OK
