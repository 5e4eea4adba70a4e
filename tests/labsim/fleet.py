"""A set of simulated VMs booted together, each built to a scenario, torn down as one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

from .scenarios import SCENARIOS, Scenario
from .vm import VM, Network

PASSWORD = "Lab6-bob-pw"  # root's and bob's password on every simulated VM


class Fleet:
    """``with Fleet() as fleet: vms = fleet.boot(["complete", "untouched"])``"""

    def __init__(self, workers: int = 8) -> None:
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
        self.network: Network | None = None
        self.vms: list[VM] = []

    def __enter__(self) -> Fleet:
        self.network = Network()
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
        self, name: str, host_key_file: Path | None = None, authorized_key: str | None = None
    ) -> VM:
        """Create (not boot) one more VM; by default root accepts the fleet's key."""
        vm = VM(
            name,
            len(self.vms),
            self.workdir,
            authorized_key=authorized_key or self.identity.with_suffix(".pub").read_text().strip(),
            password=self.password,
            host_key_file=host_key_file,
        )
        self.vms.append(vm)
        return vm

    def boot(
        self,
        scenarios: Iterable[str | tuple[str, Scenario]],
        host_key_file: Path | None = None,
        authorized_key: str | None = None,
    ) -> dict[str, VM]:
        """Boot one VM per scenario (a name of SCENARIOS, or (vm name, Scenario)), in parallel.
        ``host_key_file`` gives them all one host key (cloned VMs); ``authorized_key`` lets
        root log in with another key than the fleet's."""
        plan = [(s, SCENARIOS[s]) if isinstance(s, str) else s for s in scenarios]
        vms = [(self.vm(name, host_key_file, authorized_key), scenario) for name, scenario in plan]

        def build(pair: tuple[VM, Scenario]) -> None:
            vm, scenario = pair
            vm.boot()
            scenario.build(vm)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(build, vms))
        return {vm.name: vm for vm, _ in vms}

    def close(self) -> None:
        try:
            for vm in self.vms:
                vm.close()
        finally:
            self.vms.clear()
            if self.network is not None:
                self.network.close()
                self.network = None
            shutil.rmtree(self.workdir, ignore_errors=True)
