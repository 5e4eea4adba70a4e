"""``grade --host``, ``grade --local`` and ``grade --roster``: grading itself. The options become
one request of grader.actions.grading; what it returns is printed."""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.actions.grading import (
    Connection,
    HostRequest,
    RosterRequest,
    grade_host,
    grade_roster,
)
from grader.base.closest import closest
from grader.base.errors import ExitStatus, InputError
from grader.base.files import write_atomic
from grader.cli.definition import Given, UsageError
from grader.cli.progress import progress_for
from grader.cli.terminal import (
    class_exit_status,
    exit_status,
    sigterm_interrupts,
    to_terminal,
    use_color,
)
from grader.engine.catalog import built_in_rubric, find
from grader.engine.pack import Pack, load_pack
from grader.engine.rubric import Rubric, load_rubric
from grader.report.render import render


def given_variables(args: Given) -> dict[str, str]:
    """The rubric variables of --var NAME=VALUE and --var-env NAME=ENVVAR."""
    found: dict[str, str] = {}
    for value in args.variables or []:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise UsageError(f"--var: expected NAME=VALUE, got {value!r}")
        found[name] = content
    for value in args.var_env or []:
        name, sep, variable = value.partition("=")
        if not sep or not name or not variable:
            raise UsageError(f"--var-env: expected NAME=ENVVAR, got {value!r}")
        if variable not in os.environ:
            raise InputError(f"--var-env {value}: the environment variable {variable} is not set")
        found[name] = os.environ[variable]
    return found


def ssh_password(args: Given) -> str | None:
    if args.ask_password:
        if args.password_env:
            raise UsageError("--ask-password and --password-env both give the password: one")
        if not sys.stdin.isatty():
            raise UsageError("--ask-password needs a terminal to ask on (or use --password-env)")

        who = f"{args.user}@{args.host}" if args.host else "the VMs"
        return getpass.getpass(f"SSH password for {who}: ") or None
    name = args.password_env
    if name is None:
        return None
    password = os.environ.get(name)
    if password is None:
        raise InputError(f"--password-env {name}: the environment variable {name} is not set")
    return password


def _asked(rubric: Rubric, given: Mapping[str, str], args: Given) -> dict[str, str]:
    """A student at a terminal is asked for the secret variables not given (a lab user's password):
    Enter skips, and the checks that need one say so, not counted as lost marks."""
    view = args.student_view if args.student_view is not None else args.local
    if not (view and sys.stdin.isatty() and sys.stderr.isatty()):
        return {}

    found = {}
    keys = {var.key for var in rubric.vars.values() if var.key}  # a course's: never a student's
    for name, var in rubric.vars.items():
        if var.secret and name not in keys and name not in given and not var.default:
            about = var.help or name
            answer = getpass.getpass(f"{about} ({name}; Enter to skip the checks that need it): ")
            if answer:
                found[name] = answer
    return found


def known_hosts_file(args: Given) -> Path:
    if args.known_hosts is not None:
        return Path(args.known_hosts)
    if os.environ.get("GRADER_KNOWN_HOSTS"):
        return Path(os.environ["GRADER_KNOWN_HOSTS"])

    import platformdirs  # lazy: self-check (its bundle has no platformdirs; only SSH needs it)

    return platformdirs.user_config_path("lab-grader") / "known_hosts"


def cache_dir(args: Given) -> Path:
    if args.cache_dir is not None:
        return Path(args.cache_dir)
    if os.environ.get("GRADER_CACHE_DIR"):
        return Path(os.environ["GRADER_CACHE_DIR"])

    import platformdirs  # lazy: self-check (no platformdirs there; a local grading has no plan)

    return platformdirs.user_cache_path("lab-grader")


def rubric_path(args: Given) -> Path | None:
    """The rubric --lab NAME or --rubric PATH names; None when neither is given."""
    if args.lab and args.rubric_path:
        raise UsageError("--lab and --rubric name the lab twice: give one of them")
    if args.lab:
        return find(args.lab)
    return Path(args.rubric_path) if args.rubric_path else None


#: The lab a self-check bundle was made with (grader.cli.selfcheck): it grades with no other
EMBEDDED: Pack | None = None


def the_pack(args: Given, rubric: Path | None = None) -> Pack:
    """The lab to grade with (``rubric``, else --lab or --rubric, else the built-in lab): its
    rubric, and its checks bound to it both ways."""
    if EMBEDDED is not None:
        if args.lab or args.rubric_path:
            raise UsageError(
                "this self-check grades with the lab it was made for: --lab and --rubric do "
                "not apply"
            )
        return EMBEDDED

    if rubric is not None and args.lab:
        raise UsageError("--lab and --rubric name the lab twice: give one of them")
    return load_pack(load_rubric(rubric or rubric_path(args) or built_in_rubric()))


def connection_of(args: Given) -> Connection:
    """How the VMs are reached: the connecting, time-limit and speed options (the password
    read from the environment or asked for; --accept-changed-host-key without a host: --host)."""
    accept = set(args.accept_changed or [])
    if "" in accept:
        if not args.host:
            raise UsageError(
                "--accept-changed-host-key: name the host(s) whose new key you accept "
                "(--accept-changed-host-key HOST, repeatable)"
            )
        accept = (accept - {""}) | {args.host}
    return Connection(
        port=args.port,
        user=args.user,
        sudo=bool(args.sudo),
        identity=args.identity,
        password=ssh_password(args),
        known_hosts=None if args.local else known_hosts_file(args),
        accept_changed=frozenset(accept),
        connect_timeout=args.connect_timeout,
        command_timeout=args.command_timeout,
        reply_timeout=args.reply_timeout,
        host_timeout=args.host_timeout,
        plans=None if args.no_prefetch or args.local else cache_dir(args),
        workers=args.workers,
        evidence_limit=args.evidence_limit,
    )


