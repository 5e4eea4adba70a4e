"""Bad input on the grader's side: exit 2, a message that names the file and the line or key,
never a traceback, and nothing graded (no host is contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from tests.hostile import NOBODY

PROJECT = Path(__file__).resolve().parent.parent
RUBRIC = (PROJECT / "rubric.toml").read_text()
DAEMON_LINE = RUBRIC.splitlines().index('id = "smtp_daemon"') + 1


def rubric(tmp: Path, text: str) -> str:
    (tmp / "checks").symlink_to(PROJECT / "checks")
    (tmp / "rubric.toml").write_text(text)
    return str(tmp / "rubric.toml")


def roster(tmp: Path, text: str) -> str:
    (tmp / "class.csv").write_text(text)
    return str(tmp / "class.csv")


def course(
    tmp: Path,
    title: str = '"CS"',
    roster: str = '"class.csv"',
    lab_id: str = '"lab6"',
    lab: str = "",
    more: str = "",
) -> str:
    """A course folder (course.toml and its roster); course.toml's title on line 1, its roster
    on line 2, its lab's id on line 5, ``lab`` on line 8, ``more`` from line 9."""
    if not (tmp / "class.csv").exists():  # a roster of the case's own
        (tmp / "class.csv").write_text("student,host\ns1,vm1\n")
    (tmp / "course.toml").write_text(
        f'title = {title}\nroster = {roster}\n\n[[labs]]\nid = {lab_id}\nlab = "lab6"\n'
        f"due = 2026-12-01T23:59:00+00:00\n{lab}\n{more}"
    )
    return str(tmp)


