"""The outside view: what the grading machine sees of a VM over the network.

Probes answer about the student's VM, so a refused or silent port is a normal answer
(``ok=False`` with the reason), not an error. Only a problem of the grader itself (nmap missing)
raises. Each probe runs once per host; a second ask is served from memory. Every ask is
recorded as evidence of the check that made it, with passwords masked.
"""

from __future__ import annotations

import contextlib
import os
import poplib
import shutil
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import nmap

from grader import evidence
from grader.errors import CheckError

T = TypeVar("T")


@dataclass(frozen=True)
class Greeting:
    ok: bool
    code: int | None  # SMTP reply code; None for POP3 or when nothing answered
    text: str  # the greeting line(s), or why there was none


@dataclass(frozen=True)
class Pop3Login:
    ok: bool
    messages: int | None  # messages in the mailbox, from STAT
    text: str  # the server's answer, or why the login did not work


@dataclass(frozen=True)
class Scan:
    source: str  # how the ports were scanned, as the evidence shows it
    states: dict[int, str]  # port -> open, closed, filtered ...


def _why(error: BaseException, port: int, timeout: float) -> str:
    if isinstance(error, ConnectionRefusedError):
        return f"connection to port {port} refused (nothing listens there)"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer on port {port} within {timeout:g} s"
    if isinstance(error, smtplib.SMTPServerDisconnected | EOFError):
        return f"port {port} closed the connection without a greeting"
    return f"port {port}: {error}"


def scan_type() -> str:
    """As root, a SYN scan: half-open, so the VM's daemons never accept a connection from it
    (sendmail counts accepted connections against its ClientRate limit). Otherwise a connect
    scan, which needs no privileges."""
    return "-sS" if os.geteuid() == 0 else "-sT"


def connect_scan(address: str, ports: Iterable[int], timeout: float) -> dict[int, str]:
    """What nmap's connect scan tells, by connecting: for machines without nmap."""
    states = {}
    for port in sorted(set(ports)):
        try:
            with socket.create_connection((address, port), timeout=timeout):
                states[port] = "open"
        except ConnectionRefusedError:
            states[port] = "closed"
        except OSError:
            states[port] = "filtered"
    return states


def scan_ports(
    addresses: Sequence[str], ports: Iterable[int], timeout: float
) -> dict[str, dict[int, str]]:
    """Scan TCP ``ports`` of ``addresses`` with one nmap: {address: {port: state}}."""
    wanted = sorted(set(ports))
    try:
        scanner = nmap.PortScanner()
    except nmap.PortScannerError:  # nmap is not installed (a student's VM, say)
        return {a: connect_scan(a, wanted, timeout) for a in addresses}
    try:
        scanner.scan(
            hosts=" ".join(addresses),
            ports=",".join(map(str, wanted)),
            arguments=f"{scan_type()} -Pn -n --max-retries 1 "
            f"--host-timeout {max(int(timeout * 4), 10)}s",
        )
    except nmap.PortScannerError as e:
        raise CheckError(f"the port scan could not run: {str(e).strip()}") from None
    found = {}
    for address in addresses:
        tcp = scanner[address].get("tcp", {}) if address in scanner.all_hosts() else {}
        found[address] = {port: tcp.get(port, {}).get("state", "unknown") for port in wanted}
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

    def states(self, address: str) -> dict[int, str] | None:
        """This address's part of the scan, or None (not scanned here, or the scan failed)."""
        try:
            return self._result.result(timeout=self._timeout * 8 + 30).get(address)
        except Exception:
            return None


def _say_goodbye(client: smtplib.SMTP | poplib.POP3) -> None:
    """QUIT politely, and close the connection whatever the server answers (poplib's quit()
    raises on -ERR before it closes)."""
    with contextlib.suppress(OSError, smtplib.SMTPException, poplib.error_proto):
        client.quit()
    client.close()


class _SMTP(smtplib.SMTP):
    """smtplib's client, with a short timeout to connect and a longer one for replies: sendmail
    may pause before its greeting (Debian's greet_pause), a closed port answers at once."""

    def __init__(self, connect_timeout: float, reply_timeout: float) -> None:
        super().__init__(local_hostname="lab-grader", timeout=reply_timeout)
        self.connect_timeout = connect_timeout

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), self.connect_timeout)
        sock.settimeout(timeout)
        return sock


