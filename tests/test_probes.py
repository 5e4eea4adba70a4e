"""Outside probes against misbehaving servers the tests start on loopback: each probe has a
total deadline and a byte bound, and a server that floods, trickles or answers nonsense makes
the check an ``error`` with the reason, within the probe's deadline, never a hang."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from grader.base.budget import Deadline, DeadlinePassed
from grader.base.errors import CheckError
from grader.probes import Outside
from grader.probes.net import RECEIVE_LIMIT

REPLY_TIMEOUT = 2.0


@contextmanager
def server(talk: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that runs ``talk`` with each client; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=_talk, args=(talk, client), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def _talk(talk: Callable[[socket.socket], None], client: socket.socket) -> None:
    try:
        talk(client)
    except OSError:
        pass  # the grader hung up, as it should
    finally:
        client.close()


def continuation_forever(client: socket.socket) -> None:
    while True:
        client.sendall(b"220-still greeting you " + b"." * 200 + b"\r\n")


def trickle(client: socket.socket) -> None:
    for byte in b"220 hello, slowly, one byte at a time\r\n":
        client.sendall(bytes([byte]))
        time.sleep(0.3)


def pop3_garbage_stat(client: socket.socket) -> None:
    reader = client.makefile("rb")
    client.sendall(b"+OK hello\r\n")
    for line in reader:
        word = line.split()[0].upper() if line.split() else b""
        if word == b"STAT":
            client.sendall(b"+OK lots of messages\r\n")
        elif word == b"QUIT":
            client.sendall(b"+OK bye\r\n")
            return
        else:
            client.sendall(b"+OK\r\n")


def outside(**kwargs: object) -> Outside:
    return Outside("127.0.0.1", reply_timeout=REPLY_TIMEOUT, **kwargs)  # type: ignore[arg-type]


def test_an_smtp_server_that_never_ends_its_greeting_is_an_error_not_a_hang():
    with server(continuation_forever) as port:
        started = time.monotonic()
        with pytest.raises(CheckError, match=f"sent more than {RECEIVE_LIMIT} bytes"):
            outside().smtp_greeting(port)
        assert time.monotonic() - started < REPLY_TIMEOUT + 1


def test_a_trickling_smtp_server_is_cut_off_at_the_deadline():
    with server(trickle) as port:
        started = time.monotonic()
        with pytest.raises(CheckError, match=f"no complete answer within {REPLY_TIMEOUT:g} s"):
            outside().smtp_greeting(port)
        assert time.monotonic() - started < REPLY_TIMEOUT + 1


def test_a_pop3_server_answering_stat_with_garbage_is_an_error():
    with server(pop3_garbage_stat) as port, pytest.raises(CheckError, match="STAT's answer"):
        outside().pop3_login("bob", "pw", port)


def test_a_silent_port_is_a_normal_answer_not_an_error():
    with server(lambda client: time.sleep(REPLY_TIMEOUT + 1)) as port:
        greeting = outside().smtp_greeting(port)
    assert not greeting.ok and "no answer" in greeting.text  # the student's VM is wrong


def test_the_hosts_deadline_bounds_a_probe_under_way():
    with server(trickle) as port:
        started = time.monotonic()
        probe = Outside("127.0.0.1", reply_timeout=30, deadline=Deadline(1.0))
        with pytest.raises(CheckError, match="ran out of time"):
            probe.smtp_greeting(port)
        assert time.monotonic() - started < 2
        with pytest.raises(DeadlinePassed):  # and the next one does not start
            probe.pop3_greeting(port)


def test_a_cancel_ends_a_probe_within_a_moment():
    with server(trickle) as port:
        cancel = threading.Event()
        probe = Outside("127.0.0.1", reply_timeout=30, deadline=Deadline(None, cancel))
        threading.Timer(0.5, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(CheckError):
            probe.smtp_greeting(port)
        assert time.monotonic() - started < 1.5


def test_http_gets_a_page_with_the_host_header_asked_for():
    seen: list[bytes] = []

    def web(client: socket.socket) -> None:
        request = client.recv(4096)
        seen.append(request)
        body = b"<h1>hello</h1>"
        client.sendall(
            b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )

    with server(web) as port:
        page = outside().http("/", host="www.s123.lab", port=port)
    assert page.ok and page.status == 200 and page.body == "<h1>hello</h1>"
    assert page.headers["content-type"] == "text/html"
    assert b"Host: www.s123.lab\r\n" in seen[0]


def test_a_web_server_that_floods_is_cut_off():
    def flood(client: socket.socket) -> None:
        client.recv(4096)
        client.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
        while True:
            client.sendall(b"x" * 65536)

    with server(flood) as port:
        page = outside().http("/", port=port)  # the page is read up to its limit, no more
    assert page.ok and page.truncated and len(page.body) == 256 * 1024


def test_a_self_check_connects_once_to_a_port_it_scans_and_talks_to(monkeypatch):
    """Without root the port scan connects; the connection then serves the greeting probe, so
    a mail server that counts connections per client sees one per self-check."""
    import grader.probes.scan as scan

    monkeypatch.setattr(scan, "scan_type", lambda: "-sT")  # as a student without root
    connections = []

    def greet(client: socket.socket) -> None:
        connections.append(client)
        client.sendall(b"220 hello\r\n")
        client.recv(100)

    with server(greet) as port:
        probe = Outside("127.0.0.1", ports=(port,), reply_timeout=REPLY_TIMEOUT, own_machine=True)
        assert probe.port_state(port) == "open"
        assert probe.smtp_greeting(port).ok
        probe.close()
        time.sleep(0.2)
    assert len(connections) == 1


def test_a_dns_question_to_a_port_where_nothing_listens_ends_at_once():
    """ICMP port unreachable ends it: an untouched Lab 7 VM is not a 15 s wait per question."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    outside = Outside("127.0.0.1", reply_timeout=15)
    started = time.monotonic()
    answer = outside.dns("www.example.test", "A", port=port)
    assert time.monotonic() - started < 2
    assert not answer.ok and "refused" in answer.text


def test_a_dns_answer_is_read_from_a_server_on_loopback():
    import dns.message
    import dns.rrset

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server_socket:
        server_socket.bind(("127.0.0.1", 0))
        port = server_socket.getsockname()[1]

        def answer_once() -> None:
            data, peer = server_socket.recvfrom(4096)
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            reply.answer.append(
                dns.rrset.from_text("www.example.test.", 300, "IN", "A", "198.18.0.9")
            )
            server_socket.sendto(reply.to_wire(), peer)

        thread = threading.Thread(target=answer_once, daemon=True)
        thread.start()
        answer = Outside("127.0.0.1", reply_timeout=5).dns("www.example.test", "A", port=port)
        thread.join(timeout=5)
    assert answer.ok and answer.rcode == "NOERROR"
    assert answer.answer == ["www.example.test. 300 IN A 198.18.0.9"]
