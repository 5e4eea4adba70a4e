"""The ``grade`` command: parse, dispatch, and map every exception to an exit status, in one place.

Exit status: 0 every check passed; 1 graded, some checks did not pass; 2 bad usage, rubric or
other input; 3 the host could not be graded; 4 a bug in the grader (``--traceback`` shows it);
5 another grading of the course holds its lock (``grade course ... --no-wait``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from grader.base.errors import CourseBusy, ExitStatus, InputError
from grader.cli.definition import (
    COMMON,
    DEFAULTS,
    Given,
    Parser,
    UsageError,
    build_parser,
    student_parser,
)
from grader.cli.logs import configure_logging
from grader.report.render.safe import escaped

#: What runs each subcommand (None: grading itself), imported on first use.
COMMANDS = {
    None: "grader.cli.grading:grade",
    "rubric": "grader.cli.folders:rubric",
    "export": "grader.cli.folders:export",
    "merge": "grader.cli.folders:merge",
    "regrade": "grader.cli.folders:regrade",
    "show": "grader.cli.folders:show",
    "labs": "grader.cli.folders:labs",
    "bundle": "grader.cli.folders:bundle",
    "sim": "grader.cli.sim:sim",
    "prove": "grader.cli.sim:prove_command",
    "new-lab": "grader.cli.labauthor:new_lab",
    "course": "grader.cli.course:course",
    "book": "grader.cli.book:book",
    "serve": "grader.cli.serve:serve",
    "worker": "grader.cli.serve:worker",
}
#: Options a subcommand gives a list of, kept apart from the same option given before it.
LISTS = ("variables", "var_env")


def options(parser: Parser, namespace: argparse.Namespace) -> Given:
    """The options given, with the defaults of those that were not. An option given before a
    subcommand that the subcommand does not take is refused by name."""
    given = vars(namespace)
    command = given.pop("command", None)
    if command is not None:
        own = {
            action.dest.removesuffix("_after") for action in _actions(parser.subcommands[command])
        }
        stray = sorted(name for name in given if name in DEFAULTS and name not in own | COMMON)
        if stray:
            flag = "--" + stray[0].replace("_", "-").replace("fmt", "format")
            flag = {"--rubric-path": "--rubric", "--variables": "--var"}.get(flag, flag)
            raise UsageError(
                f"{flag} is not an option of `grade {command}`; it was given before the "
                f"subcommand (see grade {command} --help)"
            )
    for name in LISTS:  # a list given both before and after a subcommand: both count
        before, after = given.pop(name, None), given.pop(f"{name}_after", None)
        given[name] = [*(before or []), *(after or [])]
    return Given(**{**DEFAULTS, **given, "command": command})


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A parser's actions, and those of its own subcommands (``grade course run``)."""
    found = list(parser._actions)
    for nested in getattr(parser, "subcommands", {}).values():
        found += _actions(nested)
    return found


def main(
    argv: Sequence[str] | None = None, prog: str = "grade", self_check: Sequence[str] = ()
) -> int:
    """Run ``grade`` with ``argv`` and return its exit status (tests call this in-process).
    ``self_check``: the options a self-check bundle gives itself (``--local`` ...); the
    student's own ``argv`` is then held to the options a student has, with their own help."""
    args = list(sys.argv[1:] if argv is None else argv)
    show_traceback = "--traceback" in args
    try:
        configure_logging()
        if self_check:
            student_parser(prog).parse_args(args)  # --help, or an error naming what they typed
            args = [*self_check, *args]
        parser = build_parser(prog)
        given = options(parser, parser.parse_args(args))
        module, function = COMMANDS[given.command].split(":")
        handler = getattr(importlib.import_module(module), function)
        return int(handler(given) or 0)
    except SystemExit as e:  # --help, --version
        return int(e.code or 0)
    except KeyboardInterrupt:
        sys.stderr.write("grade: interrupted\n")
        return ExitStatus.INTERRUPTED
    except BrokenPipeError:  # `grade book history S | head`: the reader had enough
        _quiet_stdout()
        return ExitStatus.OK
    except CourseBusy as e:
        sys.stderr.write(f"{prog}: {escaped(str(e))}\n")
        return ExitStatus.BUSY
    except InputError as e:
        sys.stderr.write(f"{prog}: error: {escaped(str(e))}\n")
        return ExitStatus.BAD_INPUT
    except Exception as e:
        if show_traceback:
            raise
        sys.stderr.write(
            f"grade: internal error: {type(e).__name__}: {escaped(str(e))} "
            "(this is a bug in the grader; run again with --traceback to see where)\n"
        )
        return ExitStatus.INTERNAL_ERROR


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def run() -> None:
    sys.exit(main())
