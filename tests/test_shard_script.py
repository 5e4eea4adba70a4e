"""`grade course shard-script`: what course.toml says never runs as shell in the job script, and
the job gets only the environment its tasks need (sbatch passes on the whole environment of
whoever submits unless the script says otherwise). On a real Slurm: test_e2e_slurm.py."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from grader.base.errors import ExitStatus
from tests.hostile import NOBODY


def make_course(tmp: Path, title: str, more: str = "", folder: str = "course") -> Path:
    """A course of two labs: lab6 with a secret from the environment, lab7 with another; a
    roster whose password_env column names the SSH password's variable of one student."""
    course = tmp / folder
    course.mkdir()
    (course / "class.csv").write_text(
        f"student,host,password_env\namy,{NOBODY},AMY_SSH_PW\nben,{NOBODY},\n"
    )
    (course / "course.toml").write_text(
        f'title = "{title}"\nroster = "class.csv"\n{more}\n'
        '[[labs]]\nid = "lab6"\nlab = "lab6"\ndue = 2026-12-01T23:59:00+00:00\n'
        'vars = { bob_password = { env = "LAB6_BOB_PW" } }\n\n'
        '[[labs]]\nid = "lab7"\nlab = "lab7"\ndue = 2026-12-08T23:59:00+00:00\n'
        'vars = { key = { env = "LAB7_KEY" }, user = "alice" }\n'
    )
    return course


def run_script(script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """The script as sh runs it outside Slurm: no SLURM_* variables, so the grader it ends with
    is given the shard "/2" and refuses at once (nothing is graded)."""
    path = tmp / "job.sh"
    path.write_text(script)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp)}
    return subprocess.run(["sh", str(path)], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "title",
    [
        r"CS 2026\ntouch {marker}",  # TOML's escape: a line break in the title
        r"CS 2026\r\ntouch {marker}",
        "CS 2026\u2028touch {marker}",
        r"CS $(touch {marker}) `touch {marker}`; touch {marker} #",
        r"CS 'x' \"y\" \\ ; touch {marker}",
    ],
)
def test_no_title_runs_as_a_command_of_the_shard_script(grade, tmp_path, title):
    marker = tmp_path / "MARKER"
    course = make_course(tmp_path, title.format(marker=marker))
    made = grade("course", "shard-script", "lab6", "--slurm", "--shards", "2", "--course",
                 str(course))  # fmt: skip
    if made.exit == ExitStatus.OK:
        ran = run_script(made.stdout, tmp_path)
        assert "--shard" in ran.stderr, ran.stderr  # it ran up to the grader, which refused
    else:
        assert made.exit == ExitStatus.BAD_INPUT, made.stderr
        assert f"{course / 'course.toml'}:1: title: holds a control character" in made.stderr
        assert "Traceback" not in made.stderr and not made.stdout
    ran_it = sorted(p.name for p in tmp_path.glob("MARKER*"))  # touch MARKER: lab6 in ...
    assert not ran_it, "the course title ran as a command of the job script"


def test_the_script_writes_the_title_as_one_safe_comment_line(grade, tmp_path, monkeypatch):
    """Whatever the title holds (were it to get past course.toml's check), it is one comment
    line of the script, its control characters escaped."""
    import grader.course.config as config

    marker = tmp_path / "MARKER"
    course = make_course(tmp_path, "CS")
    load = config.load_course
    title = f"CS\ntouch {marker}\r\u2028\x1b[2J\u202e"
    monkeypatch.setattr(
        config, "load_course", lambda path: dataclasses.replace(load(path), title=title)
    )
    made = grade("course", "shard-script", "lab6", "--slurm", "--course", str(course))
    assert made.exit == ExitStatus.OK, made.stderr
    lines = made.stdout.splitlines()
    assert lines[1].startswith("# CS\\u000atouch ") and "\\u001b[2J\\u202e:" in lines[1]
    assert not any("touch" in line for n, line in enumerate(lines) if n != 1)
    assert len(made.stdout.split("\n")) == len(lines) + 1  # no other line break
    run_script(made.stdout, tmp_path)
    assert not list(tmp_path.glob("MARKER*"))


def export_line(script: str) -> set[str]:
    (line,) = [line for line in script.splitlines() if line.startswith("#SBATCH --export=")]
    return set(line.removeprefix("#SBATCH --export=").split(","))


def test_the_shard_script_exports_only_what_its_tasks_need(grade, tmp_path, monkeypatch):
    course = make_course(tmp_path, "CS")
    for name in ("PGPASSWORD", "COURSE_SECRET", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "not for the job")
    made = grade("course", "shard-script", "lab6", "--slurm", "--course", str(course))
    assert made.exit == ExitStatus.OK, made.stderr
    names = export_line(made.stdout)
    # the book's address and its password file or service; the lab's secrets; the roster's
    # SSH passwords; what the grader finds its files by
    needed = {"PATH", "HOME", "GRADER_DB", "PGPASSFILE", "PGSERVICEFILE", "PGSERVICE",
              "LAB6_BOB_PW", "AMY_SSH_PW", "GRADER_KNOWN_HOSTS", "GRADER_CACHE_DIR"}  # fmt: skip
    assert needed <= names, needed - names
    assert not names & {"PGPASSWORD", "COURSE_SECRET", "AWS_SECRET_ACCESS_KEY", "LAB7_KEY"}
    assert all(n.replace("_", "").isalnum() and n[0].isalpha() for n in names), names
    assert "not for the job" not in made.stdout  # names only, never a value
    made = grade("course", "shard-script", "--due", "--slurm", "--course", str(course))
    assert {"LAB6_BOB_PW", "LAB7_KEY"} <= export_line(made.stdout)  # --due: every lab's


@pytest.mark.parametrize("where", ["--db", "GRADER_DB"])
def test_a_book_url_with_a_password_is_warned_of(grade, tmp_path, monkeypatch, where):
    course = make_course(tmp_path, "CS")
    url = "postgresql://grader:hunter2@127.0.0.1:1/cs"  # nothing listens there
    if where == "GRADER_DB":
        monkeypatch.setenv("GRADER_DB", url)
        run = grade("book", "show", "--course", str(course))
    else:
        run = grade("book", "show", "--course", str(course), "--db", url)
    assert run.exit == ExitStatus.BAD_INPUT  # and the book cannot be reached: said after
    warning = run.stderr.splitlines()[0]
    assert warning.startswith(f"grade: warning: {where} holds the book's password"), run.stderr
    assert ".pgpass" in warning and "hunter2" not in run.stderr
    monkeypatch.setenv("GRADER_DB", "postgresql://grader@127.0.0.1:1/cs")
    run = grade("book", "show", "--course", str(course))
    assert "warning" not in run.stderr  # no password: nothing to warn of
