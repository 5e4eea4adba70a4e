"""What ``grade`` accepts: its options and subcommands, apart from what they do (``core``).

Built on argparse (the standard library), so the same command line runs in the self-check
bundle on a lab VM's own Python 3.9, where no third-party CLI library can be assumed.

Every option of the top-level parser defaults to "not given" (``SUPPRESS``): ``core`` fills in
``DEFAULTS`` afterwards, and so knows which options were given. An option given before a
subcommand (``grade --rubric X regrade DIR``) is honoured when the subcommand has that option
too, and refused by name when it has not: never silently dropped.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, NoReturn

from grader import __version__
from grader.base.errors import InputError

FORMATS = ("text", "json", "html", "md", "junit", "gradescope")

DESCRIPTION = """\
Grade a student's lab VM over SSH and report the marks, check by check.

  grade --host student-vm                       grade one VM (the built-in lab's rubric)
  grade --host 10.0.0.7 --var-env pw=VM_PW      a rubric variable from the environment
  grade --host vm --format json --out reports   a JSON report on stdout and in reports/
  grade --roster class.csv --workers 16         grade a whole class (see ROSTER below)
  sudo grade --local                            a student checks their own VM
  grade regrade reports/lab6 --rubric new.toml  re-mark a graded class without its VMs
  grade show reports/lab6 s123 some_check       the evidence behind one decision

The grader logs in over SSH (your keys or ssh-agent, --identity, or a password from
--password-env), inspects the VM from the inside with the lab's testinfra checks, probes it
from the outside (port scans, service greetings and logins), and scores the results with the
lab's rubric. Host keys are trusted on first use and kept in the grader's own known-hosts
file; a changed host key refuses to grade until you accept it for that host
(--accept-changed-host-key HOST).
"""

EPILOG = """\
ROSTER: a CSV file with a header row; columns student and host are required; port, user,
identity (a key file, relative to the roster) and password_env (an environment variable's
name) override the options of the same name for that student; any other column is a rubric
variable. Each student's report goes to DIR/<student>.json, with the evidence archive of what
the VM answered (DIR/<student>.evidence.json.gz, for `grade regrade`), and the class to
DIR/summary.csv and DIR/index.html (DIR: --out, default reports/<lab>-<time>/). Ctrl-C stops
within seconds: the gradings that finished are kept, and --resume grades the rest.

Exit status with --host or --local: 0 every check passed, 1 graded with lost marks, 2 bad usage
or input, 3 the host could not be graded (unreachable, login refused, host key changed), 4 a bug
in the grader. With --roster: 0 every student graded, 2 bad input, 3 at least one student could
not be graded, 130 interrupted.

Subcommands (grade SUBCOMMAND --help for each): rubric, labs, bundle, export, merge, regrade,
show, course, book, sim, prove.
"""

#: The grading options' values when they are not given.
DEFAULTS: dict[str, Any] = {
    "host": None,
    "local": False,
    "student_view": None,
    "roster": None,
    "workers": 32,
    "shard": None,
    "resume": False,
    "port": 22,
    "user": "root",
    "sudo": False,
    "identity": None,
    "password_env": None,
    "ask_password": False,
    "rubric_path": None,
    "lab": None,
    "student": None,
    "variables": [],
    "var_env": [],
    "fmt": "text",
    "brief": False,
    "evidence": None,
    "only": [],
    "ignore_columns": [],
    "out": None,
    "known_hosts": None,  # filled from GRADER_KNOWN_HOSTS or the user's config folder
    "accept_changed": [],
    "connect_timeout": 5.0,
    "command_timeout": 30.0,
    "host_timeout": 300.0,
    "reply_timeout": 15.0,
    "evidence_limit": 32,  # MiB
    "no_prefetch": False,
    "cache_dir": None,  # filled from GRADER_CACHE_DIR or the user's cache folder
    "color": "auto",
    "traceback": False,
}

#: Top-level options every subcommand takes as well.
COMMON = frozenset({"color", "traceback"})


class Given(argparse.Namespace):
    """The options given (with the defaults of those that were not): ``given.host``. An option
    a command does not have, or one of a subcommand that was not given, is None."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


class UsageError(InputError):
    """The command line itself is wrong (an unknown option, a missing value ...)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised (and reported by ``core`` in one place), not
    printed and exited on the spot."""

    subcommands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def at_least(minimum: float, kind: Callable[[str], Any] = float) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text}: must be at least {minimum:g}")
        return value

    return convert


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def _formatter(prog: str) -> argparse.HelpFormatter:
    width = min(os.get_terminal_size().columns if os.isatty(1) else 100, 100)
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=width)