class Outside:
    """Probes from the grading machine to one VM, at most once each."""

    def __init__(
        self,
        address: str,
        ports: Iterable[int] = (),
        timeout: float = 5.0,
        reply_timeout: float = 15.0,
        class_scan: ClassScan | None = None,
    ) -> None:
        self.address = address
        self.ports = tuple(ports)  # the ports one scan covers (the rubric's [outside] ports)
        self.class_scan = class_scan  # a scan of the whole class this host may be part of
        self.timeout = timeout  # to connect
        self.reply_timeout = reply_timeout  # to wait for a greeting or a reply
        self._memo: dict[tuple[object, ...], object] = {}
        self._lock = threading.Lock()

    def _once(self, key: tuple[object, ...], probe: Callable[[], T]) -> T:
        with self._lock:  # probes of one host are few; doing them one at a time keeps it simple
            if key not in self._memo:
                self._memo[key] = probe()
            return self._memo[key]  # type: ignore[return-value]

    def answers(self) -> list[tuple[tuple[Any, ...], object]]:
        """Every probe made and what it found, in the order made (for the evidence archive):
        keys ("smtp", port), ("pop3", port), ("pop3-login", port, user, password),
        ("scan", ports)."""
        with self._lock:
            return list(self._memo.items())

    def smtp_greeting(self, port: int = 25) -> Greeting:
        """Connect to the SMTP port and read the greeting (then QUIT)."""

        def probe() -> Greeting:
            client = _SMTP(self.timeout, self.reply_timeout)
            started = time.monotonic()
            try:
                code, text = client.connect(self.address, port)
            except (OSError, smtplib.SMTPException) as e:
                return Greeting(False, None, _why(e, port, self.reply_timeout))
            waited = time.monotonic() - started
            _say_goodbye(client)
            greeting = text.decode(errors="replace")
            if waited >= 1:
                greeting += f" (greeting after {waited:.1f} s)"
            return Greeting(code == 220, code, greeting)

        result = self._once(("smtp", port), probe)
        evidence.record(
            f"SMTP connection to {self.address}:{port}",
            f"{result.code or ''} {result.text}".strip(),
        )
        if result.code == 421:
            raise CheckError(
                f"port {port} answered {result.code} {result.text}: the SMTP server turned the "
                "grader away for now (sendmail limits connections per client: ClientRate, "
                "ConnectionRateThrottle); grade again in a few minutes"
            )
        return result

    def pop3_greeting(self, port: int = 110) -> Greeting:
        """Connect to the POP3 port and read the greeting (then QUIT)."""

        def probe() -> Greeting:
            try:
                client = poplib.POP3(self.address, port, timeout=self.reply_timeout)
            except (OSError, poplib.error_proto) as e:
                return Greeting(False, None, _why(e, port, self.reply_timeout))
            text = client.getwelcome().decode(errors="replace")
            _say_goodbye(client)
            return Greeting(text.startswith("+OK"), None, text)

        result = self._once(("pop3", port), probe)
        evidence.record(f"POP3 connection to {self.address}:{port}", result.text)
        return result

    def pop3_login(self, user: str, password: str, port: int = 110) -> Pop3Login:
        """USER/PASS, then STAT and QUIT. Read-only: no message is retrieved or deleted."""

        def probe() -> Pop3Login:
            try:
                client = poplib.POP3(self.address, port, timeout=self.reply_timeout)
            except (OSError, poplib.error_proto) as e:
                return Pop3Login(False, None, _why(e, port, self.reply_timeout))
            try:
                client.user(user)
                client.pass_(password)
                count, size = client.stat()
            except poplib.error_proto as e:
                return Pop3Login(
                    False, None, f"login refused: {e.args[0].decode(errors='replace')}"
                )
            except OSError as e:
                return Pop3Login(False, None, _why(e, port, self.reply_timeout))
            finally:
                _say_goodbye(client)
            return Pop3Login(True, count, f"+OK {count} messages ({size} octets)")

        result = self._once(("pop3-login", port, user, password), probe)
        evidence.record(
            f"POP3 login to {self.address}:{port} as {user} (USER {user}, PASS ****, STAT, QUIT)",
            result.text,
        )
        return result

    def port_state(self, port: int) -> str:
        """nmap's state of a TCP port seen from here: open, closed, filtered ..."""
        ports = self.ports if port in self.ports else (port,)

        def probe() -> Scan:
            tool = f"nmap {scan_type()} -Pn" if shutil.which("nmap") else "TCP connect (no nmap) to"
            source = f"{tool} -p {','.join(map(str, ports))} {self.address}"
            shared = self.class_scan
            if shared is not None and set(ports) <= set(shared.ports):
                states = shared.states(self.address)
                if states is not None:
                    return Scan(f"{source} (one scan of {len(shared.addresses)} hosts)", states)
            return Scan(source, scan_ports([self.address], ports, self.timeout)[self.address])

        scan = self._once(("scan", ports), probe)
        evidence.record(
            scan.source,
            ", ".join(f"{p}/tcp {s}" for p, s in sorted(scan.states.items()) if p in ports),
        )
        return scan.states[port]


def own_address(host: Any) -> str:
    """This machine's address as the network sees it, for probing it "from outside" when
    grading locally: the first address of an interface other than loopback (IPv4 first, no
    link-local), or 127.0.0.1 when there is none."""
    found: list[str] = []
    for name in host.interface.names():
        if name != "lo":
            found += [a for a in host.interface(name).addresses if not a.startswith("fe80")]
    found.sort(key=lambda a: ":" in a)  # IPv4 before IPv6
    return found[0] if found else "127.0.0.1"
