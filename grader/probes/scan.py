"""Port scans from the grading machine: TCP (one nmap per class when it can) and UDP."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from grader.base.errors import CheckError
from grader.probes import Outside, Probe


@dataclass(frozen=True)
class Scan:
    """What a port scan found: how it scanned (``source``) and each port's state."""

    source: str  # how the ports were scanned, as the evidence shows it
    states: dict[str, str]  # port (as text: JSON keys are text) -> open, closed, filtered ...

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Scan:
        """The scan as an evidence archive recorded it."""
        return cls(str(record["source"]), {str(k): str(v) for k, v in record["states"].items()})

    def state(self, port: int) -> str:
        """The state of ``port`` ("unknown" when the scan did not cover it)."""
        return self.states.get(str(port), "unknown")


def scan_type() -> str:
    """As root, a SYN scan: half-open, so the VM's daemons never accept a connection from it
    (a mail server may count accepted connections against a per-client limit). Otherwise a
    connect scan, which needs no privileges."""
    return "-sS" if os.geteuid() == 0 else "-sT"


def connect_scan(
    address: str,
    ports: Iterable[int],
    timeout: float,
    keep: Callable[[int, socket.socket], None] | None = None,
    source: str | None = None,
) -> dict[int, str]:
    """What nmap's connect scan tells, by connecting: for machines without nmap, or without
    root. ``keep`` takes each open port's connection instead of closing it, for a probe that
    will talk to that port: a server that counts connections (a mail server's limit per
    client) then sees one per grading, not two. ``source``: the address to connect from."""
    states = {}
    for port in sorted(set(ports)):
        try:
            from_ = (source, 0) if source is not None else None
            sock = socket.create_connection((address, port), timeout=timeout, source_address=from_)
        except ConnectionRefusedError:
            states[port] = "closed"
            continue
        except OSError:
            states[port] = "filtered"
            continue
        states[port] = "open"
        if keep is not None:
            keep(port, sock)
        else:
            sock.close()
    return states


def scan_ports(
    addresses: Sequence[str],
    ports: Iterable[int],
    timeout: float,
    limit: float | None = None,
    udp: bool = False,
    keep: Callable[[int, socket.socket], None] | None = None,
    source: str | None = None,
) -> dict[str, dict[int, str]]:
    """Scan ``ports`` of ``addresses`` with one nmap: {address: {port: state}}. ``limit``
    bounds the whole scan in seconds. Without nmap, or without root for a SYN scan, the
    ports are connected to (see connect_scan; ``keep`` and ``source`` as there)."""
    wanted = sorted(set(ports))
    try:
        import nmap  # lazy: optional (without it, a connect scan in Python)
    except ImportError:
        nmap = None
    connect = keep is not None and scan_type() != "-sS"  # a connection may serve a probe too
    if nmap is None or shutil.which("nmap") is None or (not udp and connect):
        if udp:
            raise CheckError("a UDP port scan needs nmap, which is not installed here")
        return {a: connect_scan(a, wanted, timeout, keep, source) for a in addresses}
    if udp and os.geteuid() != 0:
        raise CheckError("a UDP port scan needs root (nmap -sU): run the grader as root")
    scanner = nmap.PortScanner()
    kind = "-sU" if udp else scan_type()
    try:
        scanner.scan(
            hosts=" ".join(addresses),
            ports=",".join(map(str, wanted)),
            arguments=f"{kind} -Pn -n --max-retries 1 --host-timeout {max(int(timeout * 4), 10)}s",
            timeout=max(int(limit), 1) if limit is not None and limit != float("inf") else 0,
        )
    except nmap.PortScannerTimeout:
        raise CheckError("the port scan ran out of time") from None
    except nmap.PortScannerError as e:
        raise CheckError(f"the port scan could not run: {str(e).strip()}") from None
    protocol = "udp" if udp else "tcp"
    found = {}
    for address in addresses:
        table = scanner[address].get(protocol, {}) if address in scanner.all_hosts() else {}
        found[address] = {port: table.get(port, {}).get("state", "unknown") for port in wanted}
    return found


