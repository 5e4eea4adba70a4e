"""Simulated student VMs: Linux namespaces on an isolated bridge, running the real daemons.

Each VM has its own network namespace, joined by a veth pair to the bridge ``lsim-br`` that has
no uplink and no forwarding (addresses in 198.18.0.0/24, the grading side is 198.18.0.1), and its
own mount, pid, uts and ipc namespaces with copy-on-write /etc, /var, /home and /root (see
init.sh). Everything is removed on ``close()``; resources left by a killed run are removed by
the next one, which takes the same lock first.

One simulator runs on a network at a time. ``GRADER_SIM_NET=N`` (1 to 9) gives a run a network
of its own beside the default one (bridge ``ls{N}n-br``, 198.18.N.0/24, its own lock), so a
simulator can run while another holds the default network (a test of the installed grader's
``grade sim`` beside the test session's VMs); the commands that boot VMs take any /24 of
198.18.0.0/15 and a prefix for the names of its links and namespaces (``SimNet``:
``--sim-network``, ``--sim-prefix``).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Where every simulator network lies: 198.18.0.0/15, the benchmarking range, never routed
RANGE = ipaddress.ip_network("198.18.0.0/15")


@dataclass(frozen=True)
class SimNet:
    """A simulator network: a /24 inside 198.18.0.0/15 (``network``: its first three numbers,
    "198.18.4"), and the prefix of the names of its bridge, links and namespaces (four
    characters, so that no network's names start with another's). One simulator runs on a
    network, and on a prefix, at a time (each has its lock)."""

    network: str
    prefix: str

    @classmethod
    def of(cls, cidr: str | None = None, prefix: str | None = None) -> SimNet:
        """The network ``cidr`` ("198.18.5.0/24"; default: GRADER_SIM_NET's) with ``prefix``
        (default: the network's own); ValueError saying what is wrong with either."""
        if cidr is None:
            network = DEFAULT.network
        else:
            try:
                given = ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a network (198.18.N.0/24)") from None
            if given.prefixlen != 24 or not given.subnet_of(RANGE):  # type: ignore[arg-type]
                raise ValueError(
                    f"{cidr}: a simulator network is a /24 inside 198.18.0.0/15 (198.18.N.0/24 "
                    "or 198.19.N.0/24), a range that is never routed"
                )
            network = str(given.network_address).rsplit(".", 1)[0]
        if prefix is not None and not re.fullmatch(r"[a-z][a-z0-9]{3}", prefix):
            raise ValueError(
                f"{prefix!r}: a prefix of the simulator's names is four characters, a-z then "
                "a-z or 0-9 (lsim)"
            )
        return cls(network, prefix or _prefix_of(network))

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def gateway(self) -> str:
        """The grading side's address on the bridge."""
        return f"{self.network}.1"

    @property
    def cidr(self) -> str:
        return f"{self.network}.0/24"

    @property
    def locks(self) -> tuple[Path, Path]:
        """The network's lock (as graders before named it, for 198.18.0-9) and its names'."""
        second, third = self.network.split(".")[1:]
        if second == "18" and int(third) < 10:
            held = Path(f"/run/lock/labsim{third if third != '0' else ''}.lock")
        else:
            held = Path(f"/run/lock/labsim-{second}-{third}.lock")
        return held, Path(f"/run/lock/labsim-names-{self.prefix}.lock")


def _prefix_of(network: str) -> str:
    """A network's own prefix: lsim for 198.18.0, lsNn for 198.18.N (N < 10), sXXa or sXXb
    (its third number in hex, a for 198.18, b for 198.19) for the others."""
    second, third = (int(n) for n in network.split(".")[1:])
    if second == 18 and third < 10:
        return "lsim" if third == 0 else f"ls{third}n"
    return f"s{third:02x}{'a' if second == 18 else 'b'}"


_NET = os.environ.get("GRADER_SIM_NET", "0") or "0"
if _NET not in [str(n) for n in range(10)]:
    raise SystemExit(f"GRADER_SIM_NET={_NET}: a simulator network is a number from 0 to 9")
NET = int(_NET)
#: The network a simulator runs on unless told (GRADER_SIM_NET=N: 198.18.N.0/24, beside the
#: default one)
DEFAULT = SimNet(f"198.18.{NET}", _prefix_of(f"198.18.{NET}"))
PREFIX = DEFAULT.prefix  # no network's names start with another's
BRIDGE = DEFAULT.bridge
NETWORK = DEFAULT.network
"""The first three numbers of the default simulator network's /24 ("198.18.0"), inside
198.18.0.0/15, the benchmarking range, never routed (a fleet on another: ``Fleet(net=...)``)."""
GATEWAY = DEFAULT.gateway
"""The grading side's address on the default simulator network ("198.18.0.1")."""
LOCK = DEFAULT.locks[0]
#: What every simulated VM needs; a pack's scenarios name the daemons of their own lab.
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "sshd", "ssh-keygen", "nmap")


class SimulatorError(RuntimeError):
    """A simulated VM could not be made, booted or run a script (the message says which and
    what it printed)."""


def missing_requirements(tools: tuple[str, ...] = ()) -> list[str]:
    """Why the simulator cannot run here (with a pack's ``tools``), or [] when it can."""
    problems = [] if os.geteuid() == 0 else ["needs root (namespaces, mounts, a bridge)"]
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    problems += [
        f"{tool} is not installed (scripts/setup installs it)"
        for tool in (*REQUIRED_TOOLS, *tools)
        if shutil.which(tool, path=path) is None
    ]
    return problems


def _run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise SimulatorError(f"{shlex.join(args)} failed: {result.stderr.strip()}")
    return result


class Network:
    """The isolated bridge, held under its locks for the life of one simulator run."""

    def __init__(self, net: SimNet | None = None) -> None:
        self.net = net or DEFAULT
        self._locks = []
        for path in self.net.locks:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(path, "w")  # noqa: SIM115 - held until close()
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._locks.append(lock)
        self.remove_leftovers(self.net)
        bridge = self.net.bridge
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.net.gateway}/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")

    @staticmethod
    @contextlib.contextmanager
    def held(net: SimNet | None = None) -> Iterator[None]:
        """The network's locks, for a moment: nothing else runs on it meanwhile."""
        with contextlib.ExitStack() as stack:
            for path in (net or DEFAULT).locks:
                path.parent.mkdir(parents=True, exist_ok=True)
                lock = stack.enter_context(open(path, "w"))
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @staticmethod
    def remove_leftovers(net: SimNet | None = None) -> None:
        prefix = (net or DEFAULT).prefix
        for line in _run("ip", "netns", "list").stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(f"{prefix}-"):
                _kill_netns(name)
        for line in _run("ip", "-o", "link", "show").stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(prefix):
                _run("ip", "link", "del", name, check=False)

    def close(self) -> None:
        try:
            self.remove_leftovers(self.net)
        finally:
            self.release()

    def release(self) -> None:
        """Let another simulator run take the bridge (and, with it, whatever is left on it)."""
        for lock in reversed(self._locks):
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
        self._locks = []


