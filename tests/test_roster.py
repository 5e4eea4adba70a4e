"""roster.csv: read leniently (BOM, blank lines), refused precisely (file and line)."""

import subprocess
from pathlib import Path

import pytest

from grader.base.errors import InputError
from grader.classrun.roster import load_roster
from grader.engine.catalog import built_in_rubric
from grader.engine.rubric import load_rubric
from grader.machine.ssh import Target

RUBRIC = load_rubric(built_in_rubric())


def roster(tmp_path: Path, text: str, bom: bool = False) -> Path:
    path = tmp_path / "roster.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as info:
        load_roster(roster(tmp_path, text), RUBRIC)
    return str(info.value)


def test_a_roster_with_bom_blank_lines_defaults_and_variables(tmp_path, monkeypatch):
    key = tmp_path / "keys" / "course"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.setenv("S3_PW", "hunter2")
    path = roster(tmp_path, (
        "student,host,port,user,identity,password_env,bob_password\n"
        "\n"
        "s1, vm1.example ,,,,,bobpw1\n"
        ",,,,,,\n"
        "s2,10.0.0.2,2222,admin,keys/course,,\n"
        "s3,vm3,,,,S3_PW,\n"
    ), bom=True)  # fmt: skip
    defaults = Target(host="", port=22, user="root", identity=None, password=None)
    s1, s2, s3 = load_roster(path, RUBRIC, defaults)
    assert (s1.student, s1.line, s1.target, dict(s1.vars)) == (
        "s1",
        3,
        Target("vm1.example", 22, "root", None, None),
        {"bob_password": "bobpw1"},
    )
    assert s2.target == Target("10.0.0.2", 2222, "admin", key, None) and dict(s2.vars) == {}
    assert s3.target.password == "hunter2" and s3.line == 6


def test_missing_column_is_named_with_the_closest(tmp_path):
    message = refused(tmp_path, "student,hots\ns1,vm1\n")
    assert message.startswith(f"{tmp_path}/roster.csv:1: the header has no 'host' column")
    assert "did you mean 'hots'?" in message


def test_duplicate_student_names_both_lines(tmp_path):
    message = refused(tmp_path, "student,host\ns1,vm1\n\ns2,vm2\ns1,vm3\n")
    assert message == f"{tmp_path}/roster.csv:5: student 's1' is already on line 2"


def test_bad_port(tmp_path):
    message = refused(tmp_path, "student,host,port\ns1,vm1,22\ns2,vm2,ssh\n")
    assert message.startswith(f"{tmp_path}/roster.csv:3: port 'ssh' is not a port number")
    assert "roster.csv:2" in refused(tmp_path, "student,host,port\ns1,vm1,70000\n")


def test_unknown_column_is_neither_connection_nor_variable(tmp_path):
    message = refused(tmp_path, "student,host,bob_pasword\ns1,vm1,x\n")
    assert "roster.csv:1: column 'bob_pasword' is neither" in message
    assert "did you mean 'bob_password'?" in message


def test_empty_cells_and_ragged_rows(tmp_path):
    assert "roster.csv:2: the host cell is empty" in refused(tmp_path, "student,host\ns1,\n")
    assert "roster.csv:2: 3 cells, but the header has 2" in refused(
        tmp_path, "student,host\ns1,vm1,extra\n"
    )


def test_password_env_must_be_set(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_PW", raising=False)
    message = refused(tmp_path, "student,host,password_env\ns1,vm1,NOPE_PW\n")
    assert "roster.csv:2: password_env names the environment variable 'NOPE_PW'" in message


def test_unusable_identity_names_the_line(tmp_path):
    message = refused(tmp_path, "student,host,identity\ns1,vm1,missing_key\n")
    assert message.startswith(f"{tmp_path}/roster.csv:2: identity: ")
    assert "does not exist" in message


def test_ids_that_would_share_a_report_file(tmp_path):
    message = refused(tmp_path, "student,host\na/b,vm1\na_b,vm2\n")
    assert "roster.csv:3: student 'a_b' and 'a/b' (line 2) would share the report file" in message


def test_empty_rosters(tmp_path):
    assert "the roster is empty" in refused(tmp_path, "\n\n")
    assert "has a header but no students" in refused(tmp_path, "student,host\n")


def test_unreadable_roster(tmp_path):
    with pytest.raises(InputError, match="cannot read the roster"):
        load_roster(tmp_path / "none.csv", RUBRIC)


def test_shards_split_a_roster_without_overlap_and_evenly():
    from grader.classrun.roster import Student, parse_shard, shard

    for size in (1, 7, 30, 101):
        students = [Student(f"s{n}", Target(f"h{n}")) for n in range(size)]
        for n in (1, 2, 3, 8):
            slices = [shard(students, k, n) for k in range(1, n + 1)]
            names = [s.student for part in slices for s in part]
            assert sorted(names) == sorted(s.student for s in students)  # all, once
            assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced
            assert slices == [shard(students, k, n) for k in range(1, n + 1)]  # deterministic
    assert parse_shard("2/8") == (2, 8)
    for bad in ("0/3", "4/3", "1-3", "a/b", "3"):
        with pytest.raises(InputError, match="expected K/N"):
            parse_shard(bad)


def test_an_lms_export_with_a_host_column_is_read_as_it_is(tmp_path):
    """Moodle and Canvas exports: headers in any case, semicolons, the columns that say who a
    student is kept for the reports; an unknown column is refused unless it is ignored."""
    moodle = roster(tmp_path, (
        "First name;Last name;Student;ID number;Email address;Host;Last access\n"
        "Ada;Lovelace;s1;2400137;ada@uni.example;vm1;yesterday\n"
    ))  # fmt: skip
    with pytest.raises(InputError, match=r"roster.csv:1: column 'Last access' is neither .*"
                       r"--ignore-column 'Last access'"):  # fmt: skip
        load_roster(moodle, RUBRIC)
    (s1,) = load_roster(moodle, RUBRIC, ignore=["last ACCESS"])
    assert (s1.student, s1.target.host) == ("s1", "vm1")
    assert s1.person == {
        "first name": "Ada", "last name": "Lovelace", "id number": "2400137",
        "email address": "ada@uni.example",
    }  # fmt: skip
    assert "column 'STUDENT ID'" in refused(tmp_path, "Student,Host,SIS User ID,STUDENT ID\n")
    mixed = roster(tmp_path, "Student,HOST,Section\ns2,vm2,B\n")
    (s2,) = load_roster(mixed, RUBRIC)
    assert (s2.student, s2.target.host, s2.person) == ("s2", "vm2", {"section": "B"})


def test_ids_that_would_overwrite_a_class_file_or_differ_only_in_case(tmp_path):
    message = refused(tmp_path, "student,host\nindex,vm1\n")
    assert "roster.csv:2: student id 'index' would name the page index.html" in message
    message = refused(tmp_path, "student,host\nAmy,vm1\namy,vm2\n")
    assert "roster.csv:3: student 'amy' and 'Amy' (line 2) would share the report file" in message
