"""A DNS query over UDP from the grading machine (dnspython), as a resolver would ask."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from grader.base.errors import CheckError
from grader.probes import Outside, Probe


@dataclass(frozen=True)
class DnsAnswer:
    """A DNS response: its rcode, whether the server is authoritative, the records as text."""

    ok: bool  # a DNS response came back (whatever its rcode)
    rcode: str  # NOERROR, NXDOMAIN, REFUSED, SERVFAIL ... ("" without a response)
    authoritative: bool = False  # the AA flag: the server answers from its own zone
    answer: list[str] = field(default_factory=list)  # "name ttl class type data" records
    authority: list[str] = field(default_factory=list)
    text: str = ""  # why there was no response


def _records(section: Any) -> list[str]:
    return [line for rrset in section for line in rrset.to_text().splitlines()]


def _exchange(address: str, port: int, wire: bytes, wait: float) -> bytes:
    """One question on a connected UDP socket: an ICMP port unreachable (nothing listens)
    ends it at once as ConnectionRefusedError, instead of waiting out ``wait``."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.connect((address, port))
        sock.send(wire)
        try:
            return sock.recv(65535)
        except socket.timeout:
            raise TimeoutError from None


class Dns(Probe):
    """``outside.dns(name, rtype="A", port=53)``: one query over UDP to the VM, no recursion
    asked; the answer's records as text (``www.lab. 300 IN A 198.18.0.10``). A VM where nothing
    listens on the port says so at once (ICMP), not after the reply timeout.

    Returns: a ``DnsAnswer``. Evidence: the question and the response. The prover mutates:
    nothing (UDP ports are not stopped); a pack's own mutants change its zones."""

    name = "dns"
    Answer = DnsAnswer

    def key(self, outside: Outside, name: str, rtype: str = "A", port: int = 53) -> list[Any]:
        return [name.lower(), rtype.upper(), port]

    def ask(self, outside: Outside, name: str, rtype: str = "A", port: int = 53) -> DnsAnswer:
        outside.deadline.check()
        try:  # lazy: self-check (its bundle has no dnspython; only a lab that asks DNS needs it)
            import dns.exception
            import dns.flags
            import dns.message
            import dns.query
            import dns.rcode
        except ImportError:
            raise CheckError("a DNS query needs dnspython, which is not installed here") from None
        try:
            query = dns.message.make_query(name, rtype)
        except dns.exception.DNSException as e:
            raise CheckError(f"cannot ask for {name!r} {rtype!r}: {e}") from None
        query.flags &= ~dns.flags.RD
        wait = outside.deadline.bound(outside.reply_timeout)
        try:
            wire = _exchange(outside.address, port, query.to_wire(), wait)
        except TimeoutError:
            return DnsAnswer(False, "", text=f"no answer on UDP port {port} within {wait:g} s")
        except ConnectionRefusedError:
            return DnsAnswer(
                False, "", text=f"UDP port {port} refused the question: nothing listens there"
            )
        except OSError as e:
            return DnsAnswer(False, "", text=f"UDP port {port}: {e.strerror or e}")
        try:
            response = dns.message.from_wire(wire)
        except dns.exception.DNSException as e:
            return DnsAnswer(False, "", text=f"UDP port {port} answered, but not in DNS: {e}")
        if response.id != query.id:
            return DnsAnswer(False, "", text=f"UDP port {port} answered another question")
        return DnsAnswer(
            True,
            dns.rcode.to_text(response.rcode()),
            bool(response.flags & dns.flags.AA),
            _records(response.answer),
            _records(response.authority),
        )

    def shown(
        self, outside: Outside, answer: DnsAnswer, name: str, rtype: str = "A", port: int = 53
    ) -> tuple[str, str]:
        asked = f"DNS query {name} {rtype.upper()} to {outside.address}:{port}/udp"
        if not answer.ok:
            return asked, answer.text
        flags = " (authoritative)" if answer.authoritative else ""
        return asked, "\n".join([f"{answer.rcode}{flags}", *answer.answer, *answer.authority])
