"""A set of simulated VMs booted together, each built to a scenario, torn down as one."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from grader.sim.scenario import Scenario
from grader.sim.vm import VM, Network, SimNet

PASSWORD = "Sim-lab-pw6"  # root's on every simulated VM, and its lab user's (the scenario's)
PROJECT = Path(__file__).resolve().parents[2]
GRADER_HOME = "/var/lib/lab-grader"  # where install_grader puts it inside a VM


class Fleet:
    """``with Fleet(SCENARIOS) as fleet: vms = fleet.boot(["complete", "untouched"])``: a pack's
    scenarios (by name in ``boot``), and the variables its VMs are graded with (``{password}``
    in a value: the VMs' password)."""

    def __init__(
        self,
        scenarios: Mapping[str, Scenario] | None = None,
        grading_vars: Mapping[str, str] | None = None,
        workers: int = 8,
        net: SimNet | None = None,
    ) -> None:
        self.scenarios = dict(scenarios or {})
        self.net = net  # the simulator network (None: GRADER_SIM_NET's)
        self.workers = workers
        self.workdir = Path(tempfile.mkdtemp(prefix="labsim-"))
        self.identity = self.workdir / "id_grader"
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "lab-grader tests",
                "-f",
                str(self.identity),
            ],
            check=True,
        )
        self.password = PASSWORD
        self.grading_vars = {
            k: v.format(password=PASSWORD) for k, v in (grading_vars or {}).items()
        }
        self.network: Network | None = None
        self.vms: list[VM] = []
        self._wheels: bytes | None = None  # a tar of the grader's wheels, made once
        self._installed: bytes | None = None  # the first VM's venv, as base64 of a .tar.gz

    def __enter__(self) -> Fleet:
        self.network = Network(self.net)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def new_host_key(self, name: str) -> Path:
        """A host key file that several VMs can be given (a cloned VM)."""
        path = self.workdir / f"host_key_{name}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        return path

    def vm(
        self,
        name: str,
        host_key_file: Path | None = None,
        authorized_key: str | None = None,
        machine_id: str | None = None,
    ) -> VM:
        """Create (not boot) one more VM; by default root accepts the fleet's key."""
        vm = VM(
            name,
            len(self.vms),
            self.workdir,
            authorized_key=authorized_key or self.identity.with_suffix(".pub").read_text().strip(),
            password=self.password,
            host_key_file=host_key_file,
            machine_id=machine_id,
            net=self.net,
        )
        self.vms.append(vm)
        return vm

    def boot(
        self,
        scenarios: Iterable[str | tuple[str, Scenario]],
        host_key_file: Path | None = None,
        authorized_key: str | None = None,
        booted: Callable[[VM, float], None] | None = None,
        machine_id: str | None = None,
    ) -> dict[str, VM]:
        """Boot one VM per scenario (a name of the fleet's, or (vm name, Scenario)), in parallel.
        ``host_key_file`` gives them all one host key (cloned VMs); ``authorized_key`` lets
        root log in with another key than the fleet's; ``machine_id`` gives them all one (VMs
        copied from one another); ``booted`` hears of each VM built, with the seconds it took."""
        plan = [(s, self.scenarios[s]) if isinstance(s, str) else s for s in scenarios]
        vms = [
            (self.vm(name, host_key_file, authorized_key, machine_id), scenario)
            for name, scenario in plan
        ]

        def build(pair: tuple[VM, Scenario]) -> None:
            vm, scenario = pair
            started = time.monotonic()
            vm.boot()
            scenario.build(vm)
            if booted is not None:
                booted(vm, time.monotonic() - started)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(build, vms))
        return {vm.name: vm for vm, _ in vms}

    def grade_args(self, vm: VM, *extra: str, variables: bool = True) -> list[str]:
        """`grade` arguments that grade ``vm`` with the fleet's key, for a JSON report (and, by
        default, the pack's grading variables)."""
        given = [a for k, v in self.grading_vars.items() for a in ("--var", f"{k}={v}")]
        identity = ["--identity", str(self.identity)]
        return [
            "--host",
            vm.address,
            *identity,
            "--format",
            "json",
            *(given if variables else []),
            *extra,
        ]

    def install_grader(self, vm: VM) -> str:
        """Install the grader inside a VM as a student would, from wheels (the VM has no
        network): this checkout's wheel and its dependencies, into a venv made with the VM's
        own python3. Returns the path of its `grade` command.

        The first VM installs with pip; the others get a copy of the venv that made (the same
        files pip would write: a Python install takes minutes on a loaded machine)."""
        if self._installed is not None:
            vm.sh(f"mkdir -p {GRADER_HOME} && base64 -d | tar -xz -C {GRADER_HOME}",
                  stdin=self._installed)  # fmt: skip
            return f"{GRADER_HOME}/venv/bin/grade"
        if self._wheels is None:
            wheels = self.workdir / "wheels"
            subprocess.run(
                [sys.executable, "-m", "pip", "-q", "wheel", "-w", str(wheels), str(PROJECT)],
                check=True,
                capture_output=True,
            )
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                tar.add(wheels, arcname=".")
            self._wheels = buffer.getvalue()
        vm.sh(
            f"mkdir -p {GRADER_HOME}/wheels && tar -x -C {GRADER_HOME}/wheels", stdin=self._wheels
        )
        vm.sh(
            f"python3 -m venv {GRADER_HOME}/venv && {GRADER_HOME}/venv/bin/pip install -q "
            f"--no-index --find-links {GRADER_HOME}/wheels lab-grader",
            timeout=300,
        )
        packed = vm.sh(f"tar -cz -C {GRADER_HOME} venv | base64 -w0", timeout=300).stdout
        self._installed = packed.encode()
        return f"{GRADER_HOME}/venv/bin/grade"

    def keep_running(self, state: Path) -> None:
        """Leave the VMs running after this process ends (``grade sim up``):
        what ``down`` needs to take them away is written to ``state``."""
        state.parent.mkdir(parents=True, exist_ok=True)
        vms = [{"name": vm.name, "address": vm.address} for vm in self.vms]
        state.write_text(json.dumps({"workdir": str(self.workdir), "vms": vms}, indent=2))
        self.vms.clear()
        if self.network is not None:
            self.network.release()  # the bridge stays; the next simulator run takes it down
            self.network = None

    @staticmethod
    def take_down(state: Path, net: SimNet | None = None) -> int:
        """Remove VMs left running by ``keep_running`` (and any other leftovers) on ``net``,
        once no simulator run holds the network (never from under one that is running)."""
        with Network.held(net):
            Network.remove_leftovers(net)
        count = 0
        if state.exists():
            found = json.loads(state.read_text())
            count = len(found.get("vms", []))
            shutil.rmtree(found.get("workdir", ""), ignore_errors=True)
            state.unlink()
        return count

    def close(self) -> None:
        """Stop every VM of the fleet and take its network down."""
        try:
            for vm in self.vms:
                vm.close()
        finally:
            self.vms.clear()
            if self.network is not None:
                self.network.close()
                self.network = None
            shutil.rmtree(self.workdir, ignore_errors=True)
