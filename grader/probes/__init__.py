"""The outside view: probes from the grading machine to one VM.

A check asks ``outside.<kind>(...)``: ``outside.port_state(25)``, ``outside.smtp_greeting(25)``,
``outside.http("/", host="www.example")``, ``outside.dns("www.example", "A")`` ... Each kind of
probe is a ``Probe`` subclass that says, in one place, how it asks (live, bounded), what it
shows as evidence, and what its answer is; the answer is a small dataclass of JSON values, so
the evidence archive records any kind the same way and ``grade regrade`` replays it. The
built-in kinds are registered below and imported on first use; a lab pack adds its own by
defining ``Probe`` subclasses in its checks folder (see ``grader.engine.checkload``).

Probes answer about the student's VM, so a refused or silent port is a normal answer (a
``fail`` for the check to decide), not an error. A probe that cannot work (the tool it needs
is missing, the service answered past the probe's bounds) raises ``CheckError``: the check is
``error``. Each probe runs once per host (a second ask is served from memory) and every ask is
recorded as evidence of the check that made it.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from grader.base import evidence
from grader.base.budget import NEVER, Deadline
from grader.base.errors import CheckError, InputError

BUILT_IN = {
    "port_state": "grader.probes.scan:PortState",
    "udp_port_state": "grader.probes.scan:UdpPortState",
    "smtp_greeting": "grader.probes.mail:SmtpGreeting",
    "pop3_greeting": "grader.probes.mail:Pop3Greeting",
    "pop3_login": "grader.probes.mail:Pop3Login",
    "http": "grader.probes.http:Http",
    "dns": "grader.probes.dns:Dns",
}
"""The built-in kinds of probe, by the name a check calls (``outside.http(...)``):
"module:Class", imported on first use."""


class Probe:
    """One kind of probe. Subclasses set ``name`` and ``Answer`` (a dataclass of JSON values,
    rebuilt from its record by ``Answer(**record)`` unless it defines ``from_record``) and
    implement ``ask``; ``key``, ``shown`` and ``result`` have defaults.

    ``ask``, ``shown`` and ``result`` get the ``Outside`` (address, timeouts, deadline) and the
    check's arguments; ``key`` turns the arguments into the memo key (JSON values).
    """

    name: ClassVar[str]
    Answer: ClassVar[type]

    def key(self, outside: Outside, *args: Any, **kwargs: Any) -> list[Any]:
        """The memo key of a question (JSON values): the same key is asked once a host."""
        return [*args, *(f"{k}={v}" for k, v in sorted(kwargs.items()))]

    def ask(self, outside: Outside, *args: Any, **kwargs: Any) -> Any:
        """Ask the VM, live and bounded (``Conversation``), and return the ``Answer``: a
        refused or silent port is an answer, not an error."""
        raise NotImplementedError

    def shown(self, outside: Outside, answer: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
        """The evidence: what was asked and what came back, as a person reads them."""
        asked = ", ".join([*map(str, args), *(f"{k}={v}" for k, v in kwargs.items())])
        return f"{self.name}({asked}) to {outside.address}", str(answer)

    def result(self, outside: Outside, answer: Any, *args: Any, **kwargs: Any) -> Any:
        """What the check gets: the answer, unless it means the probe could not work."""
        return answer

    @classmethod
    def rebuild(cls, record: Mapping[str, Any]) -> Any:
        """The ``Answer`` from its record in an evidence archive (``grade regrade``)."""
        maker = getattr(cls.Answer, "from_record", None)
        return maker(record) if maker else cls.Answer(**record)


def record_of(answer: Any) -> dict[str, Any]:
    """An answer as JSON values, for the archive."""
    return json.loads(json.dumps(dataclasses.asdict(answer)))


def _load(spec: str) -> type[Probe]:
    module, name = spec.split(":")
    kind: type[Probe] = getattr(importlib.import_module(module), name)
    return kind


class Registry:
    """The probe kinds a lab can use: the built-in ones and its pack's own."""

    def __init__(self, extra: Mapping[str, type[Probe]] | None = None) -> None:
        self._specs: dict[str, str | type[Probe]] = dict(BUILT_IN)
        for name, kind in (extra or {}).items():
            self._specs[name] = kind
        self._made: dict[str, Probe] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str) -> Probe:
        """The kind of probe ``name``, made on first use."""
        with self._lock:
            if name not in self._made:
                spec = self._specs.get(name)
                if spec is None:
                    raise AttributeError(name)
                kind = _load(spec) if isinstance(spec, str) else spec
                self._made[name] = kind()
            return self._made[name]


