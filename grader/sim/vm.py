"""Simulated student VMs: Linux namespaces on an isolated bridge, running the real daemons.

Each VM has its own network namespace, joined by a veth pair to the bridge ``lsim-br`` that has
no uplink and no forwarding (addresses in 198.18.0.0/24, the grading side is 198.18.0.1), and its
own mount, pid, uts and ipc namespaces with copy-on-write /etc, /var, /home and /root (see
init.sh). Everything is removed on ``close()``; resources left by a killed run are removed by
the next one, which takes the same lock first.

One simulator runs on a network at a time. ``GRADER_SIM_NET=N`` (1 to 9) gives a run a network
of its own beside the default one (bridge ``ls{N}n-br``, 198.18.N.0/24, its own lock), so a
simulator can run while another holds the default network (a test of the installed grader's
``grade sim`` beside the test session's VMs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
_NET = os.environ.get("GRADER_SIM_NET", "0") or "0"
if _NET not in [str(n) for n in range(10)]:
    raise SystemExit(f"GRADER_SIM_NET={_NET}: a simulator network is a number from 0 to 9")
NET = int(_NET)
PREFIX = "lsim" if NET == 0 else f"ls{NET}n"  # no network's names start with another's
BRIDGE = f"{PREFIX}-br"
NETWORK = f"198.18.{NET}"  # a /24 inside 198.18.0.0/15, the benchmarking range, never routed
GATEWAY = f"{NETWORK}.1"
LOCK = Path(f"/run/lock/labsim{NET or ''}.lock")
#: What every simulated VM needs; a pack's scenarios name the daemons of their own lab.
REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "sshd", "ssh-keygen", "nmap")


class SimulatorError(RuntimeError):
    pass


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
    """The isolated bridge, held under a lock for the life of one simulator run."""

    def __init__(self) -> None:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        self._lock = open(LOCK, "w")  # noqa: SIM115 - held until close()
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.remove_leftovers()
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
        _run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        _run("ip", "link", "set", BRIDGE, "up")

    @staticmethod
    @contextlib.contextmanager
    def held() -> Iterator[None]:
        """The network's lock, for a moment: nothing else runs on it meanwhile."""
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    @staticmethod
    def remove_leftovers() -> None:
        for line in _run("ip", "netns", "list").stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith(f"{PREFIX}-"):
                _kill_netns(name)
        for line in _run("ip", "-o", "link", "show").stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith(PREFIX):
                _run("ip", "link", "del", name, check=False)

    def close(self) -> None:
        try:
            self.remove_leftovers()
        finally:
            self.release()

    def release(self) -> None:
        """Let another simulator run take the bridge (and, with it, whatever is left on it)."""
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


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
    ) -> None:
        if not 2 <= index + 10 <= 250:
            raise SimulatorError(f"VM index {index} out of range")
        self.name = name
        self.flavour = "debian"  # or "slackware": how a scenario lays the VM out (scenarios.py)
        self.address = f"{NETWORK}.{index + 10}"
        self.netns = f"{PREFIX}-{index}"
        self.veth = f"{PREFIX}{index}"
        self.password = password
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self._authorized_key = authorized_key
        self._host_key_file = host_key_file
        self._machine_id = machine_id
        self._process: subprocess.Popen[bytes] | None = None
        self.init_pid: int | None = None

    def boot(self, timeout: float = 30) -> None:
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
        _run("ip", "link", "set", self.veth, "master", BRIDGE, "up")
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