class ClassScan:
    """One nmap over a whole class, started as the run starts; each host's checks take their
    host's part. nmap costs little per host scanned and much per run."""

    def __init__(self, hosts: Sequence[str], ports: Sequence[int], timeout: float) -> None:
        self.hosts = list(dict.fromkeys(hosts))
        self.ports = tuple(ports)
        self.addresses: list[str] = []
        self._result: Future[dict[str, dict[int, str]]] = Future()
        self._timeout = timeout
        threading.Thread(target=self._run, name="class-scan", daemon=True).start()

    def _run(self) -> None:
        try:
            for host in self.hosts:  # as ssh.connect resolves them
                with contextlib.suppress(OSError):
                    info = socket.getaddrinfo(host, 22, type=socket.SOCK_STREAM)
                    self.addresses.append(str(info[0][4][0]))
            self._result.set_result(scan_ports(self.addresses, self.ports, self._timeout))
        except BaseException as e:  # the hosts scan themselves instead
            self._result.set_exception(e)

    def states(self, address: str, wait: float) -> dict[int, str] | None:
        """This address's part of the scan, or None (not scanned here, the scan failed, or it
        did not finish within ``wait`` seconds)."""
        try:
            return self._result.result(timeout=min(wait, self._timeout * 8 + 30)).get(address)
        except Exception:
            return None


class PortState(Probe):
    """``outside.port_state(port)``: nmap's state of a TCP port seen from the grading machine
    (open, closed, filtered ...). One scan covers the rubric's [outside] ports.

    Returns: the state, as nmap words it ("open", "closed", "filtered" ...).

    Evidence: the scan (``nmap -sS -Pn -p PORTS ADDRESS``) and the states it found.

    The prover mutates: whatever listens on the port, stopped (on the simulator, a VM of its
    own; never port 22, the grader's own way in)."""

    name = "port_state"
    Answer = Scan

    def _ports(self, outside: Outside, port: int) -> tuple[int, ...]:
        return outside.ports if port in outside.ports else (port,)

    def key(self, outside: Outside, port: int) -> list[Any]:
        return sorted(self._ports(outside, port))

    def ask(self, outside: Outside, port: int) -> Scan:
        outside.deadline.check()
        ports = self._ports(outside, port)
        if not shutil.which("nmap") or (outside.own_machine and scan_type() != "-sS"):
            tool = "TCP connect to"
        else:
            tool = f"nmap {scan_type()} -Pn"
        source = f"{tool} -p {','.join(map(str, ports))} {outside.address}"
        shared = outside.class_scan
        if shared is not None and set(ports) <= set(shared.ports):
            states = shared.states(outside.address, outside.deadline.remaining())
            if states is not None:
                return Scan(
                    f"{source} (one scan of {len(shared.addresses)} hosts)",
                    {str(p): s for p, s in states.items()},
                )
        limit = outside.deadline.remaining()
        keep = outside.hold if outside.own_machine else None  # a self-check: one connection each
        found = scan_ports(
            [outside.address], ports, outside.timeout, limit, keep=keep, source=outside.source
        )
        return Scan(source, {str(p): s for p, s in found[outside.address].items()})

    def shown(self, outside: Outside, answer: Scan, port: int) -> tuple[str, str]:
        ports = set(self._ports(outside, port))
        states = sorted((int(p), s) for p, s in answer.states.items() if int(p) in ports)
        return answer.source, ", ".join(f"{p}/tcp {s}" for p, s in states)

    def result(self, outside: Outside, answer: Scan, port: int) -> str:
        return answer.state(port)


class UdpPortState(Probe):
    """``outside.udp_port_state(port)``: nmap's state of a UDP port (open, open|filtered,
    closed ...). Needs nmap and root on the grading machine; a DNS or other query that gets an
    answer tells more than a UDP scan can.

    Returns: the state, as nmap words it. Evidence: the scan and the states it found."""

    name = "udp_port_state"
    Answer = Scan

    def key(self, outside: Outside, port: int) -> list[Any]:
        return [port]

    def ask(self, outside: Outside, port: int) -> Scan:
        outside.deadline.check()
        limit = outside.deadline.remaining()
        found = scan_ports([outside.address], [port], outside.timeout, limit, udp=True)
        states = {str(p): s for p, s in found[outside.address].items()}
        return Scan(f"nmap -sU -Pn -p {port} {outside.address}", states)

    def shown(self, outside: Outside, answer: Scan, port: int) -> tuple[str, str]:
        return answer.source, f"{port}/udp {answer.state(port)}"

    def result(self, outside: Outside, answer: Scan, port: int) -> str:
        return answer.state(port)