CASES = {
    "malformed rubric": (
        lambda t: [
            "--host",
            "x",
            "--rubric",
            rubric(t, RUBRIC.replace('id = "smtp_daemon"', "id =")),
        ],
        ["rubric.toml: not valid TOML", f"line {DAEMON_LINE}"],
    ),
    "unknown check id": (
        lambda t: [
            "--host",
            "x",
            "--rubric",
            rubric(t, RUBRIC.replace('"queue_empty"', '"queue_emtpy"')),
        ],
        ["rubric.toml:", "'queue_emtpy' names no check", "did you mean 'queue_empty'?"],
    ),
    "dependency cycle": (
        lambda t: [
            "--host",
            "x",
            "--rubric",
            rubric(
                t,
                RUBRIC.replace(
                    'id = "pop3_greets"\n', 'id = "pop3_greets"\ndepends = ["pop3_login"]\n'
                ),
            ),
        ],
        ["rubric.toml: dependency cycle", "pop3_login", "pop3_greets"],
    ),
    "roster without a host column": (
        lambda t: ["--roster", roster(t, "student,hots\ns1,vm1\n")],
        ["class.csv:1: the header has no 'host' column", "did you mean 'hots'?"],
    ),
    "roster with a duplicate student": (
        lambda t: ["--roster", roster(t, "student,host\ns1,vm1\ns2,vm2\ns1,vm3\n")],
        ["class.csv:4: student 's1' is already on line 2"],
    ),
    "identity that is not a key file": (
        lambda t: ["--host", "x", "--identity", str(t)],
        ["identity file is a directory"],
    ),
    "identity in a roster that does not exist": (
        lambda t: ["--roster", roster(t, "student,host,identity\ns1,vm1,nokey\n")],
        ["class.csv:2: identity:", "nokey: identity file does not exist"],
    ),
    "no workers": (
        lambda t: ["--roster", roster(t, "student,host\ns1,vm1\n"), "--workers", "0"],
        ["--workers", "0: must be at least 1"],
    ),
    "regrade of a folder with no reports": (
        lambda t: ["regrade", str(t)],
        ["no reports (<student>.json) to regrade"],
    ),
    "regrade with an unknown variable": (
        lambda t: [
            "regrade",
            str(t),
            "--rubric",
            str(PROJECT / "rubric.toml"),
            "--var",
            "bob_pasword=x",
        ],
        ["rubric.toml: unknown variable 'bob_pasword'", "did you mean 'bob_password'?"],
    ),
    "show of a folder with no reports": (
        lambda t: ["show", str(t), "alice", "smtp_daemon"],
        ["no reports (<student>.json) in this folder"],
    ),
    # said before any VM boots (as root, with the simulator's daemons installed, as on CI)
    "mutants of a check the rubric does not have": (
        lambda t: ["prove", "--mutants", "--only", "smtp_deamon"],
        ["rubric.toml: no check 'smtp_deamon' (--only)"],
    ),
    "--only without --mutants": (
        lambda t: ["prove", "--only", "smtp_daemon"],
        ["--only and --max apply to grade prove --mutants"],
    ),
    "a batch without shards": (
        lambda t: ["course", "run", "lab6", "--batch", "slurm-7"],
        ["--batch names the shards of one class grading: give --shard K/N"],
    ),
    "a batch name longer than the book keeps": (
        lambda t: ["course", "run", "lab6", "--shard", "1/2", "--batch", "x" * 101],
        ["--batch: a name of 1 to 100 characters, not 101"],
    ),
    "a shard past the count": (
        lambda t: ["course", "due", "--shard", "3/2"],
        ["--shard '3/2': expected K/N with 1 <= K <= N"],
    ),
    "a shard script for no runner": (
        lambda t: ["course", "shard-script", "lab6"],
        ["name the job runner the script is for: --slurm"],
    ),
    "a shard script of a lab and of what is due": (
        lambda t: ["course", "shard-script", "lab6", "--slurm", "--due"],
        ["--due grades every lab's students now due: give no LAB"],
    ),
    "a course title of two lines": (
        lambda t: [
            "course",
            "shard-script",
            "lab6",
            "--slurm",
            "--course",
            course(t, title='"CS\\nrm -rf ~"'),
        ],
        ["course.toml:1: title: holds a control character (U+000A)", "one line of printable"],
    ),
    "a lab id with a C1 control": (
        lambda t: ["course", "run", "lab6", "--course", course(t, lab_id='"lab6\\u0085"')],
        ["course.toml:5: labs[0].id: holds a control character (U+0085)", "did you mean 'lab6'?"],
    ),
    "a student id of an extension with a line separator": (
        lambda t: [
            "book",
            "show",
            "--course",
            course(t, more='[extensions]\n"s1\\u2028" = { lab6 = 2026-12-03T23:59:00+00:00 }\n'),
        ],
        [
            "course.toml:10: extensions.'s1\\u2028': holds a control character (U+2028)",
            "did you mean 's1'?",
        ],
    ),
    "a variable's value with an escape sequence": (
        lambda t: ["course", "due", "--course", course(t, lab='vars = { user = "\\u001b[2J" }')],
        ["course.toml:8: labs[0].vars.user: holds a control character (U+001B)"],
    ),
    "a roster path with a tab": (
        lambda t: ["book", "show", "--course", course(t, roster='"class.csv\\t"')],
        ["course.toml:2: roster: holds a control character (U+0009)"],
    ),
    "a shard script told of a book it cannot carry": (
        lambda t: [
            "course",
            "shard-script",
            "lab6",
            "--slurm",
            "--course",
            course(t),
            "--db",
            "postgresql://grader@db.example/cs",
        ],
        ["--db does not reach the job's tasks", "GRADER_DB"],
    ),
    "a roster's password_env that names no environment variable": (
        lambda t: [
            "course",
            "shard-script",
            "lab6",
            "--slurm",
            "--course",
            roster(t, "student,host,password_env\ns1,vm1,PW\ns2,vm2,PW;rm -rf ~\n") and course(t),
        ],
        ["class.csv:3: password_env 'PW;rm -rf ~' is not the name of an environment variable"],
    ),
    "a course folder whose name holds a control character": (
        lambda t: [
            "course",
            "shard-script",
            "lab6",
            "--slurm",
            "--course",
            course(Path(t, "cs\n2026").mkdir() or Path(t, "cs\n2026")),
        ],
        ["cs\\n2026': the course folder's path holds a control character"],
    ),
    # live mode: said before any connection is tried
    "a live VM without --mutants": (
        lambda t: ["prove", "--host", NOBODY],
        ["--host applies to grade prove --mutants (live mode)"],
    ),
    "live mutants of a check the rubric does not have": (
        lambda t: ["prove", "--mutants", "--host", NOBODY, "--only", "smtp_deamon"],
        ["rubric.toml: no check 'smtp_deamon' (--only)"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named_and_refused(grade, tmp_path, case):
    make_args, expected = CASES[case]
    run = grade(*make_args(tmp_path))
    assert run.exit == ExitStatus.BAD_INPUT, run.stderr
    for words in expected:
        assert words in run.stderr, (words, run.stderr)
    assert "Traceback" not in run.stderr + run.stdout
    assert not (tmp_path / "reports").exists()  # nothing was graded
