"""An HTTP request from the grading machine, with the Host header a virtual host needs."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from typing import Any

from grader.probes import Outside, Probe, too_long
from grader.probes.mail import why
from grader.probes.net import Conversation, Exceeded

#: Bytes of a page a check gets (the conversation's budget is a little more, for headers).
BODY_LIMIT = 256 * 1024
#: Headers kept (lower-cased names): what a check of a web server's setup looks at.
HEADERS = ("content-type", "content-length", "location", "server", "last-modified")


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP response: its status, reason, a few headers and the page (``body``, at most
    ``BODY_LIMIT`` bytes: ``truncated`` says when it was longer), or why none came
    (``text``)."""

    ok: bool  # an HTTP response came back (whatever its status)
    status: int | None
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # decoded as UTF-8 (bytes that are not are replaced), at most BODY_LIMIT
    truncated: bool = False  # the page was longer than BODY_LIMIT
    text: str = ""  # why there was no response
    trouble: str | None = None  # the conversation went past the probe's bounds


class _Connection(http.client.HTTPConnection):
    def __init__(self, outside: Outside, port: int) -> None:
        super().__init__(outside.address, port, timeout=outside.reply_timeout)
        self.outside = outside
        self.conversation: Conversation | None = None

    def connect(self) -> None:
        self.conversation = Conversation(
            self.outside.address,
            self.port,
            self.outside.timeout,
            self.outside.reply_timeout,
            self.outside.deadline,
            limit=BODY_LIMIT + 64 * 1024,
            connected=self.outside.take(self.port),
            source=self.outside.source,
        )
        self.sock = self.conversation


class Http(Probe):
    """``outside.http(path="/", host=None, port=80)``: GET ``path`` with ``Host: host`` (the
    VM's address when not given) and read the status, a few headers and the page.

    Returns: an ``HttpAnswer``.

    Evidence: ``GET http://ADDRESS:PORT/PATH (Host: ...)`` and the response.

    The prover mutates: whatever listens on the port, stopped (on the simulator, a VM of its
    own; never port 22, the grader's own way in)."""

    name = "http"
    Answer = HttpAnswer

    def key(
        self, outside: Outside, path: str = "/", host: str | None = None, port: int = 80
    ) -> list[Any]:
        return [path, host or "", port]

    def ask(
        self, outside: Outside, path: str = "/", host: str | None = None, port: int = 80
    ) -> HttpAnswer:
        outside.deadline.check()
        connection = _Connection(outside, port)
        try:
            connection.request(
                "GET",
                path,
                headers={"Host": host or outside.address, "User-Agent": "lab-grader"},
            )
            response = connection.getresponse()
            body = response.read(BODY_LIMIT + 1)
            response.close()
        except (OSError, http.client.HTTPException) as e:
            conversation = connection.conversation
            if isinstance(e, Exceeded) and conversation is not None and conversation.received:
                return HttpAnswer(False, None, "", text=f"port {port}: {e}", trouble=str(e))
            return HttpAnswer(False, None, "", text=why(e, port, outside.reply_timeout))
        finally:
            connection.close()
        # in one order whatever the server's: an archive keeps a dict in key order
        headers = dict(
            sorted((k.lower(), v) for k, v in response.getheaders() if k.lower() in HEADERS)
        )
        return HttpAnswer(
            True,
            response.status,
            response.reason,
            headers,
            body[:BODY_LIMIT].decode("utf-8", errors="replace"),
            len(body) > BODY_LIMIT,
        )

    def shown(
        self,
        outside: Outside,
        answer: HttpAnswer,
        path: str = "/",
        host: str | None = None,
        port: int = 80,
    ) -> tuple[str, str]:
        asked = f"GET http://{outside.address}:{port}{path} (Host: {host or outside.address})"
        if not answer.ok:
            return asked, answer.text
        head = f"{answer.status} {answer.reason}\n" + "".join(
            f"{k}: {v}\n" for k, v in answer.headers.items()
        )
        return asked, head + "\n" + answer.body

    def result(
        self,
        outside: Outside,
        answer: HttpAnswer,
        path: str = "/",
        host: str | None = None,
        port: int = 80,
    ) -> HttpAnswer:
        if answer.trouble:
            raise too_long(f"the web server on port {port}", answer.trouble)
        return answer