def _grading_options(
    parser: argparse.ArgumentParser, course: bool = False, student: bool = False
) -> None:
    """The grading options; a ``student`` (the self-check bundle) gets only those a student
    checking their own VM uses."""
    add = parser.add_argument
    if not student:
        what = parser.add_argument_group("what to grade (give one)")
        what.add_argument("--host", metavar="HOST", help="The VM to grade: a host name or address.")
        what.add_argument(
            "--roster",
            type=Path,
            metavar="CSV",
            help="Grade every student of a roster instead (see ROSTER below).",
        )
        what.add_argument(
            "--local",
            action="store_true",
            help="Grade this machine, without SSH (a student checking their own VM). Run as root "
            "to grade everything.",
        )
    lab = parser.add_argument_group("the lab")
    if not student:
        _lab_options(lab, "Rubric to grade with")
        if course:
            lab.add_argument(
                "--student",
                dest="course_students",
                action="append",
                metavar="ID",
                help="Grade this student of the roster only (repeatable); the others' marks are "
                "left as they are.",
            )
        else:
            lab.add_argument(
                "--student",
                metavar="ID",
                help="With --host or --local: whose VM this is. The report names them, and a "
                "rubric's per-student variables (a zone, a port) are theirs.",
            )
    lab.add_argument(
        "--var",
        dest="variables",
        action="append",
        metavar="NAME=VALUE",
        help="Set a rubric variable. Repeatable. For a secret, prefer --var-env.",
    )
    lab.add_argument(
        "--var-env",
        dest="var_env",
        action="append",
        metavar="NAME=ENVVAR",
        help="Set a rubric variable from an environment variable, so that its value never "
        "appears on a command line or in shell history. Repeatable.",
    )
    if not student:
        _connection_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        help="text: a table for people (default); json: the JSON report; html: a "
        "self-contained page; md: Markdown for feedback; junit: JUnit XML; gradescope: "
        "Gradescope's results.json."
        + ("" if student else " (A roster run writes all of them to its folder.)"),
    )
    out.add_argument(
        "--brief",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Text: only the score and what lost marks, what to fix first (no table of every "
        "check).",
    )
    out.add_argument(
        "--evidence",
        action="store_true",
        default=argparse.SUPPRESS,
        help="Text: under each lost mark, the files, commands and probes it was decided on "
        + ("(left out otherwise)." if student else "(the default, except in a student's view)."),
    )
    lab.add_argument(
        "--only",
        action="append",
        metavar="CHECK",
        default=argparse.SUPPRESS,
        help="Run only this check (and the checks it depends on), e.g. to see one fix work; "
        "repeat for more. The score is then over those checks.",
    )
    out.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="Also write the JSON report and the evidence archive to DIR"
        + ("." if student else " (with --roster: the run's folder)."),
    )
    if not student:
        view = out.add_mutually_exclusive_group()
        view.add_argument(
            "--student-view",
            dest="student_view",
            action="store_true",
            default=argparse.SUPPRESS,
            help="Hidden rubric items are only counted; the score is over the visible ones "
            "(the default with --local).",
        )
        view.add_argument(
            "--instructor-view",
            dest="student_view",
            action="store_false",
            default=argparse.SUPPRESS,
            help="Everything, hidden items included (the default with --host).",
        )
    _color_option(out)
    add("--traceback", action="store_true", help="Show the Python traceback of a grader bug.")
    if not student:
        cls = parser.add_argument_group("a class (with --roster)")
        cls.add_argument(
            "--workers",
            type=at_least(1, int),
            metavar="N",
            help="How many hosts are graded at once (default 32).",
        )
        cls.add_argument(
            "--shard",
            metavar="K/N",
            help="Grade only the Kth of N slices of the roster (one job of a CI matrix or a Slurm "
            "array); `grade merge` combines the slices' folders.",
        )
        _ignore_column_option(cls, argparse.SUPPRESS)
        cls.add_argument(
            "--resume",
            action="store_true",
            help="With --out: keep the students whose report in DIR is graded with this same "
            "rubric, and grade the others.",
        )
        speed = parser.add_argument_group("speed")
        speed.add_argument(
            "--no-prefetch",
            action="store_true",
            help="Run every command of the checks on its own round trip (slower; the marks are "
            "the same). By default the commands the checks are known to ask run in one round trip.",
        )
        speed.add_argument(
            "--cache-dir",
            type=Path,
            metavar="DIR",
            help="Where the grader keeps what it learned about a rubric's commands (env "
            "GRADER_CACHE_DIR; default ~/.cache/lab-grader).",
        )


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """How to reach a VM over SSH, and the time limits of grading it."""
    ssh = parser.add_argument_group("connecting")
    ssh.add_argument("--port", type=port_number, help="SSH port (default 22).")
    ssh.add_argument(
        "--user",
        help="SSH user (default root: the checks look where only root may).",
    )
    ssh.add_argument(
        "--sudo",
        action="store_true",
        help="Run every command on the VM with sudo -n, for a --user who is not root (stock "
        "sshd lets root log in with a key only: with a password, log in as a user who may "
        "sudo without one).",
    )
    ssh.add_argument(
        "--identity",
        type=Path,
        metavar="KEYFILE",
        help="Private key to log in with (default: your SSH keys and ssh-agent).",
    )
    ssh.add_argument(
        "--password-env",
        metavar="VAR",
        help="Name of an environment variable holding the SSH password (so the password never "
        "appears on a command line). The grader warns when one password would go to several "
        "hosts.",
    )
    ssh.add_argument(
        "--ask-password",
        action="store_true",
        help="Ask for the SSH password on the terminal (not echoed) instead of reading it "
        "from an environment variable.",
    )
    ssh.add_argument(
        "--known-hosts",
        type=Path,
        metavar="FILE",
        help="The grader's known-hosts file (env GRADER_KNOWN_HOSTS; default "
        "~/.config/lab-grader/known_hosts).",
    )
    ssh.add_argument(
        "--accept-changed-host-key",
        dest="accept_changed",
        action="append",
        nargs="?",
        const="",
        metavar="HOST",
        help="Accept and store a host key that differs from the stored one, for HOST "
        "(repeatable; with --host, HOST may be left out). The report records that the key was "
        "accepted as changed.",
    )
    limits = parser.add_argument_group("time limits (seconds)")
    limits.add_argument(
        "--connect-timeout",
        type=at_least(0.1),
        metavar="S",
        help="For each of TCP connect, SSH greeting, login (default 5).",
    )
    limits.add_argument(
        "--command-timeout",
        type=at_least(0.1),
        metavar="S",
        help="One command on the VM (default 30); past it that check is an error.",
    )
    limits.add_argument(
        "--reply-timeout",
        type=at_least(0.1),
        metavar="S",
        help="A whole conversation with a service when probing from outside (default 15).",
    )
    limits.add_argument(
        "--host-timeout",
        type=at_least(1),
        metavar="S",
        help="The whole grading of one host, commands and probes included (default 300); what "
        "it leaves no time for is an error, so one broken VM never holds up a class.",
    )
    parser.add_argument_group("memory").add_argument(
        "--evidence-limit",
        type=at_least(1, int),
        metavar="MIB",
        help="What one VM's answers may hold in the grader's memory, in MiB (default 32; 8 of "
        "one command); a check that needs more is an error saying so, not a lost mark.",
    )


