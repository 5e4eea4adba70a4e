"""What a lab author is told of their rubric: every problem at once, a check without a
docstring (a student would read its id alone), and ``needs_root`` on an item."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.base.errors import InputError
from grader.engine.pack import load_pack
from grader.engine.rubric import load_rubric

RUBRIC = """title = "A lab"

[[sections]]
id = "one"
title = "One"

[[sections.items]]
id = "first"
points = 1
{first}

[[sections.items]]
id = "second"
points = 1
{second}
"""
CHECKS = '''
def test_first(host):
    """The first thing holds."""


def test_second(host):
{second_doc}    pass
'''


def pack(tmp_path: Path, first: str = "", second: str = "", documented: bool = True) -> Path:
    (tmp_path / "checks").mkdir(exist_ok=True)
    doc = '    """The second thing holds."""\n' if documented else ""
    (tmp_path / "checks" / "test_lab.py").write_text(CHECKS.format(second_doc=doc))
    path = tmp_path / "rubric.toml"
    path.write_text(RUBRIC.format(first=first, second=second))
    return path


def test_every_problem_of_a_rubric_is_shown_each_with_its_line(tmp_path):
    path = pack(tmp_path, first="pionts = 2", second='visibility = "secret"\nhnit = "x"')
    with pytest.raises(InputError) as info:
        load_rubric(path)
    message = str(info.value)
    assert "more problem" not in message
    text = path.read_text().splitlines()
    lines = message.splitlines()

    def line(needle: str) -> int:
        return next(n for n, t in enumerate(text, 1) if t.startswith(needle))

    assert lines[0].startswith(f"{path}:{line('pionts')}: ") and "did you mean 'points'" in lines[0]
    assert any(f":{line('hnit')}: " in x and "did you mean 'hint'" in x for x in lines)
    assert any(f":{line('visibility')}: " in x and "(second).visibility" in x for x in lines)
    assert len(lines) == 3, message


def test_a_check_without_a_docstring_is_warned_of(tmp_path, grade):
    path = pack(tmp_path, documented=False)
    rubric = load_pack(load_rubric(path)).rubric
    assert rubric.item("second").title == "second"
    warned = [w for w in rubric.warnings if "'second'" in w]
    assert warned and "no docstring" in warned[0] and "test_lab.py" in warned[0]
    shown = grade("rubric", str(path))
    assert shown.exit == 0 and "Warning:" in shown.stdout and "no docstring" in shown.stdout


def test_an_item_says_it_needs_root(tmp_path):
    path = pack(tmp_path, second="needs_root = true")
    rubric = load_rubric(path)
    assert rubric.item("second").needs_root and not rubric.item("first").needs_root
    wrong = pack(tmp_path, second='needs_root = "yes"')
    with pytest.raises(InputError, match=r"\(second\)\.needs_root"):
        load_rubric(wrong)


def run_as(uid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The pack's checks run on this machine, where ``id -u`` says ``uid``."""
    from grader.engine.checkrun import run_checks
    from grader.engine.lab import Lab, Paths
    from tests.test_vm_numbers import fake_tools, host

    fake_tools(tmp_path, monkeypatch, id=f"{uid}\n")
    path = pack(tmp_path / "lab", second="needs_root = true")
    loaded = load_pack(load_rubric(path))
    fixtures = {"host": host(), "lab": Lab(Paths({}), {})}
    outcomes = run_checks(loaded.rubric, loaded.checks, fixtures)
    return {check: (o.status, o.error_kind, o.message) for check, o in outcomes.items()}


def test_a_check_that_needs_root_run_by_a_user_is_not_checked_whatever_it_answered(
    tmp_path, monkeypatch
):
    (tmp_path / "lab").mkdir()
    as_user = run_as("1000", tmp_path, monkeypatch)
    assert as_user["first"] == ("pass", None, "")  # it needs no root: decided as it is
    status, kind, message = as_user["second"]  # it passed, as a user: that decides nothing
    assert (status, kind) == ("error", "needs_root") and "run it with sudo" in message
    assert run_as("0", tmp_path, monkeypatch)["second"] == ("pass", None, "")
