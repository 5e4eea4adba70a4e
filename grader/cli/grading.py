"""``grade --host``, ``grade --local`` and ``grade --roster``: grading itself."""

from __future__ import annotations

import contextlib
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

from grader.base.budget import MIB
from grader.base.closest import closest
from grader.base.errors import InputError
from grader.base.files import write_atomic
from grader.cli.definition import UsageError
from grader.cli.terminal import class_exit_status, exit_status, to_terminal, use_color
from grader.engine.catalog import built_in_rubric, find
from grader.engine.pack import Pack, load_pack
from grader.engine.rubric import Rubric, load_rubric
from grader.engine.runner import Options, Setup, grade_host, grade_local
from grader.evidence.manifest import Manifest, run_manifest, sha256_of
from grader.report.render import render


def given_variables(opts: Mapping[str, Any]) -> dict[str, str]:
    """The rubric variables of --var NAME=VALUE and --var-env NAME=ENVVAR."""
    found: dict[str, str] = {}
    for value in opts["variables"]:
        name, sep, content = value.partition("=")
        if not sep or not name:
            raise UsageError(f"--var: expected NAME=VALUE, got {value!r}")
        found[name] = content
    for value in opts["var_env"]:
        name, sep, variable = value.partition("=")
        if not sep or not name or not variable:
            raise UsageError(f"--var-env: expected NAME=ENVVAR, got {value!r}")
        if variable not in os.environ:
            raise InputError(f"--var-env {value}: the environment variable {variable} is not set")
        found[name] = os.environ[variable]
    return found


def ssh_password(opts: Mapping[str, Any]) -> str | None:
    if opts.get("ask_password"):
        if opts["password_env"]:
            raise UsageError("--ask-password and --password-env both give the password: one")
        if not sys.stdin.isatty():
            raise UsageError("--ask-password needs a terminal to ask on (or use --password-env)")

        who = f"{opts['user']}@{opts['host']}" if opts.get("host") else "the VMs"
        return getpass.getpass(f"SSH password for {who}: ") or None
    name = opts["password_env"]
    if name is None:
        return None
    password = os.environ.get(name)
    if password is None:
        raise InputError(f"--password-env {name}: the environment variable {name} is not set")
    return password


def _asked(rubric: Rubric, given: Mapping[str, str], opts: Mapping[str, Any]) -> dict[str, str]:
    """A student at a terminal is asked for the secret variables not given (a lab user's password):
    Enter skips, and the checks that need one say so, not counted as lost marks."""
    view = opts["student_view"] if opts["student_view"] is not None else opts["local"]
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


def known_hosts_file(opts: Mapping[str, Any]) -> Path:
    if opts["known_hosts"] is not None:
        return Path(opts["known_hosts"])
    if os.environ.get("GRADER_KNOWN_HOSTS"):
        return Path(os.environ["GRADER_KNOWN_HOSTS"])

    import platformdirs  # lazy: self-check (its bundle has no platformdirs; only SSH needs it)

    return platformdirs.user_config_path("lab-grader") / "known_hosts"


def cache_dir(opts: Mapping[str, Any]) -> Path:
    if opts["cache_dir"] is not None:
        return Path(opts["cache_dir"])
    if os.environ.get("GRADER_CACHE_DIR"):
        return Path(os.environ["GRADER_CACHE_DIR"])

    import platformdirs  # lazy: self-check (no platformdirs there; a local grading has no plan)

    return platformdirs.user_cache_path("lab-grader")


def rubric_path(opts: Mapping[str, Any]) -> Path | None:
    """The rubric --lab NAME or --rubric PATH names; None when neither is given."""
    if opts.get("lab") and opts.get("rubric_path"):
        raise UsageError("--lab and --rubric name the lab twice: give one of them")
    if opts.get("lab"):
        return find(opts["lab"])
    return Path(opts["rubric_path"]) if opts.get("rubric_path") else None


def the_rubric(opts: Mapping[str, Any]) -> Rubric:
    return load_rubric(rubric_path(opts) or built_in_rubric())


#: The lab a self-check bundle was made with (grader.cli.selfcheck): it grades with no other
EMBEDDED: Pack | None = None


def the_pack(opts: Mapping[str, Any]) -> Pack:
    """The lab to grade with: its rubric, and its checks bound to it both ways."""
    if EMBEDDED is not None:
        if opts.get("lab") or opts.get("rubric_path"):
            raise UsageError(
                "this self-check grades with the lab it was made for: --lab and --rubric do "
                "not apply"
            )
        return EMBEDDED

    return load_pack(the_rubric(opts))


