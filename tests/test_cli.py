"""The command line without VMs: usage, bad input, and a host that cannot be reached."""

import json
import socket

from grader.base.errors import ExitStatus


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_explains_usage_and_exit_status(grade):
    run = grade("--help")
    assert run.exit == 0
    for words in ("--host", "--var NAME=VALUE", "--password-env", "Exit status", "host key"):
        assert words in run.stdout


def test_version(grade):
    run = grade("--version")
    assert run.exit == 0 and "grade, version" in run.stdout


def test_no_host_is_a_usage_error(grade):
    run = grade()
    assert (
        run.exit == ExitStatus.BAD_INPUT
        and "give one of --host HOST, --roster CSV or --local" in run.stderr
    )


def test_bad_var_syntax(grade):
    run = grade("--host", "127.0.0.1", "--var", "bob_password")
    assert run.exit == ExitStatus.BAD_INPUT and "expected NAME=VALUE" in run.stderr


def test_unknown_variable_suggests_closest(grade):
    run = grade("--host", "127.0.0.1", "--var", "bob_pasword=x")
    assert run.exit == ExitStatus.BAD_INPUT
    assert "unknown variable 'bob_pasword' (did you mean 'bob_password'?)" in run.stderr
    assert "Traceback" not in run.stderr


def test_password_env_not_set(grade, monkeypatch):
    monkeypatch.delenv("NO_SUCH_PASSWORD_VAR", raising=False)
    run = grade("--host", "127.0.0.1", "--password-env", "NO_SUCH_PASSWORD_VAR")
    assert run.exit == ExitStatus.BAD_INPUT
    assert "environment variable NO_SUCH_PASSWORD_VAR is not set" in run.stderr


def test_unusable_identity_files(grade, tmp_path):
    missing = grade("--host", "127.0.0.1", "--identity", str(tmp_path / "none"))
    assert missing.exit == ExitStatus.BAD_INPUT and "does not exist" in missing.stderr
    junk = tmp_path / "junk_key"
    junk.write_text("this is not a key\n")
    bad = grade("--host", "127.0.0.1", "--identity", str(junk))
    assert bad.exit == ExitStatus.BAD_INPUT and f"{junk}: not a usable private key" in bad.stderr


def test_broken_rubric_is_bad_input(grade, tmp_path):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text('title = "x"\n[[sections]\n')
    run = grade("--host", "127.0.0.1", "--rubric", str(rubric))
    assert run.exit == ExitStatus.BAD_INPUT
    assert f"{rubric}: not valid TOML" in run.stderr and "line 2" in run.stderr


def test_refused_connection_is_not_graded_never_zero(grade, tmp_path):
    port = free_loopback_port()
    run = grade(
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--format",
        "json",
        "--out",
        str(tmp_path / "out"),
    )
    assert run.exit == ExitStatus.NOT_GRADED
    report = run.report  # exactly one JSON document on stdout
    assert report["status"] == "unreachable" and report["error_kind"] == "unreachable"
    assert report["score"] is None and report["checks"] == []
    assert "connection refused" in report["error"]
    assert json.loads((tmp_path / "out" / "127.0.0.1.json").read_text()) == report


def test_refused_connection_in_text(grade):
    run = grade("--host", "127.0.0.1", "--port", str(free_loopback_port()))
    assert run.exit == ExitStatus.NOT_GRADED
    assert "NOT GRADED (unreachable)" in run.stdout


def test_rubric_command_shows_items_and_total(grade):
    run = grade("rubric")
    assert run.exit == 0
    assert "Total 20 points in 20 items (1 hidden from students)" in run.stdout
    assert "pop3_login" in run.stdout and "bob_password (secret)" in run.stdout


def test_rubric_command_refuses_a_bad_rubric(grade, tmp_path):
    rubric = tmp_path / "rubric.toml"
    rubric.write_text('title = "x"\n')
    run = grade("rubric", str(rubric))
    assert run.exit == ExitStatus.BAD_INPUT
    assert f"{rubric}: sections: this key is required" in run.stderr


def test_an_option_before_a_subcommand_is_honoured_or_refused(grade, tmp_path):
    # honoured: the subcommand takes it (here a rubric that does not exist, so it is seen)
    run = grade("--rubric", str(tmp_path / "none.toml"), "rubric")
    assert run.exit == ExitStatus.BAD_INPUT and "none.toml: cannot read the rubric" in run.stderr
    # refused: the subcommand has no such option
    run = grade("--host", "vm", "rubric")
    assert run.exit == ExitStatus.BAD_INPUT
    assert "--host is not an option of `grade rubric`" in run.stderr


def test_host_and_local_cannot_be_combined(grade):
    run = grade("--host", "vm", "--local")
    assert run.exit == ExitStatus.BAD_INPUT
    assert "--host and --local cannot be combined" in run.stderr


def test_var_env_reads_a_variable_from_the_environment(grade, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR_ENV", raising=False)
    run = grade("--host", "127.0.0.1", "--var-env", "bob_password=NO_SUCH_VAR_ENV")
    assert run.exit == ExitStatus.BAD_INPUT
    assert "the environment variable NO_SUCH_VAR_ENV is not set" in run.stderr
    run = grade("--host", "127.0.0.1", "--var-env", "bob_password")
    assert run.exit == ExitStatus.BAD_INPUT and "expected NAME=ENVVAR" in run.stderr


def test_the_ssh_password_is_not_in_a_targets_repr():
    from grader.machine.ssh import Target

    assert "s3cret" not in repr(Target(host="vm", password="s3cret"))


def test_only_names_a_check_of_the_lab(grade):
    run = grade("--host", "127.0.0.1", "--only", "smtp_deamon")
    assert run.exit == ExitStatus.BAD_INPUT
    assert "--only smtp_deamon: Lab 6: email, processes and networking has no check" in run.stderr
    assert "(did you mean 'smtp_daemon'?)" in run.stderr
    assert "rubric.toml" not in run.stderr  # no path of the grader's (a bundle's is temporary)
    run = grade("--roster", "class.csv", "--only", "smtp_daemon")
    assert run.exit == ExitStatus.BAD_INPUT and "a class is graded in full" in run.stderr