def _lab_options(group: Any, rubric_help: str) -> None:
    """--lab NAME and --rubric PATH: which lab (default: the built-in one)."""
    group.add_argument(
        "--lab",
        metavar="NAME",
        help="The lab pack to use, by name (grade labs lists them; default: the built-in lab).",
    )
    group.add_argument(
        "--rubric",
        dest="rubric_path",
        type=Path,
        metavar="PATH",
        help=f"{rubric_help}: a lab's rubric.toml, next to its checks folder.",
    )


def _color_option(group: Any) -> None:
    group.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        help="Colour on the terminal: auto (default: when writing to a terminal and NO_COLOR "
        "is not set), always or never.",
    )


def _sim_network_options(parser: argparse.ArgumentParser) -> None:
    """Where the simulated VMs boot: a network and the prefix of its names (grader.sim.vm)."""
    group = parser.add_argument_group("the simulator's network")
    group.add_argument(
        "--sim-network", metavar="CIDR",
        help="The simulated VMs' network: a /24 inside 198.18.0.0/15, never routed (default: "
        "198.18.0.0/24, or 198.18.N.0/24 with GRADER_SIM_NET=N). One simulator runs on a "
        "network at a time.",
    )  # fmt: skip
    group.add_argument(
        "--sim-prefix", metavar="NAME",
        help="The prefix of the simulator's bridge, links and namespaces: four characters, a-z "
        "then a-z or 0-9 (default: the network's own, lsim for 198.18.0.0/24).",
    )  # fmt: skip


def _new_lab_parser(sub: Callable[[str, str, str], argparse.ArgumentParser]) -> Any:
    made = sub(
        "new-lab",
        "make a new lab pack that runs as made",
        "Make a new lab pack in DIR, which grades, proves and checks its expected verdicts as "
        "it is: rubric.toml (two sections, a dependency, hints, a variable, a path), checks/ "
        "(a check from inside the VM, one from outside, one on its processes), scenarios.py "
        "(the lab done right and the VM as handed out, for the simulator), expected.toml (the "
        "verdicts expected of each VM) and handout.md. Then edit it: the lab author's guide "
        "(docs/guide) takes it from there.",
    )
    made.add_argument("directory", type=Path, metavar="DIR", help="A new folder (or an empty one).")
    made.add_argument("--title", metavar="T", help="The lab's title (default: from DIR's name).")
    return made