def grade(opts: dict[str, Any]) -> int:
    host, roster, local = opts["host"], opts["roster"], opts["local"]
    chosen = [name for name, value in (("--host", host), ("--roster", roster), ("--local", local))
              if value]  # fmt: skip
    if len(chosen) != 1:
        if len(chosen) > 1:
            raise UsageError(f"{' and '.join(chosen)} cannot be combined: give one of them")
        raise UsageError("give one of --host HOST, --roster CSV or --local (see grade --help)")
    if not roster and (opts["resume"] or opts["shard"]):
        raise UsageError("--resume and --shard are for a --roster run")
    if roster and opts["student_view"]:
        raise UsageError("--student-view is for --host and --local")
    if local and (
        opts["password_env"] or opts["identity"] or opts["accept_changed"] or opts["sudo"]
    ):
        raise UsageError("--local grades this machine without SSH: SSH options do not apply")

    given = given_variables(opts)
    pack = the_pack(opts)
    if opts["only"]:
        if roster:
            raise UsageError("--only is for --host and --local: a class is graded in full")
        pack = _only(pack, opts["only"])
    rubric = pack.rubric
    if roster and opts["student"]:
        raise UsageError("--student is for --host and --local: a roster names its students")
    if not roster:
        given = {**given, **_asked(rubric, given, opts)}
    resolved = rubric.resolve_vars(given, student=opts["student"])
    setup = connection_setup(opts, rubric)
    options, target, plan = setup.options, setup.target, setup.plan
    color = use_color(opts["color"], sys.stdout)
    if roster:
        return _grade_class(Path(roster), pack, given, setup, opts, color)

    if local:
        grading = grade_local(pack, resolved, options, student=opts["student"])
    else:
        grading = grade_host(target, pack, resolved, options, student=opts["student"], plan=plan)
    report = grading.report
    since = None
    if opts["student_view"] if opts["student_view"] is not None else local:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.report.views import student_view
        from grader.selfcheck.last_run import History

        report = student_view(report, rubric)
        if report.status == "graded":  # a student's self-check: compared with their last
            history = History(report)
            since = history.compare(report)
            history.keep(report)
    if opts["out"] is not None:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.report.store import ReportStore

        store = ReportStore(Path(opts["out"]))
        store.save(report, grading.archive)
        _manifest(rubric, "local" if local else "host").write(store.directory)
        if opts["fmt"] in ("html", "md"):
            path = store.report_path(report).with_suffix(f".{opts['fmt']}")
            write_atomic(path, render(opts["fmt"], report))
    if opts["fmt"] == "text":
        changed = since.lines() if since is not None else []
        to_terminal(
            "text", report, color, brief=opts["brief"], since=changed, only=opts["only"],
            evidence=opts["evidence"],
        )  # fmt: skip
    else:
        sys.stdout.write(render(opts["fmt"], report))
        sys.stdout.flush()
    return exit_status(report)


def connection_setup(opts: Mapping[str, Any], rubric: Rubric) -> Setup:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.machine.execution import Target

    host, local = opts["host"], opts["local"]
    password = ssh_password(opts)
    known_hosts = None
    if not local:
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.machine.ssh import KnownHosts, load_identity

        if opts["identity"] is not None:
            load_identity(opts["identity"])  # an unusable key file is bad input, refused at once
    accept = set(opts["accept_changed"])
    if "" in accept:
        if not host:
            raise UsageError(
                "--accept-changed-host-key: name the host(s) whose new key you accept "
                "(--accept-changed-host-key HOST, repeatable)"
            )
        accept = (accept - {""}) | {host}
    if not local:
        known_hosts = KnownHosts(known_hosts_file(opts), frozenset(accept))
    options = Options(
        known_hosts=known_hosts,
        connect_timeout=opts["connect_timeout"],
        command_timeout=opts["command_timeout"],
        reply_timeout=opts["reply_timeout"],
        host_timeout=opts["host_timeout"],
        evidence_limit=opts["evidence_limit"] * MIB,
    )
    target = Target(
        host=host or "",
        port=opts["port"],
        user=opts["user"],
        identity=opts["identity"],
        password=password,
        sudo=opts["sudo"],
    )
    plan = None
    if not opts["no_prefetch"] and not local:  # a local command is no round trip to save
        # lazy: start-up (see grader/cli/__init__.py)
        from grader.machine.prefetch import Plan

        cache = cache_dir(opts)
        # a plan shared by every VM of a rubric, as graders before this one kept: it held
        # commands built from one VM's answers (and students' variables), so it goes
        with contextlib.suppress(OSError):
            (cache / f"plan-{rubric.sha256}.json").unlink(missing_ok=True)
        plan = Plan(cache / f"plan-{rubric.sha256}")  # a file per VM, for that VM alone
    return Setup(options, target, plan, opts["workers"])


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


def _manifest(rubric: Rubric, kind: str, **fields: Any) -> Manifest:
    return run_manifest(rubric, kind, **fields)


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
    roster: Path,
    pack: Pack,
    given: Mapping[str, str],
    setup: Setup,
    opts: Mapping[str, Any],
    color: bool,
) -> int:
    # lazy: start-up (see grader/cli/__init__.py)
    from grader.classrun.roster import load_roster, parse_shard, shard
    from grader.classrun.run import run_class

    rubric = pack.rubric
    if opts["fmt"] != "text":
        raise UsageError(
            "--format is for --host and --local; a roster run writes every format to its "
            "folder (--out)"
        )
    if opts["resume"] and opts["out"] is None:
        raise UsageError("--resume needs --out DIR: the folder of the run to resume")
    students = load_roster(roster, rubric, setup.target, ignore=opts["ignore_columns"])
    part = parse_shard(opts["shard"]) if opts["shard"] else None
    if part is not None:
        students = shard(students, *part)
    warn_shared_passwords(students)
    slug = re.sub(r"[^a-z0-9]+", "-", rubric.title.lower()).strip("-")[:40] or "lab"
    directory = opts["out"] or Path("reports") / f"{slug}-{datetime.now():%Y%m%d-%H%M%S}"
    done = run_class(
        students,
        pack,
        given,
        setup.options,
        Path(directory),
        roster_sha256=sha256_of(roster),
        shard=part,
        workers=setup.workers,
        plan=setup.plan,
        color=color,
        resume=opts["resume"],
    )
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
    return 130 if done.result.interrupted else class_exit_status(done.result.reports)
