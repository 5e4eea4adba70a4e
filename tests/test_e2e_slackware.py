"""Lab 6 on the handout's own system: the scenarios on Slackware-flavoured VMs (Slackware's
inetd.conf, vsftpd.conf and rc.d scripts, a real /var/spool/mail, sendmail started as
rc.sendmail does) give the verdicts they give on Debian, live and regraded, and the feedback
speaks Slackware."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from grader.cli import main
from scenarios import SLACKWARE_SCENARIOS
from tests.test_feedback import DEBIAN_ONLY

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def graded(fleet, tmp_path_factory, monkeypatch_module) -> tuple[Path, Path, dict]:
    vms = fleet.boot(list(SLACKWARE_SCENARIOS.items()))
    folder = tmp_path_factory.mktemp("slackware")
    roster = folder / "class.csv"
    rows = [f"{name},{vm.address},{fleet.identity},{fleet.password}" for name, vm in vms.items()]
    roster.write_text("student,host,identity,bob_password\n" + "\n".join(rows) + "\n")
    live = folder / "live"
    code = main(["--roster", str(roster), "--out", str(live), "--color", "never"])
    assert code == 0, code
    again = folder / "regraded"
    code = main(["regrade", str(live), "--out", str(again), "--roster", str(roster)])
    assert code == 0, code
    return live, again, vms


@pytest.fixture(scope="module")
def monkeypatch_module(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("home")
        patch.setenv("GRADER_KNOWN_HOSTS", str(home / "known_hosts"))
        patch.setenv("GRADER_CACHE_DIR", str(home / "cache"))
        yield patch


def reports(folder: Path) -> dict[str, dict]:
    found = {}
    for name in SLACKWARE_SCENARIOS:
        found[name] = json.loads((folder / f"{name}.json").read_text())
    return found


@pytest.mark.parametrize("which", ["live", "regraded"])
def test_slackware_vms_get_the_debian_verdicts_and_slackware_hints(graded, which):
    live, again, _ = graded
    for name, report in reports(live if which == "live" else again).items():
        assert report["status"] == "graded", (name, report["error"])
        statuses = {c["id"]: c["status"] for c in report["checks"]}
        assert statuses == SLACKWARE_SCENARIOS[name].expected, name
        assert report["system"] == "Slackware 15.0 x86_64" and report["system_ids"] == ["slackware"]
        for check in report["checks"]:
            if check["lost"]:
                assert not DEBIAN_ONLY.search(check["hint"]), (name, check["id"], check["hint"])
    untouched = {c["id"]: c for c in reports(live)["slack_untouched"]["checks"]}
    assert "/etc/rc.d/rc.sendmail start" in untouched["smtp_daemon"]["hint"]
    assert untouched["smtp_daemon"]["cause"] == "sendmail_down"
    assert "/etc/rc.d/rc.inetd restart" in untouched["time_disabled"]["hint"]
    restart = {c["id"]: c for c in reports(live)["slack_inetd_not_restarted"]["checks"]}
    assert restart["pop3_listening"]["cause"] == "inetd_not_restarted"
    assert restart["pop3_listening"]["hint"].endswith("/etc/rc.d/rc.inetd restart")


def test_the_slackware_vm_is_laid_out_as_slackware(graded):
    _, _, vms = graded
    vm = vms["slack_complete"]
    layout = vm.sh(
        "test -d /var/spool/mail && ! test -L /var/spool/mail && test -s /var/spool/mail/bob && "
        "test -x /etc/rc.d/rc.sendmail && cat /etc/slackware-version && "
        "grep -c '^#' /etc/inetd.conf && readlink /var/mail"
    ).stdout.split()
    assert layout[:2] == ["Slackware", "15.0"] and int(layout[2]) > 40
    assert layout[3] == "spool/mail"
    # the machine's own os-release is untouched: the VM's link was replaced, not written through
    assert "slackware" not in Path("/usr/lib/os-release").read_text().lower()
    text = (Path(__file__).parents[1] / "scenarios/files/slackware/inetd.conf").read_text()
    assert re.search(r"^#pop3\t", text, re.M) and "<off>" not in text