def _subcommands(parser: Parser) -> None:
    commands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)

    def sub(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=description,
            formatter_class=_formatter,
            argument_default=argparse.SUPPRESS,
        )

    rubric = sub(
        "rubric",
        "check a rubric and show its items",
        "Check a rubric (and its checks) and show its items and points total (default: the "
        "built-in lab's rubric).",
    )
    rubric.add_argument("path", nargs="?", type=Path, default=None, help="The rubric file.")
    _lab_options(rubric, "The same as PATH")
    rubric.add_argument(
        "--student-copy",
        action="store_true",
        default=False,
        help="Write the rubric without its hidden items (comments kept), to hand out.",
    )
    rubric.add_argument(
        "--output",
        "-o",
        type=Path,
        default=None,
        help="With --student-copy: write it to this file instead of stdout.",
    )
    rubric.add_argument(
        "--copy",
        type=Path,
        default=None,
        metavar="DIR",
        help="Write an editable copy of the lab (its rubric and its checks folder) to DIR, "
        "which grades as it is (grade --rubric DIR/rubric.toml).",
    )

    export = sub(
        "export",
        "a gradebook import file (Moodle, Canvas)",
        "Write a gradebook import file (CSV, to stdout) from a roster run's folder. Students "
        "who could not be graded are left empty, never 0; a student whose grading could not "
        "check everything is refused by name, not exported short (--include-incomplete).",
    )
    export.add_argument("directory", type=Path, help="A roster run's folder.")
    export.add_argument(
        "--lms", choices=("moodle", "canvas"), required=True, help="The gradebook to import into."
    )
    export.add_argument(
        "--id-column",
        default=None,
        metavar="NAME",
        help="Header of the column holding the roster's student ids (default: moodle "
        "'ID number', canvas 'SIS User ID').",
    )
    export.add_argument(
        "--grade-column",
        default=None,
        metavar="NAME",
        help="Header of the grade column (default: the rubric's title).",
    )
    export.add_argument(
        "--no-feedback",
        dest="feedback",
        action="store_false",
        default=True,
        help="Moodle: leave out the Feedback column with each student's lost marks.",
    )
    export.add_argument(
        "--include-incomplete",
        action="store_true",
        default=False,
        help="Export the students whose grading could not check every check, with the score "
        "over what was checked (by default they are refused, named: grade them again).",
    )

    merge = sub(
        "merge",
        "combine the folders of roster shards",
        "Combine the folders of roster shards (grade --roster --shard K/N) into one class "
        "folder: every student's report, the summary, the overview and the exports, with clones "
        "flagged across shards. Exit status 0 every student graded, 3 some not.",
    )
    merge.add_argument("directories", nargs="+", type=Path, metavar="DIR", help="Shard folders.")
    merge.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="The folder of the whole class."
    )
    _lab_options(merge, "The rubric the shards graded with (default: the one they record)")

    regrade = sub(
        "regrade",
        "re-mark a graded folder without its VMs",
        "Re-mark a graded folder (a roster run's, or --host --out's) from the evidence "
        "archives recorded at grading (<student>.evidence.json.gz), without the VMs.\n\n"
        "The checks run again against what each VM answered then, with the rubric given now: "
        "new points, hints, dependencies and visibility apply. A check that asks for something "
        'the VM was never asked is an error ("needs the live VM"), never a guess. A student '
        "who was not graded stays not graded; an archive that is missing, changed after "
        "grading or not the one the report was made from is refused, and that student is "
        "reported as not regraded. Exit status 0 every student regraded, 2 bad input, 3 some "
        "not.",
    )
    regrade.add_argument("directory", type=Path, help="The graded folder (never written to).")
    _lab_options(regrade, "The rubric to mark with now (default: the one the folder records)")
    regrade.add_argument(
        "--out",
        type=Path,
        metavar="DIR2",
        help="Where the new reports, summary and exports go (default: DIRECTORY-regraded-<time>).",
    )
    regrade.add_argument(
        "--var",
        dest="variables_after",
        action="append",
        metavar="NAME=VALUE",
        help="Set a rubric variable for every student (default: the values used at grading).",
    )
    regrade.add_argument(
        "--var-env",
        dest="var_env_after",
        action="append",
        metavar="NAME=ENVVAR",
        help="Set a rubric variable from an environment variable (a secret given at grading, "
        "say, to replay answers the archive keeps it out of).",
    )
    regrade.add_argument(
        "--password-env",
        metavar="VAR",
        help="The SSH password used at grading, from an environment variable: needed only to "
        "replay an answer in which the VM showed that password (the archive keeps it out).",
    )
    regrade.add_argument(
        "--roster",
        type=Path,
        metavar="CSV",
        help="The roster the class was graded with: each student's variables and password "
        "(password_env) as at grading, for answers that held a secret (the archive keeps "
        "secrets out). With it, a regrade with the same rubric gives exactly the live marks.",
    )
    _ignore_column_option(regrade)
    _course_where(regrade)

    show = sub(
        "show",
        "the evidence behind one decision",
        "Print the decision on one check of one student and the evidence behind it, whole, as "
        "the evidence archive recorded it (for settling a dispute). STUDENT is a student id or "
        "a host. Secrets and private keys are masked, and the output says where.",
    )
    show.add_argument("directory", type=Path, help="A graded folder.")
    show.add_argument("student")
    show.add_argument("check")
    show.add_argument(
        "--all", dest="show_all", action="store_true", default=False, help="Every line."
    )
    show.add_argument(
        "--lines",
        type=at_least(1, int),
        default=60,
        help="Lines shown of each output (default 60).",
    )
    bundle = sub(
        "bundle",
        "a one-file self-check for students to run on their VM",
        "Write a self-check students copy onto their lab VM and run with its own python3 "
        "(3.9 or newer), offline, nothing to install: `python3 FILE` then behaves as "
        "`grade --local` with this lab (the same options and output). It holds the student "
        "copy of the rubric (hidden items left out) and the lab's checks. With --student (or a "
        "--roster, one file per student), each student's variant is written in; no secret "
        "ever is.",
    )
    _lab_options(bundle, "The lab to bundle")
    bundle.add_argument(
        "--output",
        "-o",
        type=Path,
        required=True,
        metavar="FILE",
        help="Where to write it (with --roster: a folder, one <student>.pyz each).",
    )
    bundle.add_argument("--student", metavar="ID", help="Make it for one student.")
    bundle.add_argument(
        "--roster", type=Path, metavar="CSV", help="Make one for each student of a roster."
    )
    _ignore_column_option(bundle)
    bundle.add_argument(
        "--var-env",
        dest="var_env_after",
        action="append",
        metavar="NAME=ENVVAR",
        help="A variable the variants are derived from (a course secret): never written in.",
    )
    labs = sub(
        "labs",
        "the lab packs the grader can see",
        "List the lab packs the grader can see, by name (for --lab NAME): the built-in lab, "
        "the packs in the folders of GRADER_LABS, in ./labs, and those that come with the "
        "grader.",
    )
    simulated = sub(
        "sim",
        "simulated student VMs of a lab, from its scenarios (needs root)",
        "Boot a lab pack's simulated VMs (Linux namespaces on an isolated bridge, "
        "198.18.0.0/24, running the lab's real daemons), each built as one of the pack's "
        "scenarios says. demo: boot them, grade each with `grade --host`, compare with what "
        "the scenario states, remove them. up: boot them and leave them running, with the "
        "commands to grade or log in to one. down: remove what `up` left. class N: grade N "
        "VMs (the scenarios in turn) as a class with --roster.",
    )
    simulated.add_argument("action", choices=("demo", "up", "down", "class"), help="What to do.")
    simulated.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO",
        help="Which scenarios (default: all of the pack's), before any option: grade sim up "
        "complete untouched --lab lab7; for class, how many VMs.",
    )  # fmt: skip
    _lab_options(simulated, "The lab whose scenarios to boot")
    simulated.add_argument("--show", metavar="SCENARIO", help="demo: show this VM's full report.")
    simulated.add_argument("--out", type=Path, metavar="DIR", help="Where reports go.")
    _sim_network_options(simulated)
    made = _new_lab_parser(sub)
    proving = sub(
        "prove",
        "do a lab's checks tell right from wrong? grade its scenarios (needs root), or mutants "
        "of a VM of yours (--mutants --host)",
        "Boot every scenario of a lab pack (the lab done right, as handed out, and each "
        "common mistake), grade them as a class, and check each check's verdict against what "
        "the scenario states. A check that passes in no scenario, or fails in none, is "
        "reported: it cannot tell a lab done right from one not done. Exit status 0 when "
        "the checks prove the lab, 1 when not.",
    )
    _lab_options(proving, "The lab to prove")
    proving.add_argument(
        "--format", dest="fmt", choices=("text", "json"), default="text",
        help="json: the problems and every scenario's verdicts (with --mutants: the kill "
        "matrix), on stdout.",
    )  # fmt: skip
    proving.add_argument(
        "--mutants", action="store_true",
        help="Prove each check fails when it should: grade the pack's reference scenario (the "
        "lab done right: it must get full marks), then mutants of it, each one small change "
        "to what the checks read (a file removed, emptied, opened to all or made a link; a "
        "line commented out; a daemon stopped; and the kinds a pack gives for its files' "
        "syntax, such as a setting flipped). A check that no mutant "
        "makes fail is named. Exit status 0 when every check is killed.",
    )  # fmt: skip
    proving.add_argument(
        "--only", action="append", metavar="CHECK", default=[],
        help="--mutants: only the mutants of what this check reads, and only this check must "
        "be killed; repeat for more.",
    )  # fmt: skip
    proving.add_argument(
        "--max", dest="max_mutants", type=at_least(1, int), metavar="N",
        help="--mutants: grade at most N mutants (default: all).",
    )  # fmt: skip
    proving.add_argument(
        "--allow", action="append", metavar="PATH", default=[],
        help="--mutants: let mutants change the files under PATH though the grader's own login "
        "reads them (a throwaway VM's owner allowing more, e.g. /root/.ssh): each such change "
        "is graded only while a second login still opens with it, and the proof's report "
        "says what was allowed; repeat for more.",
    )  # fmt: skip
    proving.add_argument(
        "--expect", nargs="?", const=Path(), type=Path, metavar="FILE",
        help="Grade each VM an expected-verdicts file names (default: the pack's "
        "expected.toml): its [[vm]] tables, each a host (reached with the connection options "
        "below) or a scenario (booted on the simulator), and the verdict expected of each "
        "check. Say where a verdict differs; exit status 0 when none does, 1 otherwise.",
    )  # fmt: skip
    _sim_network_options(proving)
    live = proving.add_argument_group(
        "live mode (--mutants on a VM of your own: never a student's)",
        "Prove the checks on a throwaway VM you prepared as the lab done right, instead of the "
        "pack's simulated reference: each mutant is applied over SSH, graded and undone, and "
        "the VM is graded again at the end (it must give the same verdicts). No root needed, "
        "no scenarios. A mutant that would cut the grader's own way in (sshd stopped, a file "
        "a login reads) or that has no undo (a daemon stopped) is not applied: the matrix "
        "says which checks could therefore not be proved live.",
    )
    live.add_argument("--host", metavar="HOST", help="The throwaway VM, done right.")
    live.add_argument(
        "--student", metavar="ID",
        help="Whose variant the VM is (a rubric's per-student variables).",
    )  # fmt: skip
    live.add_argument(
        "--var", dest="variables_after", action="append", metavar="NAME=VALUE",
        help="Set a rubric variable (repeatable).",
    )  # fmt: skip
    live.add_argument(
        "--var-env", dest="var_env_after", action="append", metavar="NAME=ENVVAR",
        help="Set a rubric variable from an environment variable (repeatable).",
    )  # fmt: skip
    _connection_options(proving)
    course = _course_parsers(sub)
    book = _book_parsers(sub)
    serve, worker = _serve_parsers(sub)
    parser.subcommands = dict(commands.choices)
    for each in (rubric, export, merge, regrade, show, labs, bundle, simulated, proving, course,
                 book, serve, worker, made):  # fmt: skip
        _color_option(each)
        each.add_argument("--traceback", action="store_true", help="Show a grader bug's traceback.")


