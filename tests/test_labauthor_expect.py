"""The lab author's inputs, named when wrong: expected.toml (its line, key and closest name),
`grade new-lab`'s folder and title, the simulator's network and prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.base.errors import ExitStatus, InputError
from grader.sim.expect import ExpectedVM, differences, load_expected
from grader.sim.vm import SimNet

CHECKS = ("motd_names_owner", "web_server_running", "page_names_owner")
SCENARIOS = ("complete", "handed_out")


def expected(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "expected.toml"
    path.write_text(text)
    return path


def error_of(path: Path, scenarios=SCENARIOS) -> str:
    with pytest.raises(InputError) as info:
        load_expected(path, CHECKS, scenarios)
    return str(info.value)


def test_an_expected_verdicts_file_loads(tmp_path):
    path = expected(tmp_path, (
        '[[vm]]\nname = "ref"\nscenario = "complete"\nexpect = { "*" = "pass" }\n'
        '[[vm]]\nname = "mine"\nhost = "10.0.0.5"\n'
        'expect = { "*" = "fail", page_names_owner = "skipped" }\n'
    ))  # fmt: skip
    found = load_expected(path, CHECKS, SCENARIOS)
    ref, mine = found.vms
    assert (ref.scenario, mine.host, found.scenarios) == ("complete", "10.0.0.5", ["complete"])
    assert mine.expected("page_names_owner") == "skipped" and mine.expected("x") == "fail"
    assert ref.line == 1 and mine.line == 5


def test_a_misspelt_check_is_named_with_its_line_and_the_closest(tmp_path):
    path = expected(tmp_path, '[[vm]]\nname = "ref"\nscenario = "complete"\n'
                    'expect = { "*" = "pass", motd_name_owner = "fail" }\n')  # fmt: skip
    message = error_of(path)
    assert message.startswith(f"{path}:4: vm[0] (ref).expect: 'motd_name_owner' is no check")
    assert "did you mean 'motd_names_owner'" in message


def test_every_mistake_of_the_file_is_named(tmp_path):
    first = '[[vm]]\nname = "a"\nscenario = "complet"\nexpect = { "*" = "pass" }\n'
    path = expected(
        tmp_path,
        first + '[[vm]]\nname = "a"\nhost = "h"\nscenario = "complete"\n'
        'expect = {}\n[[vm]]\nname = "c"\nhost = "h"\nexpect = { "*" = "passed" }\n',
    )
    message = error_of(path)
    assert "a VM is a host or a scenario: give one of them" in message
    assert "Input should be 'pass', 'fail', 'error' or 'skipped'" in message
    path = expected(tmp_path, first + '[[vm]]\nname = "a"\nhost = "h"\nexpect = {}\n')
    lines = error_of(path).splitlines()
    assert any(":3: " in x and "did you mean 'complete'" in x for x in lines)
    assert any("another VM has this name" in x for x in lines)
    assert "the pack has no scenarios" in error_of(path, scenarios=None)


def test_a_difference_names_the_vm_the_check_and_the_reason():
    vm = ExpectedVM("ref", None, "complete", {"*": "pass", "page_names_owner": "skipped"})
    report = {"status": "graded", "checks": [
        {"id": "motd_names_owner", "status": "fail", "message": "/etc/motd does not name x"},
        {"id": "page_names_owner", "status": "skipped", "message": "web_server_running failed"},
    ]}  # fmt: skip
    (found,) = differences(vm, report)
    assert (found.vm, found.check, found.expected, found.got) == ("ref", "motd_names_owner",
                                                                  "pass", "fail")  # fmt: skip
    assert found.reason == "/etc/motd does not name x"
    (gone,) = differences(vm, None, "no answer to the TCP connection within 5 s")
    assert gone.got == "not graded" and "no answer" in gone.reason


def test_a_new_lab_goes_in_a_new_folder_with_a_title_of_one_line(grade, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    refused = grade("new-lab", str(tmp_path / "full"))
    assert refused.exit == ExitStatus.BAD_INPUT and "not an empty folder" in refused.stderr
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine"
    bad = grade("new-lab", str(tmp_path / "new"), "--title", "two\nlines")
    assert bad.exit == ExitStatus.BAD_INPUT and "one line" in bad.stderr
    made = grade("new-lab", str(tmp_path / "web-lab"))
    assert made.exit == ExitStatus.OK and "'Web lab'" in made.stdout
    shown = grade("rubric", str(tmp_path / "web-lab" / "rubric.toml"))
    assert shown.exit == ExitStatus.OK and "Web lab" in shown.stdout


def test_the_simulator_network_is_a_24_of_the_benchmarking_range():
    assert SimNet.of("198.18.5.0/24") == SimNet("198.18.5", "ls5n")
    assert SimNet.of("198.19.44.0/24").prefix == "s2cb"
    assert SimNet.of("198.18.7.0/24", "mine").bridge == "mine-br"
    for wrong in ("10.0.0.0/24", "198.18.0.0/16", "198.20.1.0/24", "nonsense"):
        with pytest.raises(ValueError):
            SimNet.of(wrong)
    for prefix in ("ls", "lsim-x", "LSIM", "1abc"):
        with pytest.raises(ValueError, match="four characters"):
            SimNet.of(None, prefix)


def test_a_wrong_simulator_network_is_named_before_anything_boots(grade):
    run = grade("sim", "down", "--sim-network", "10.1.2.0/24")
    assert run.exit == ExitStatus.BAD_INPUT and "198.18.0.0/15" in run.stderr
