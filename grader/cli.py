"""The ``grade`` command. Every exception is mapped to an exit status in ``main``, in one place.

Exit status: 0 every check passed; 1 graded, some checks did not pass; 2 bad usage, rubric or
other input; 3 the host could not be graded; 4 a bug in the grader (``--traceback`` shows it).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import platformdirs

from grader import __version__
from grader.archive import archive_path
from grader.batch import close_class, grade_roster
from grader.checkload import Check
from grader.errors import ExitStatus, InputError
from grader.files import write_atomic
from grader.prefetch import Plan
from grader.progress import progress_for
from grader.regrade import describe_changes, regrade_folder, show
from grader.render import render
from grader.render.lms import render as render_lms
from grader.results import Report
from grader.roster import load_roster, parse_shard, shard
from grader.rubric import Rubric, default_rubric_path, load_rubric
from grader.runner import Options, grade_host, grade_local, load_lab_checks
from grader.ssh import KnownHosts, Target, load_identity
from grader.store import ReportStore
from grader.student_copy import student_copy as make_student_copy
from grader.views import student_view

DEFAULT_KNOWN_HOSTS = platformdirs.user_config_path("lab-grader") / "known_hosts"
DEFAULT_CACHE = platformdirs.user_cache_path("lab-grader")

HELP = """Grade a student's lab VM over SSH and report the marks, check by check.

\b
  grade --host student-vm                      grade one VM as root, with the Lab 6 rubric
  grade --host 10.0.0.7 --var bob_password=... also check bob's POP3 login
  grade --host vm --format json --out reports  a JSON report on stdout and in reports/
  grade --roster class.csv --workers 16        grade a whole class (see ROSTER below)
  sudo grade --local                           a student checks their own VM
  grade regrade reports/lab6 --rubric new.toml re-mark a graded class without its VMs
  grade show reports/lab6 s123 pop3_login      the evidence behind one decision

The grader logs in over SSH (your keys or ssh-agent, --identity, or a password from
--password-env), inspects the VM from the inside with testinfra, probes it from the outside
(SMTP, POP3, an nmap port scan), and scores the results with the rubric.

Host keys are trusted on first use and kept in the grader's own known-hosts file; a changed
key refuses to grade until you pass --accept-changed-host-key.

ROSTER: a CSV file with a header row; columns student and host are required; port, user,
identity (a key file, relative to the roster) and password_env (an environment variable's
name) override the options of the same name for that student; any other column is a rubric
variable (e.g. bob_password). Each student's report goes to DIR/<student>.json, with the
evidence archive of what the VM answered (DIR/<student>.evidence.json.gz, for `grade regrade`),
and the class to DIR/summary.csv (DIR: --out, default reports/<lab>-<time>/). Ctrl-C stops
cleanly: what finished is kept, and --resume grades the rest.