def _course_where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--course",
        type=Path,
        metavar="PATH",
        help="The course's course.toml or its folder (env GRADER_COURSE; default: the nearest "
        "course.toml in this folder or one above it).",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="The gradebook: postgresql://user@host/name for one shared by several machines "
        "(env GRADER_DB; default: course.toml's db, else gradebook.sqlite in the course "
        "folder).",
    )
    parser.add_argument(
        "--by",
        metavar="NAME",
        help="Who is acting, as the book records it (default: the user who ran sudo, else "
        "your login name).",
    )


def _actions(
    parent: argparse.ArgumentParser, dest: str
) -> Callable[[str, str, str], argparse.ArgumentParser]:
    """A subcommand's own actions (``grade course run``): one is required. The parent keeps
    them as its ``subcommands``, whose options core accepts as the subcommand's own."""
    actions = parent.add_subparsers(dest=dest, metavar="ACTION", parser_class=Parser)
    actions.required = True
    parent.subcommands = actions.choices  # type: ignore[attr-defined]

    def add(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return actions.add_parser(
            name, help=summary, description=description, formatter_class=_formatter,
            argument_default=argparse.SUPPRESS,
        )  # fmt: skip

    return add


def _course_parsers(sub: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    course = sub(
        "course",
        "grade a course's lab and record it in the gradebook",
        "Grade a lab of the course in course.toml and record it in the course's gradebook "
        "(see `grade book`). The course names the roster, the lab and where the run's folder "
        "goes (runs/<lab>-<time>/ in the course folder); the connection, time-limit and speed "
        "options are grade --roster's. The clock the course commands see is GRADER_NOW when "
        "set (an ISO 8601 time with its offset, for tests and dry runs).",
    )
    action = _actions(course, "course_command")
    run = action(
        "run",
        "grade every student of the roster for a lab now, and record it",
        "Grade every student of the course's roster for LAB now (as grade --roster does) and "
        "record the run in the gradebook.",
    )
    run.add_argument("lab_id", metavar="LAB", help="A lab id of course.toml.")
    due = action(
        "due",
        "grade the students whose due time has passed, once each (for cron)",
        "Grade exactly the students whose due time (their extension, if any) has passed "
        "since their last recorded grading of the lab, each once, and record them: a "
        "student's mark is then taken from their VM as it was within minutes of their own "
        "deadline. Meant for a cron line every few minutes; keep each lab's grace_minutes "
        "longer than that interval. A student who could not be reached is tried again at the "
        "next run; so is one whose mark is incomplete (a check the grader could not run at the "
        "grading that counts), up to 3 times. One grading of a course at a time: a second "
        "one waits for the first (or, with --no-wait, says who holds the course and exits 5).",
    )
    for each in (run, due):
        _course_where(each)
        _grading_options(each, course=True)
        each.add_argument(
            "--batch", metavar="NAME",
            help="With --shard: the name the shards of one class grading share (default: "
            "slurm-$SLURM_ARRAY_JOB_ID in a Slurm array, github-$GITHUB_RUN_ID-"
            "$GITHUB_RUN_ATTEMPT in a GitHub Actions matrix). Shards of one batch grade "
            "together and the book records them as one grading of the class; without a batch "
            "each shard waits for the course in turn.",
        )  # fmt: skip
    script = action(
        "shard-script",
        "print the job script that grades a lab in shards (a Slurm array)",
        "Print the sbatch script that grades LAB in N shards, one Slurm array task each "
        "(`grade course run LAB --shard K/N`, all of one batch): each records its slice into "
        "the course's book as it finishes. The book's address is not written in it: its "
        "tasks get the environment variables its --export line names from where sbatch runs "
        "(export GRADER_DB=postgresql://... first, or let course.toml name it; the book's "
        "password by ~/.pgpass or a service file), and no others. Save it and run `sbatch "
        "FILE`; `squeue` shows the tasks, "
        "and each task's output goes to slurm-JOB_TASK.out in the course folder. A task that "
        "fails leaves its students ungraded, never marked 0: `grade course run LAB --student "
        "ID` (or the next `grade course due`) picks them up.",
    )
    script.add_argument(
        "lab_id", metavar="LAB", nargs="?", help="A lab id of course.toml (none with --due)."
    )
    _course_where(script)
    script.add_argument(
        "--slurm", action="store_true", default=False,
        help="For Slurm (the job runner this prints for; required, so that another can come).",
    )  # fmt: skip
    script.add_argument(
        "--shards", type=at_least(1, int), metavar="N", default=4,
        help="How many shards, one array task each (default 4).",
    )  # fmt: skip
    script.add_argument(
        "--due", action="store_true", default=False,
        help="Each task runs `grade course due --shard K/N` (every lab's students whose due "
        "time has passed) instead of `course run LAB`.",
    )  # fmt: skip
    regrade = action(
        "regrade",
        "mark every recorded grading of a lab again with its current rubric",
        "After the lab's rubric changed: regrade every recorded grading of LAB from its "
        "evidence archives (no VM needed) with the lab's current rubric, and record each as "
        "the regrade of its run. Until then `grade book show` marks the grades on an older "
        "rubric.",
    )
    regrade.add_argument("lab_id", metavar="LAB", help="A lab id of course.toml.")
    _course_where(regrade)
    members = action(
        "members",
        "the LMS course's members beside the roster (who is missing, whose email or id differ)",
        "Read the members of the LMS course (LTI Names and Role Provisioning: course.toml's "
        "[[lti]], and a launch from that LMS course first) and show them beside the roster: "
        "each member's roster student, who is missing from either, whose email or LMS id "
        "differ. The roster stays what it is (hosts come from it, not from the LMS).",
    )
    members.add_argument("--from-lms", dest="from_lms", action="store_true", default=False,
                         help="From the LMS (required).")  # fmt: skip
    _course_where(members)
    for each in (run, due, regrade):
        each.add_argument(
            "--no-wait",
            action="store_true",
            default=False,
            help="If another grading of the course is under way, say who holds it and exit 5 "
            "instead of waiting for it.",
        )
    return course


def _serve_parsers(
    sub: Callable[..., argparse.ArgumentParser],
) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    serve = sub(
        "serve",
        "serve the course on the web: students and staff sign in, see marks, ask for gradings",
        "Serve the course (course.toml, found as the other course commands find it) over "
        "HTTP: students see their marks and why and ask for a grading of their VM; staff see "
        "the class, override, release feedback and grade. Behind a TLS reverse proxy for "
        "real use (--public-url https://...: the README says how). Sign-in is by single-use "
        "links: `grade serve link STUDENT` (or --staff NAME, or --roster). --graders workers "
        "grade what is asked for, with the connection options below (as grade course run). "
        "Ctrl-C or SIGTERM stops it: gradings under way end first, none is lost.",
    )
    _course_where(serve)
    serve.add_argument(
        "--listen", metavar="ADDR:PORT", default="127.0.0.1:8080",
        help="Where to listen (default 127.0.0.1:8080: this machine only, for a proxy).",
    )  # fmt: skip
    serve.add_argument(
        "--public-url", metavar="URL",
        help="The address people use (default http://LISTEN): sign-in links name it, and with "
        "https:// the session cookie is sent over TLS only.",
    )  # fmt: skip
    serve.add_argument(
        "--graders", type=at_least(0, int), metavar="N", default=2,
        help="Gradings at once in this process (default 2; 0: none, grade workers do them).",
    )  # fmt: skip
    _connection_options(serve)
    links = serve.add_subparsers(dest="serve_command", metavar="ACTION", parser_class=Parser)
    links.required = False
    serve.subcommands = links.choices  # type: ignore[attr-defined]
    link = links.add_parser(
        "link", help="print a single-use sign-in link (a student's, or --staff NAME's)",
        description="Print a single-use sign-in address for a student of the roster (STUDENT), "
        "a member of staff (--staff NAME, named in course.toml's staff), or every student "
        "(--roster --out FILE, a CSV to mail). A link is stored hashed, signs in once and "
        "expires (--expires; 72h for students, 1h for staff by default).",
        formatter_class=_formatter, argument_default=argparse.SUPPRESS,
    )  # fmt: skip
    link.add_argument("student", metavar="STUDENT", nargs="?", help="A student of the roster.")
    link.add_argument("--staff", metavar="NAME", help="A member of staff instead.")
    link.add_argument(
        "--roster", dest="link_roster", action="store_true", default=False,
        help="A link for every student of the roster (with --out).",
    )  # fmt: skip
    link.add_argument(
        "--out", dest="link_out", type=Path, metavar="FILE",
        help="With --roster: the CSV file to write (student, address, expires).",
    )  # fmt: skip
    link.add_argument(
        "--expires", metavar="SPAN", help="How long the link lasts: 30m, 72h, 7d (default 72h "
        "for a student, 1h for staff).",
    )  # fmt: skip
    link.add_argument("--public-url", dest="link_public_url", metavar="URL",
                      help="The address people use (as grade serve's).")  # fmt: skip
    _course_where(link)
    keys = links.add_parser(
        "lti-keys", help="make the course's LTI 1.3 signing key (or a new one: --rotate)",
        description="Make the RSA key the course signs with as an LTI 1.3 tool (its deep-link "
        "responses, its requests for the LMS's services), in the course folder's lti-keys/ "
        "(0600; it never leaves the folder). The tool publishes its public half at /lti/jwks. "
        "--rotate makes a new one: the one before stays published for a day, then the next "
        "lti-keys deletes it.",
        formatter_class=_formatter, argument_default=argparse.SUPPRESS,
    )  # fmt: skip
    keys.add_argument("--rotate", action="store_true", default=False,
                      help="A new key; the one before retired.")  # fmt: skip
    _course_where(keys)
    config = links.add_parser(
        "lti-config", help="print what to paste into an LMS to register the course as a tool",
        description="Print what to paste into the LMS (--lms) to register the course as an LTI "
        "1.3 tool: the tool, login and redirect addresses, its public key set, the services "
        "to enable (for Canvas, the developer key's JSON). The LMS then gives the values of "
        "course.toml's [[lti]] table (see the README's \"From the LMS\").",
        formatter_class=_formatter, argument_default=argparse.SUPPRESS,
    )  # fmt: skip
    config.add_argument("--lms", dest="lti_lms", choices=("moodle", "canvas", "brightspace"),
                        required=True, help="The LMS.")  # fmt: skip
    config.add_argument("--public-url", dest="link_public_url", metavar="URL",
                        help="The address people use (as grade serve's).")  # fmt: skip
    _course_where(config)
    worker = sub(
        "worker",
        "grade what is asked for on the web, from the book's queue (PostgreSQL)",
        "Take gradings asked for on the web from the course's book and grade them, as grade "
        "serve's --graders do, on this machine: with the book on PostgreSQL, workers on "
        "several machines share one queue, each request graded exactly once. Ctrl-C or "
        "SIGTERM stops it after the gradings under way.",
    )
    _course_where(worker)
    worker.add_argument(
        "--graders", type=at_least(1, int), metavar="N", default=2,
        help="Gradings at once (default 2).",
    )  # fmt: skip
    _connection_options(worker)
    return serve, worker


def _book_parsers(sub: Callable[..., argparse.ArgumentParser]) -> argparse.ArgumentParser:
    book = sub(
        "book",
        "the course's gradebook: marks, history, overrides, imports, exports",
        "The course's gradebook: every grading of its labs, with marks as of each deadline "
        "(the lab's policy and late penalty, a student's extension) and the overrides a TA "
        "made, each with who, when and why.",
    )
    add = _actions(book, "book_command")

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        made = add(name, summary, summary[0].upper() + summary[1:] + ".")
        _course_where(made)
        return made

    show = action("show", "one row per student, a column per lab: the final marks")
    show.add_argument("--lab", dest="book_lab", metavar="LAB", help="One lab only.")
    show.add_argument("--format", dest="book_format", choices=("text", "csv", "json"))
    history = action("history", "every run, regrade, drop and override of a student")
    history.add_argument("student")
    history.add_argument("--lab", dest="book_lab", metavar="LAB", help="One lab only.")
    history.add_argument("--format", dest="book_format", choices=("text", "json"))
    explain = action(
        "explain",
        "what a student's mark for a lab is and why: the grading that counts, each check's "
        "points, overrides, what is incomplete",
    )
    explain.add_argument("student")
    explain.add_argument("book_lab", metavar="LAB")
    explain.add_argument("--format", dest="book_format", choices=("text", "json"))
    override = action("override", "set a check's points or a lab's mark for a student")
    withdraw = action("withdraw", "take back the override in force, keeping it in the history")
    for each in (override, withdraw):
        each.add_argument("student")
        each.add_argument("book_lab", metavar="LAB")
        each.add_argument("--check", metavar="ID", help="A check (default: the lab's mark).")
        each.add_argument("--reason", required=True, help="Why (kept in the history).")
    values = override.add_mutually_exclusive_group(required=True)
    values.add_argument("--points", type=float, help="The check's points (with --check).")
    values.add_argument("--mark", type=float, help="The lab's final mark.")
    accept = action(
        "accept",
        "count a check decided only after the due time on time, when the fault was the "
        "grader's (kept in the history; --undo takes it back)",
    )
    accept.add_argument("student")
    accept.add_argument("book_lab", metavar="LAB")
    accept.add_argument("--check", metavar="ID", required=True, help="The check decided late.")
    accept.add_argument("--reason", required=True, help="Why (kept in the history).")
    accept.add_argument("--undo", action="store_true", default=False, help="Take it back.")
    drop = action(
        "drop",
        "take a recorded run out of the marks (kept in the book and its history; --undo puts "
        "it back)",
    )
    drop.add_argument("run", type=int, metavar="RUN", help="The run's number (book history).")
    drop.add_argument("--reason", required=True, help="Why (kept in the history).")
    drop.add_argument("--undo", action="store_true", default=False, help="Put it back.")
    imported = action(
        "import",
        "record a graded folder made outside `grade course` (each report checked against the "
        "roster, the lab's rubric and its evidence archive first)",
    )
    imported.add_argument("directory", type=Path, help="A roster run's (or merge's) folder.")
    imported.add_argument("--lab", dest="book_lab", metavar="LAB", required=True)
    imported.add_argument(
        "--trust-unreplayed",
        action="store_true",
        default=False,
        help="Take unsigned reports whose verdicts the book cannot replay (a rubric or checks "
        "it keeps no code of) on your word; needs --reason, kept in the book and shown on the "
        "student's row.",
    )
    imported.add_argument("--reason", help="Why they can be trusted (with --trust-unreplayed).")
    export = action(
        "export",
        "the final marks as an LMS import file, a column per lab (refused while a mark is "
        "incomplete, unless --include-incomplete)",
    )
    export.add_argument("--lms", choices=("moodle", "canvas"), required=True)
    export.add_argument("--output", type=Path, metavar="FILE", help="Default: standard output.")
    export.add_argument(
        "--include-incomplete",
        action="store_true",
        default=False,
        help="Export incomplete marks as they are (a check not checked counts nothing).",
    )
    export.add_argument(
        "--no-feedback",
        dest="feedback",
        action="store_false",
        default=True,
        help="Moodle: leave out the feedback columns.",
    )
    release = action(
        "release",
        "release a lab's feedback to its students (a lab whose feedback is on_release)",
    )
    release.add_argument("book_lab", metavar="LAB")
    page = action("page", "the course page: every lab's marks, who is missing what, late work")
    page.add_argument("--output", type=Path, metavar="FILE", help="Default: course.html.")
    sync = action(
        "sync",
        "send every mark the LMS does not have yet (course.toml's [[lti]]), show what waits "
        "or was refused, and read the LMS's results back to find marks it lost or holds "
        "differently",
    )
    sync.add_argument("--resend", action="store_true", default=False,
                      help="Send the book's mark where the LMS holds another, or refused "
                      "it (once the LMS is put right).")  # fmt: skip
    sync.add_argument("--no-read-back", dest="read_back", action="store_false", default=True,
                      help="Do not read the LMS's results back.")  # fmt: skip
    backup = action(
        "backup",
        "a consistent copy of a SQLite gradebook, while it is in use (PostgreSQL: pg_dump)",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="A new file to copy it to.")
    return book


def _ignore_column_option(group: Any, default: Any = None) -> None:
    group.add_argument(
        "--ignore-column",
        dest="ignore_columns",
        action="append",
        metavar="NAME",
        default=[] if default is None else default,
        help="A roster column to leave out (a column of an LMS export the grader does not "
        "know); repeat for more. Name, email, ID number, section and the like are kept anyway.",
    )


STUDENT_DESCRIPTION = """\
Check your own lab VM before you submit it: the checks your instructor will run, run here, on
this VM. Run it as root (su -, or sudo), so that every check can look where it must.

  {prog}
      check everything; what to fix first is at the end
  {prog} --only CHECK
      after a fix, check that one again (and what it needs); CHECK as the table names it
  {prog} --var-env NAME=ENVVAR
      a value the lab asks for (a password), read from an environment variable

Each run says what changed since the one before. Nothing is sent anywhere: the report is
printed here (and written to --out if you ask).
"""

STUDENT_EPILOG = """\
Exit status: 0 every check was checked and passed; 1 a mark is still lost, or a check could not
be checked here (the last line says which, and how to check it); 2 a mistake on the command
line; 4 a bug in the grader.
"""


def student_parser(prog: str) -> Parser:
    """The self-check bundle's command line: the options a student uses, and its own help."""
    parser = Parser(
        prog=prog,
        description=STUDENT_DESCRIPTION.format(prog=prog),
        epilog=STUDENT_EPILOG,
        formatter_class=_formatter,
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"grade, version {__version__}")
    _grading_options(parser, student=True)
    return parser


def build_parser(prog: str = "grade") -> Parser:
    parser = Parser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_formatter,
        argument_default=argparse.SUPPRESS,
        add_help=True,
    )
    parser.add_argument("--version", action="version", version=f"grade, version {__version__}")
    _grading_options(parser)
    _subcommands(parser)
    return parser