def grade(args: Given) -> int:
    host, roster, local = args.host, args.roster, args.local
    chosen = [name for name, value in (("--host", host), ("--roster", roster), ("--local", local))
              if value]  # fmt: skip
    if len(chosen) != 1:
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} cannot be combined: give one of them")
        raise UsageError("give one of --host HOST, --roster CSV or --local (see grade --help)")
    if not roster and (args.resume or args.shard):
        raise UsageError("--resume and --shard are for a --roster run")
    if roster and args.student_view:
        raise UsageError("--student-view is for --host and --local")
    if local and (args.password_env or args.identity or args.accept_changed or args.sudo):
        raise UsageError("--local grades this machine without SSH: SSH options do not apply")

    given = given_variables(args)
    pack = the_pack(args)
    if args.only:
        if roster:
            raise UsageError("--only is for --host and --local: a class is graded in full")
        pack = _only(pack, args.only)
    rubric = pack.rubric
    if roster and args.student:
        raise UsageError("--student is for --host and --local: a roster names its students")
    color = use_color(args.color, sys.stdout)
    if roster:
        return _grade_class(Path(roster), pack, given, args, color)
    given = {**given, **_asked(rubric, given, args)}
    view = args.student_view if args.student_view is not None else bool(local)
    request = HostRequest(
        pack, connection_of(args), host=host or "", local=bool(local), variables=given,
        student=args.student, student_view=view,
        out=Path(args.out) if args.out is not None else None,
    )  # fmt: skip
    graded = grade_host(request)
    report = graded.report
    if graded.written is not None and args.fmt in ("html", "md"):
        write_atomic(graded.written.with_suffix(f".{args.fmt}"), render(args.fmt, report))
    if args.fmt == "text":
        to_terminal(
            "text", report, color, brief=args.brief, since=graded.since, only=args.only,
            evidence=args.evidence,
        )  # fmt: skip
    else:
        sys.stdout.write(render(args.fmt, report))
        sys.stdout.flush()
    return exit_status(report)


def _only(pack: Pack, wanted: Sequence[str]) -> Pack:
    """The pack with only the ``wanted`` items and those they depend on (they run first)."""
    rubric = pack.rubric
    known = {item.id: item for item in rubric.items}
    keep: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in known:
            raise UsageError(
                f"--only {name}: {rubric.title} has no check {name!r}{closest(name, known)}"
            )
        if name not in keep:
            keep.add(name)
            todo += known[name].depends
    items = tuple(item for item in rubric.items if item.id in keep)
    return dataclasses.replace(pack, rubric=dataclasses.replace(rubric, items=items))


def warn_shared_passwords(students: Sequence[Any]) -> None:
    """One SSH password sent to several hosts: any of them that records passwords (its root
    may replace sshd) learns the password of all the others."""
    hosts: dict[str, list[str]] = defaultdict(list)
    for student in students:
        if student.target.password:
            hosts[student.target.password].append(student.student)
    for names in hosts.values():
        if len(names) > 1:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            sys.stderr.write(
                f"grade: warning: one SSH password would be sent to {len(names)} hosts "
                f"({shown}). A student is root on their VM and can make sshd record the "
                "passwords it is given, and so learn the password of every other VM. Log in "
                "with a key instead (--identity, or the roster's identity column), or give "
                "each student their own password (the roster's password_env column).\n"
            )


def _grade_class(
    roster: Path, pack: Pack, given: Mapping[str, str], args: Given, color: bool
) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.roster import parse_shard

    rubric = pack.rubric
    if args.fmt != "text":
        raise UsageError(
            "--format is for --host and --local; a roster run writes every format to its "
            "folder (--out)"
        )
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR: the folder of the run to resume")
    part = parse_shard(args.shard) if args.shard else None
    slug = re.sub(r"[^a-z0-9]+", "-", rubric.title.lower()).strip("-")[:40] or "lab"
    directory = args.out or Path("reports") / f"{slug}-{datetime.now():%Y%m%d-%H%M%S}"
    request = RosterRequest(
        pack, roster, Path(directory), connection_of(args), given, part, bool(args.resume),
        tuple(args.ignore_columns or ()),
    )  # fmt: skip
    with sigterm_interrupts():
        done = grade_roster(
            request, watch=lambda count: progress_for(count, color=color),
            on_students=warn_shared_passwords,
        )  # fmt: skip
    return class_ending(done, rubric, color)


def class_ending(done: Any, rubric: Rubric, color: bool) -> int:
    """The class table a class run ends with, and its exit status."""
    to_terminal(
        "class",
        done.result.reports,
        color,
        rubric=rubric,
        directory=done.directory,
        elapsed=done.elapsed,
        interrupted=done.result.interrupted,
        expected=done.expected,
    )
    return (
        ExitStatus.INTERRUPTED
        if done.result.interrupted
        else class_exit_status(done.result.reports)
    )