\b
Exit status with --host: 0 every check passed, 1 graded with lost marks, 2 bad usage or
input, 3 the host could not be graded (unreachable, login refused, host key changed),
4 a bug in the grader. With --roster: 0 every student graded, 2 bad input, 3 at least one
student could not be graded, 130 interrupted.
"""


def _parse_vars(values: Sequence[str]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint="--var")
        parsed[name] = content
    return parsed


@click.group(
    invoke_without_command=True,
    help=HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--host", metavar="HOST", help="The VM to grade: a host name or address.")
@click.option(
    "--local",
    is_flag=True,
    help="Grade this machine, without SSH (a student checking their own VM). Run as root to "
    "grade everything.",
)
@click.option(
    "--student-view/--instructor-view",
    "student_view",
    default=None,
    help="Student view: hidden rubric items are only counted, the score is over the visible "
    "ones. Default: student view with --local, instructor view otherwise.",
)
@click.option(
    "--roster",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="CSV",
    help="Grade every student of a roster instead (see ROSTER below).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="With --roster: how many hosts are graded at once.",
)
@click.option(
    "--shard",
    metavar="K/N",
    help="With --roster: grade only the Kth of N slices of the roster (e.g. one job of a CI "
    "matrix or a Slurm array); `grade merge` combines the slices' folders.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="With --roster and --out: keep the students whose report in DIR is graded with this "
    "same rubric, and grade the others.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=22, show_default=True, help="SSH port."
)
@click.option(
    "--user",
    default="root",
    show_default=True,
    help="SSH user; the checks read the mail spool, so they need root.",
)
@click.option(
    "--identity",
    type=click.Path(path_type=Path),
    metavar="KEYFILE",
    help="Private key to log in with (default: your SSH keys and ssh-agent).",
)
@click.option(
    "--password-env",
    metavar="VAR",
    help="Name of an environment variable holding the SSH password "
    "(so the password never appears on a command line).",
)
@click.option(
    "--rubric",
    "rubric_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Rubric to grade with (default: the built-in Lab 6 rubric.toml).",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a rubric variable, e.g. --var bob_password=secret. Repeatable.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "html", "md", "junit", "gradescope"]),
    default="text",
    show_default=True,
    help="text: a table for people; json: the JSON report; html: a self-contained page; "
    "md: Markdown for feedback; junit: JUnit XML; gradescope: Gradescope's results.json. "
    "(A roster run writes all of them to its folder.)",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Also write the JSON report to DIR/<host>.json (with --roster: the run's folder).",
)
@click.option(
    "--known-hosts",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="GRADER_KNOWN_HOSTS",
    default=DEFAULT_KNOWN_HOSTS,
    show_default=True,
    help="The grader's known-hosts file (env GRADER_KNOWN_HOSTS).",
)
@click.option(
    "--accept-changed-host-key",
    is_flag=True,
    help="Accept and store a host key that differs from the stored one.",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds for each of TCP connect, SSH greeting, login.",
)
@click.option(
    "--command-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds one command on the VM may take.",
)
@click.option(
    "--host-timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="Seconds the whole grading of one host may take; checks not started by then are "
    "errors (so one broken VM never holds up a class).",
)
@click.option(
    "--reply-timeout",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="Seconds to wait for a service's greeting or reply when probing from outside "
    "(sendmail may pause before greeting).",
)
@click.option(
    "--no-prefetch",
    is_flag=True,
    help="Run every command of the checks on its own round trip (slower; the marks are the "
    "same). By default the commands the checks are known to ask run in one round trip.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="GRADER_CACHE_DIR",
    default=DEFAULT_CACHE,
    show_default=True,
    help="Where the grader keeps what it learned about a rubric's commands (env GRADER_CACHE_DIR).",
)
@click.option("--traceback", is_flag=True, help="Show the Python traceback of a grader bug.")
@click.version_option(__version__, prog_name="grade")
@click.pass_context
def cli(ctx: click.Context, **opts: Any) -> int:
    if ctx.invoked_subcommand is not None:
        return ExitStatus.OK
    host, roster, local = opts["host"], opts["roster"], opts["local"]
    if sum(map(bool, (host, roster, local))) != 1:
        raise click.UsageError(
            "give one of --host HOST, --roster CSV or --local (see grade --help)"
        )
    if not roster and (opts["resume"] or opts["shard"]):
        raise click.UsageError("--resume and --shard are for a --roster run")
    if roster and opts["student_view"]:
        raise click.UsageError("--student-view is for --host and --local")

    given = _parse_vars(opts["variables"])
    rubric = load_rubric(opts["rubric_path"] or default_rubric_path())
    resolved = rubric.resolve_vars(given)
    checks = load_lab_checks(rubric)
    password = None
    if opts["password_env"]:
        name = opts["password_env"]
        password = os.environ.get(name)
        if password is None:
            raise InputError(f"--password-env {name}: the environment variable {name} is not set")
    if opts["identity"] is not None:
        load_identity(opts["identity"])  # an unusable key file is bad input, refused at once
    options = Options(
        known_hosts=KnownHosts(opts["known_hosts"], opts["accept_changed_host_key"]),
        connect_timeout=opts["connect_timeout"],
        command_timeout=opts["command_timeout"],
        reply_timeout=opts["reply_timeout"],
        host_timeout=opts["host_timeout"],
    )
    target = Target(
        host=host or "",
        port=opts["port"],
        user=opts["user"],
        identity=opts["identity"],
        password=password,
    )
    plan = None if opts["no_prefetch"] else Plan(opts["cache_dir"] / f"plan-{rubric.sha256}.json")
    if roster:
        return _grade_class(roster, rubric, checks, given, options, target, opts, plan)

    if local:
        grading = grade_local(rubric, checks, resolved, options)
    else:
        grading = grade_host(target, rubric, checks, resolved, options, plan=plan)
        if plan is not None:
            plan.save()
    report = grading.report
    if opts["student_view"] if opts["student_view"] is not None else local:
        report = student_view(report, rubric)
    if opts["out"] is not None:
        store = ReportStore(opts["out"])
        store.save(report, grading.archive)
        if opts["fmt"] in ("html", "md"):
            path = store.report_path(report).with_suffix(f".{opts['fmt']}")
            write_atomic(path, render(opts["fmt"], report))
    _emit(report, opts["fmt"])
    return _exit_status(report)


def _grade_class(
    roster: Path,
    rubric: Rubric,
    checks: Mapping[str, Check],
    given: Mapping[str, str],
    options: Options,
    defaults: Target,
    opts: Mapping[str, Any],
    plan: Plan | None,
) -> int:
    if opts["fmt"] != "text":
        raise click.UsageError(
            "--format is for --host and --local; a roster run writes every format to its "
            "folder (--out)"
        )
    if opts["resume"] and opts["out"] is None:
        raise click.UsageError("--resume needs --out DIR: the folder of the run to resume")
    students = load_roster(roster, rubric, defaults)
    if opts["shard"]:
        students = shard(students, *parse_shard(opts["shard"]))
    slug = re.sub(r"[^a-z0-9]+", "-", rubric.title.lower()).strip("-")[:40] or "lab"
    directory = opts["out"] or Path("reports") / f"{slug}-{datetime.now():%Y%m%d-%H%M%S}"
    store = ReportStore(directory)
    started = time.monotonic()
    with _sigterm_interrupts(), progress_for(len(students)) as progress:
        result = grade_roster(
            students,
            rubric,
            checks,
            given,
            options,
            store,
            progress,
            opts["workers"],
            resume=opts["resume"],
            plan=plan,
        )
    _to_terminal(
        "class",
        result.reports,
        rubric=rubric,
        directory=directory,
        elapsed=time.monotonic() - started,
        interrupted=result.interrupted,
        expected=len(students),
    )
    return 130 if result.interrupted else _class_exit_status(result.reports)


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops a roster run as Ctrl-C does: cleanly, keeping what finished."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@cli.command("rubric")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@click.option(
    "--student-copy",
    is_flag=True,
    help="Write the rubric without its hidden items (comments kept), to hand out to students.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --student-copy: write it to this file instead of stdout.",
)
def rubric_command(path: Path | None, student_copy: bool, output: Path | None) -> int:
    """Check a rubric and show its items and points total (default: the Lab 6 rubric)."""
    rubric = load_rubric(path or default_rubric_path())
    load_lab_checks(rubric)
    if student_copy:
        text = make_student_copy(rubric)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomic(output, text)
        return ExitStatus.OK
    if output is not None:
        raise click.UsageError("--output is for --student-copy")
    _to_terminal("rubric", rubric)
    return ExitStatus.OK


@cli.command("export")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--lms",
    type=click.Choice(["moodle", "canvas"]),
    required=True,
    help="The gradebook to import into.",
)
@click.option(
    "--id-column",
    metavar="NAME",
    help="Header of the column holding the roster's student ids (default: moodle "
    "'ID number', canvas 'SIS User ID').",
)
@click.option(
    "--grade-column",
    metavar="NAME",
    help="Header of the grade column (default: the rubric's title).",
)
@click.option(
    "--feedback/--no-feedback",
    default=True,
    show_default=True,
    help="Moodle: add a Feedback column with each student's lost marks.",
)
def export_command(
    directory: Path, lms: str, id_column: str | None, grade_column: str | None, feedback: bool
) -> int:
    """Write a gradebook import file (CSV, to stdout) from a roster run's folder.

    Students who could not be graded are left empty, never 0."""
    reports = [r for r in ReportStore(directory).all_reports() if r.student is not None]
    if not reports:
        raise InputError(f"{directory}: no student reports (<student>.json) found")
    sys.stdout.write(
        render_lms(reports, lms, id_column=id_column, grade_column=grade_column, feedback=feedback)
    )
    return ExitStatus.OK


@cli.command("merge")
@click.argument(
    "directories",
    nargs=-1,
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="The folder of the whole class.",
)
@click.option(
    "--rubric",
    "rubric_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="The rubric the shards graded with (default: the built-in Lab 6 rubric).",
)
def merge_command(directories: tuple[Path, ...], out: Path, rubric_path: Path | None) -> int:
    """Combine the folders of roster shards (grade --roster --shard K/N) into one class folder:
    every student's report, the summary, the overview and the exports, with clones flagged
    across shards. Exit status 0 every student graded, 3 some not."""
    rubric = load_rubric(rubric_path or default_rubric_path())
    found: dict[str, tuple[Report, Path]] = {}
    for directory in directories:
        for path, report in ReportStore(directory).report_files():
            if report.student is None:
                continue
            if report.rubric.sha256 != rubric.sha256:
                raise InputError(
                    f"{directory}: {report.student}'s report was graded with another rubric "
                    f"(sha256 {report.rubric.sha256[:12]}, not {rubric.sha256[:12]} of "
                    f"{rubric.path}); give the rubric the shards used with --rubric"
                )
            if report.student in found:
                raise InputError(
                    f"{report.student} is in both {found[report.student][1].parent} and "
                    f"{directory}: shards must not overlap"
                )
            found[report.student] = (report, path)
    if not found:
        raise InputError(
            "no student reports (<student>.json) in " + ", ".join(map(str, directories))
        )
    store = ReportStore(out)
    merged = [found[s][0] for s in sorted(found)]
    for report, path in found.values():
        if archive_path(path).exists():  # the archive goes along, so the class can be regraded
            store.take_archive(report, path)
        store.save(report)
    reports = close_class(store, merged, rubric)
    _to_terminal("class", reports, rubric=rubric, directory=out)
    return _class_exit_status(reports)


@cli.command("regrade")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--rubric",
    "rubric_path",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="The rubric to mark with now (default: the built-in Lab 6 rubric).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR2",
    help="Where the new reports, summary and exports go (default: DIRECTORY-regraded-<time>). "
    "DIRECTORY itself is never written to.",
)
@click.option(
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a rubric variable for every student (default: the values used at grading).",
)
def regrade_command(
    directory: Path, rubric_path: Path | None, out: Path | None, variables: Sequence[str]
) -> int:
    """Re-mark a graded folder (a roster run's, or --host --out's) from the evidence archives
    recorded at grading (<student>.evidence.json.gz), without the VMs.

    \b
    The checks run again against what each VM answered then, with the rubric given now: new
    points, hints, dependencies and visibility apply. A check that asks for something the VM
    was never asked is an error ("needs the live VM"), never a guess. A student who was not
    graded stays not graded; an archive that is missing, changed after grading (its checksum
    does not match) or not the one the report was made from is refused, and that student is
    reported as not regraded. Exit status 0 every student regraded, 2 bad input, 3 some not.
    """
    rubric = load_rubric(rubric_path or default_rubric_path())
    checks = load_lab_checks(rubric)
    given = _parse_vars(variables)
    rubric.resolve_vars(given)  # unknown names are refused before anything is written
    target = out or directory.with_name(f"{directory.name}-regraded-{datetime.now():%Y%m%d-%H%M%S}")
    if target.resolve() == directory.resolve():
        raise click.UsageError("--out must be another folder: the graded folder is kept as it is")
    found = ReportStore(directory).report_files()
    if not found:
        raise InputError(f"{directory}: no reports (<student>.json) to regrade")
    started = time.monotonic()
    with progress_for(len(found), verb="Regrading") as progress:
        result = regrade_folder(
            found,
            target,
            rubric,
            checks,
            given,
            finished=lambda report: progress.finished(report, reused=False),
        )
    _to_terminal(
        "class",
        result.reports,
        rubric=rubric,
        directory=target,
        elapsed=time.monotonic() - started,
    )
    sys.stdout.write(describe_changes(result.changes))
    sys.stdout.write(
        f"Regraded {result.replayed} of {len(result.reports)} students from their evidence "
        f"archives, without the VMs; {result.needed_live} check(s) needed the live VM.\n"
    )
    return _class_exit_status(result.reports)


@cli.command("show")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("student")
@click.argument("check")
@click.option("--all", "show_all", is_flag=True, help="Show every line of long outputs.")
@click.option(
    "--lines",
    type=click.IntRange(min=1),
    default=60,
    show_default=True,
    help="Lines shown of each output.",
)
def show_command(directory: Path, student: str, check: str, show_all: bool, lines: int) -> int:
    """Print the decision on one check of one student and the evidence behind it, whole, as the
    evidence archive recorded it (for settling a dispute). STUDENT is a student id or a host."""
    sys.stdout.write(show(directory, student, check, None if show_all else lines))
    return ExitStatus.OK


def _emit(report: Report, fmt: str) -> None:
    if fmt == "text":
        _to_terminal("text", report)
    else:
        sys.stdout.write(render(fmt, report))
    sys.stdout.flush()


def _to_terminal(kind: str, subject: Report | Rubric | Sequence[Report], **fields: Any) -> None:
    """Write a rendering for people to stdout: fitted to the terminal, coloured only on one."""
    width = min(shutil.get_terminal_size((100, 24)).columns, 140)
    sys.stdout.write(render(kind, subject, color=sys.stdout.isatty(), width=width, **fields))


def _class_exit_status(reports: Sequence[Report]) -> int:
    graded = all(r.status == "graded" for r in reports)
    return ExitStatus.OK if graded else ExitStatus.NOT_GRADED


def _exit_status(report: Report) -> int:
    if report.status != "graded":
        return ExitStatus.NOT_GRADED
    return ExitStatus.OK if report.all_passed else ExitStatus.NOT_ALL_PASSED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``grade`` with ``argv`` and return its exit status (tests call this in-process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="grade", standalone_mode=False)
    except click.exceptions.Exit as e:  # --help, --version
        return int(e.exit_code)
    except click.UsageError as e:
        e.show()
        return ExitStatus.BAD_INPUT
    except click.ClickException as e:
        e.show()
        return ExitStatus.BAD_INPUT
    except click.Abort:
        click.echo("grade: interrupted", err=True)
        return 130
    except InputError as e:
        click.echo(f"grade: error: {e}", err=True)
        return ExitStatus.BAD_INPUT
    except Exception as e:
        if "--traceback" in args:
            raise
        click.echo(
            f"grade: internal error: {type(e).__name__}: {e} "
            "(this is a bug in the grader; run again with --traceback to see where)",
            err=True,
        )
        return ExitStatus.INTERNAL_ERROR
    return int(result or 0)


def run() -> None:
    sys.exit(main())
