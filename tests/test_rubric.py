"""rubric.toml: the Lab 6 rubric loads, and every mistake in a rubric is named precisely."""

from pathlib import Path

import pytest

from grader.base.errors import InputError
from grader.engine.catalog import built_in_rubric
from grader.engine.pack import load_pack
from grader.engine.rubric import load_rubric

PROJECT = Path(__file__).resolve().parent.parent
RUBRIC = PROJECT / "rubric.toml"


def variant(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the Lab 6 rubric with one edit, next to a link to the real checks."""
    text = RUBRIC.read_text()
    assert old in text, old
    path = tmp_path / "rubric.toml"
    path.write_text(text.replace(old, new, 1))
    (tmp_path / "checks").symlink_to(PROJECT / "checks")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def load_error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_pack(load_rubric(path))
    return str(info.value)


def test_lab6_rubric_loads_with_twenty_checks_and_twenty_points():
    rubric = load_rubric(built_in_rubric())
    assert rubric.path == RUBRIC
    assert len(rubric.items) == 20 and rubric.max_score == 20
    pack = load_pack(rubric)
    assert set(pack.checks) == {i.id for i in rubric.items}
    # what a student reads of each item is its check's docstring (first line)
    assert pack.rubric.item("smtp_daemon").title == "sendmail runs as its own daemon"
    assert rubric.secret_vars() == {"bob_password"}
    order = [i.id for i in rubric.items]
    assert order.index("pop3_greets") < order.index("pop3_login")
    assert rubric.sections[0] == "Exercise 0: the SMTP service"


def test_malformed_toml_names_file_and_line(tmp_path):
    path = variant(tmp_path, 'id = "smtp_daemon"', 'id = "smtp_daemon')
    message = load_error(path)
    line = line_of(path, 'id = "smtp_daemon')
    assert str(path) in message and f"line {line}" in message


def test_unknown_check_id_names_line_and_closest(tmp_path):
    path = variant(tmp_path, 'id = "smtp_listening"', 'id = "smtp_listenning"')
    message = load_error(path)
    assert message.startswith(f"{path}:{line_of(path, 'smtp_listenning')}: ")
    assert "'smtp_listenning'" in message and "did you mean 'smtp_listening'?" in message


def test_negative_points_names_key_and_line(tmp_path):
    path = variant(tmp_path, 'points = 0.5\nhint = "Check with', 'points = -1\nhint = "Check with')
    message = load_error(path)
    assert message.startswith(f"{path}:{line_of(path, 'points = -1')}: ")
    assert "sections[0] (smtp).items[1] (smtp_listening).points" in message
    assert "greater than or equal to 0" in message


def test_missing_points(tmp_path):
    path = variant(
        tmp_path,
        'id = "vsftpd_anonymous_disabled"\npoints = 1\n',
        'id = "vsftpd_anonymous_disabled"\n',
    )
    message = load_error(path)
    assert "(vsftpd_anonymous_disabled).points: this key is required" in message


def test_misspelt_key_gets_closest_name(tmp_path):
    path = variant(tmp_path, 'depends = ["pop3_greets"]', 'depend = ["pop3_greets"]')
    message = load_error(path)
    assert message.startswith(f"{path}:{line_of(path, 'depend = ')}: ")
    assert "(pop3_login).depend: unknown key (did you mean 'depends'?)" in message


def test_unknown_dependency(tmp_path):
    path = variant(tmp_path, 'depends = ["pop3_greets"]', 'depends = ["pop3_greet"]')
    message = load_error(path)
    line = line_of(path, 'depends = ["pop3_greet"]')
    assert message.startswith(f"{path}:{line}: ")
    assert "did you mean 'pop3_greets'?" in message


def test_dependency_cycle(tmp_path):
    path = variant(
        tmp_path,
        'id = "pop3_greets"\n',
        'id = "pop3_greets"\ndepends = ["pop3_login"]\n',
    )
    message = load_error(path)
    assert "dependency cycle" in message
    assert "pop3_greets" in message and "pop3_login" in message


def test_duplicate_item_id(tmp_path):
    path = variant(tmp_path, 'id = "telnet_enabled"', 'id = "time_disabled"')
    message = load_error(path)
    assert "'time_disabled' is used twice" in message


def test_missing_checks_folder(tmp_path):
    path = tmp_path / "rubric.toml"
    path.write_text(RUBRIC.read_text())  # no checks/ next to it
    message = load_error(path)
    assert "checks folder" in message and "does not exist" in message


def test_unreadable_rubric(tmp_path):
    message = load_error(tmp_path / "nope.toml")
    assert "nope.toml: cannot read the rubric" in message


def test_misspelt_required_key_is_named_not_just_missing(tmp_path):
    path = variant(
        tmp_path, 'points = 1\nhint = "SMTP is provided', 'Points = 1\nhint = "SMTP is provided'
    )
    message = load_error(path)
    assert message.startswith(f"{path}:{line_of(path, 'Points = 1')}: ")
    assert "(smtp_daemon).Points: unknown key (did you mean 'points'?)" in message


def test_misspelt_variable_setting(tmp_path):
    path = variant(tmp_path, "secret = true", "secert = true")
    message = load_error(path)
    assert f"{path}:{line_of(path, 'secert')}: vars.bob_password.secert: unknown key" in message
    assert "did you mean 'secret'?" in message


def test_a_secret_variable_cannot_have_a_default(tmp_path):
    """A default is written into every student's self-check and rubric copy: a course secret
    there would let a student compute every classmate's variant."""
    path = variant(tmp_path, 'default = ""\nsecret = true', 'default = "hunter2"\nsecret = true')
    message = load_error(path)
    assert f"{path}:{line_of(path, 'secret = true')}: vars.bob_password.secret: " in message
    assert "a secret variable cannot have a default" in message and "--var-env" in message


def test_student_copy_leaves_out_hidden_items_and_keeps_the_rest(grade, tmp_path):
    # make a visible item depend on the hidden one, to see that dependency dropped
    path = variant(
        tmp_path,
        'id = "mailbox_permissions"',
        'id = "mailbox_permissions"\ndepends = ["queue_empty"]',
    )
    text = RUBRIC.read_text().replace(
        'id = "pop3_in_inetd"\n', 'id = "pop3_in_inetd"\ndepends = ["mailbox_permissions"]\n'
    )
    path.write_text(text)
    out = tmp_path / "student.toml"
    run = grade("rubric", str(path), "--student-copy", "--output", str(out))
    assert run.exit == 0
    copy = out.read_text()
    # the hidden item is gone (its id, points, hint, dependencies); only how many are hidden
    assert "mailbox_permissions" not in copy and "chmod o-rw" not in copy
    assert copy.startswith("# Lab 6: email, processes and networking.")  # comments kept
    assert "hidden_items = 1" in copy
    student = load_rubric(out)
    assert len(student.items) == 19 and student.max_score == 19 and student.hidden_items == 1
    assert student.item("pop3_in_inetd").depends == ()
    printed = grade("rubric", str(path), "--student-copy").stdout  # to stdout by default

    def but_checks(text: str) -> list[str]:  # where the checks are is said from where it goes
        return [line for line in text.splitlines() if not line.startswith("checks = ")]

    assert but_checks(printed) == but_checks(copy)


def test_a_check_with_no_rubric_item_is_refused_naming_both_files(tmp_path):
    import shutil

    shutil.copytree(
        PROJECT / "checks", tmp_path / "checks", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "checks" / "test_extra.py").write_text(
        'def test_forgotten(host):\n    """A check nobody marks."""\n'
    )
    path = tmp_path / "rubric.toml"
    path.write_text(RUBRIC.read_text())
    message = load_error(path)
    assert message.startswith(f"{tmp_path / 'checks' / 'test_extra.py'}:1: check 'forgotten'")
    assert f"has no item in {path}" in message and "so it would never be run" in message


def test_an_item_title_is_accepted_and_said_to_be_unused(tmp_path):
    path = variant(tmp_path, 'id = "queue_empty"\n', 'id = "queue_empty"\ntitle = "Queue"\n')
    rubric = load_pack(load_rubric(path)).rubric
    assert rubric.item("queue_empty").title == "No mail waits in the queue"  # the docstring's
    assert any("queue_empty: the title is not used" in note for note in rubric.notes)


def test_an_editable_copy_of_the_lab_grades_where_it_is_put(grade, tmp_path):
    run = grade("rubric", "--copy", str(tmp_path / "mylab"))
    assert run.exit == 0 and "grade --rubric" in run.stdout
    copy = tmp_path / "mylab" / "rubric.toml"
    copy.write_text(copy.read_text().replace("points = 1.5", "points = 3", 1))  # edited
    shown = grade("rubric", str(copy))
    assert shown.exit == 0 and "Total 21.5 points" in shown.stdout
    assert f"checks in {tmp_path / 'mylab' / 'checks'}" in shown.stdout.replace("\n", "")
    again = grade("rubric", "--copy", str(tmp_path / "mylab"))
    assert again.exit == 2 and "already holds a rubric.toml" in again.stderr


def test_a_student_copy_is_usable_where_it_is_put(grade, tmp_path):
    out = tmp_path / "elsewhere" / "student.toml"
    out.parent.mkdir()
    assert grade("rubric", "--student-copy", "--output", str(out)).exit == 0
    assert grade("rubric", str(out)).exit == 0
    printed = tmp_path / "printed.toml"
    printed.write_text(grade("rubric", "--student-copy").stdout)
    assert grade("rubric", str(printed)).exit == 0