def _kill_netns(name: str) -> None:
    pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    for _ in range(100):
        if not _run("ip", "netns", "pids", name, check=False).stdout.split():
            break
        time.sleep(0.05)
    _run("ip", "netns", "del", name, check=False)


class VM:
    """One simulated student VM. ``sh()`` runs a shell script inside it, as root."""

    def __init__(
        self,
        name: str,
        index: int,
        workdir: Path,
        authorized_key: str,
        password: str,
        host_key_file: Path | None = None,
        machine_id: str | None = None,
        net: SimNet | None = None,
    ) -> None:
        if not 2 <= index + 10 <= 250:
            raise SimulatorError(f"VM index {index} out of range")
        self.name = name
        self.flavour = "debian"  # or "slackware": how a scenario lays the VM out (scenarios.py)
        self.net = net or DEFAULT
        self.address = f"{self.net.network}.{index + 10}"
        self.netns = f"{self.net.prefix}-{index}"
        self.veth = f"{self.net.prefix}{index}"
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self._authorized_key = authorized_key
        self._host_key_file = host_key_file
        self._machine_id = machine_id
        self._process: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None

    def boot(self, timeout: float = 30) -> None:
        """Start the VM (its namespaces, its network, sshd) and wait until it has booted, at
        most ``timeout`` seconds (``SimulatorError`` then, with what it printed)."""
        _run("ip", "netns", "add", self.netns)
        _run(
            "ip",
            "link",
            "add",
            self.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.netns,
        )
        _run("ip", "link", "set", self.veth, "master", self.net.bridge, "up")
        inside = ("ip", "netns", "exec", self.netns)
        _run(*inside, "ip", "addr", "add", f"{self.address}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "VM_DIR": str(self.dir),
            "VM_ADDRESS": self.address,
            "VM_PASSWORD": self.password,
            "AUTHORIZED_KEY": self._authorized_key,
            "HOST_KEY_FILE": str(self._host_key_file or ""),
            "MACHINE_ID": self._machine_id or "",
            "LANG": "C.UTF-8",
        }
        log = open(self.dir / "init.log", "wb")  # noqa: SIM115 - the child writes it
        self._process = subprocess.Popen(
            [
                *inside,
                "unshare",
                "--mount",
                "--pid",
                "--uts",
                "--ipc",
                "--fork",
                "--mount-proc",
                "--propagation",
                "private",
                "bash",
                str(HERE / "init.sh"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while b"booted" not in (self.dir / "init.log").read_bytes():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise SimulatorError(
                    f"VM {self.name} did not boot: "
                    f"{(self.dir / 'init.log').read_text(errors='replace')}"
                )
            time.sleep(0.05)
        children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
        self.init_pid = int(children.read_text().split()[0])

    def sh(
        self, script: str, check: bool = True, timeout: float = 60, stdin: bytes = b""
    ) -> subprocess.CompletedProcess[str]:
        """Run a bash script inside the VM (all its namespaces) and return the result."""
        if self.init_pid is None:
            raise SimulatorError(f"VM {self.name} is not running")
        raw = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", "bash", "-euo", "pipefail", "-c", script],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"},
        )
        result = subprocess.CompletedProcess(
            raw.args,
            raw.returncode,
            raw.stdout.decode(errors="replace"),
            raw.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise SimulatorError(
                f"in VM {self.name}: script failed ({result.returncode}):\n"
                f"{script}\n--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
            )
        return result

    def close(self) -> None:
        """Stop the VM and remove everything it had (its namespaces, its link, its files)."""
        if self._process is not None:
            if self.init_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.init_pid, signal.SIGKILL)  # init ignores SIGTERM
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        self.init_pid = None
        _kill_netns(self.netns)
        _run("ip", "link", "del", self.veth, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
