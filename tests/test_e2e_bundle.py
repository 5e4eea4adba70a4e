"""The self-check a student runs on the lab VM itself: one file, the VM's own Python 3.9, no
network, no install. Run inside simulated VMs, as root and as a user, it agrees with
`grade --host` on every check."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import pytest

from grader.errors import ExitStatus
from tests.labsim.scenarios import SCENARIOS

pytestmark = pytest.mark.vm

#: The lab VMs' Python: Slackware 15.0 and Debian 11 ship 3.9
WANTED = "3.9"


def python39() -> str:
    """A Python 3.9 interpreter on this machine (pyenv's, or one on PATH). On CI there must be
    one (LABSIM_REQUIRED): the tests fail rather than skip."""
    pattern = os.path.expanduser(f"~/.pyenv/versions/{WANTED}.*/bin/python{WANTED}")
    found = sorted(glob.glob(pattern))
    found += [p for p in [shutil.which(f"python{WANTED}")] if p]
    if not found:
        message = f"no Python {WANTED} here (pyenv install {WANTED}, or Debian 11's python3)"
        if os.environ.get("LABSIM_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> bytes:
    from grader.cli import main

    out = tmp_path_factory.mktemp("bundle") / "lab6-selfcheck.pyz"
    assert main(["bundle", "--output", str(out)]) == ExitStatus.OK
    assert out.stat().st_size < 5 * 1024 * 1024  # a few MB
    return out.read_bytes()


def statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


@pytest.mark.parametrize("name", ["complete", "inetd_not_restarted", "untouched"])
def test_the_bundle_on_python_39_agrees_with_grading_from_outside(
    name, bundle, grade, fleet, scenario_vms
):
    vm = scenario_vms[name]
    python = python39()
    vm.sh("cat > /root/selfcheck.pyz", stdin=bundle)
    run = vm.sh(
        f"env -i PATH=/usr/bin:/bin {python} /root/selfcheck.pyz --format json "
        f"--var bob_password={fleet.password}",
        check=False,
        timeout=180,
    )
    assert run.returncode in (0, 1), run.stderr
    local = json.loads(run.stdout)
    assert local["view"] == "student" and local["hidden_checks"] == 1
    remote = grade(*fleet.grade_args(vm)).report
    visible = {c: s for c, s in statuses(remote).items() if c != "mailbox_permissions"}
    assert (
        statuses(local)
        == visible
        == {c: s for c, s in SCENARIOS[name].expected.items() if c != "mailbox_permissions"}
    )


def test_the_bundle_as_a_user_names_what_needs_root(bundle, fleet, scenario_vms):
    vm = scenario_vms["complete"]
    python = python39()
    vm.sh("cat > /home/bob/selfcheck.pyz && chown bob /home/bob/selfcheck.pyz", stdin=bundle)
    vm.sh("chmod 711 /root")  # bob may run the pyenv Python under /root (this VM's copy)
    run = vm.sh(
        f"su bob -c 'env -i PATH=/usr/bin:/bin HOME=/home/bob {python} "
        f"/home/bob/selfcheck.pyz --color never'",
        check=False,
        timeout=180,
    )
    assert run.returncode == ExitStatus.OK, run.stdout + run.stderr  # nothing lost: not checked
    assert "root's mailbox" in run.stdout and "run the grader with sudo" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_the_bundle_runs_nothing_but_the_standard_library_and_itself(bundle, tmp_path):
    """What only the instructor's side uses is not in it, so it cannot be needed."""
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    for absent in ("pydantic", "paramiko", "matplotlib", "click", "_pytest", "cryptography"):
        assert not any(n.startswith(absent + "/") for n in names), absent
    assert "_lab/rubric.json" in names and "_lab/checks/test_smtp.py" in names
    assert not any(n.endswith(".so") for n in names)
    python = python39()
    (tmp_path / "x.pyz").write_bytes(bundle)
    version = subprocess.run(
        [python, str(tmp_path / "x.pyz"), "--version"], capture_output=True, text=True
    )  # --version only: nothing is graded outside a simulated VM
    assert version.returncode == 0 and version.stdout.startswith("grade, version"), version.stderr