def pack_probes(classes: Iterable[tuple[str, type[Probe]]]) -> dict[str, type[Probe]]:
    """The probe kinds a pack defines ((where, class) pairs), refused when a name is taken."""
    found: dict[str, tuple[str, type[Probe]]] = {}
    for where, kind in classes:
        name = getattr(kind, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(f"{where}: probe {kind.__name__} needs a name (an identifier)")
        if name in BUILT_IN:
            raise InputError(f"{where}: probe name {name!r} is taken by a built-in probe")
        if name in found and found[name][1] is not kind:
            raise InputError(f"{where}: probe name {name!r} is also used at {found[name][0]}")
        found[name] = (where, kind)
    return {name: kind for name, (_, kind) in found.items()}


class Outside:
    """Probes from the grading machine to one VM, each asked at most once."""

    def __init__(
        self,
        address: str,
        ports: Iterable[int] = (),
        timeout: float = 5.0,
        reply_timeout: float = 15.0,
        class_scan: Any = None,
        deadline: Deadline = NEVER,
        registry: Registry | None = None,
        own_machine: bool = False,
    ) -> None:
        self.address = address
        self.ports = tuple(ports)  # the ports one scan covers (the rubric's [outside] ports)
        self.class_scan = class_scan  # a scan of the whole class this host may be part of
        self.timeout = timeout  # to connect
        self.reply_timeout = reply_timeout  # for a whole conversation with a service
        self.deadline = deadline  # the host's: no probe waits past it
        self.registry = registry or Registry()
        self.own_machine = own_machine  # probing the machine the grader runs on (--local)
        self._memo: dict[str, Any] = {}
        self._keys: dict[str, tuple[str, list[Any]]] = {}
        self._lock = threading.Lock()
        self._held: dict[int, socket.socket] = {}  # a connect scan's open connections
        self._held_lock = threading.Lock()  # apart: a probe takes one while being asked

    @property
    def source(self) -> str | None:
        """The address this grading's connections come from, where the grader chooses it: a
        self-check reaches its own VM's address from the loopback address, which a mail
        server's limits per client exempt, so a student's own checks never lock them out (the
        address reached, not the one come from, is what a check is about)."""
        if self.own_machine and ":" not in self.address and not self.address.startswith("127."):
            return "127.0.0.1"
        return None

    def from_where(self) -> str:
        """How the evidence says where a connection came from, when the grader chose it."""
        return f" from {self.source}" if self.source else ""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            probe = self.registry.get(name)
        except AttributeError:
            raise AttributeError(
                f"no probe {name!r}; the probes are {', '.join(self.registry.names)}"
            ) from None

        def ask(*args: Any, **kwargs: Any) -> Any:
            key = probe.key(self, *args, **kwargs)
            answer = self._once(name, key, lambda: probe.ask(self, *args, **kwargs))
            evidence.record(*probe.shown(self, answer, *args, **kwargs))
            return probe.result(self, answer, *args, **kwargs)

        return ask

    def _once(self, name: str, key: list[Any], asking: Callable[[], Any]) -> Any:
        memo = json.dumps([name, key])
        with self._lock:  # probes of one host are few; one at a time keeps it simple
            if memo not in self._memo:
                self._memo[memo] = asking()
                self._keys[memo] = (name, json.loads(json.dumps(key)))
            return self._memo[memo]

    def hold(self, port: int, sock: socket.socket) -> None:
        """Keep a connection a connect scan made, for the next conversation with that port."""
        with self._held_lock:
            previous = self._held.pop(port, None)
            self._held[port] = sock
        if previous is not None:
            previous.close()

    def take(self, port: int) -> socket.socket | None:
        """A connection to ``port`` the scan made and kept, if any (one use)."""
        with self._held_lock:
            return self._held.pop(port, None)

    def close(self) -> None:
        """Close what the scan kept and no conversation used."""
        with self._held_lock:
            held, self._held = list(self._held.values()), {}
        for sock in held:
            sock.close()

    def answers(self) -> list[tuple[str, list[Any], Any]]:
        """Every probe made, its key and what it found, in the order made (for the archive)."""
        with self._lock:
            return [(*self._keys[memo], answer) for memo, answer in self._memo.items()]


def too_long(what: str, why: str) -> CheckError:
    """A service that answered past a probe's bounds: the grading could not finish the
    conversation, which says nothing sure about the student's work."""
    return CheckError(f"{what}: {why}, so the probe was cut short")
