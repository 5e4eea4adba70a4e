"""Proving a pack's checks (``grade prove``): graded on its simulated scenarios, or with
mutants of the lab done right, on its simulated reference or live, over SSH, on a VM of one's
own (reached as a grading reaches a host: grader.actions.grading's Connection and set-up).

The proofs themselves are grader.sim's (prove: the scenarios; proof: the mutants); what they
tell as they go a front end hears through a ``ProofWatch``, and what they find they return
(grader.base.proving), for a front end to render (grader.report.render.proof).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.actions.grading import Connection, setup_of
from grader.base.errors import HostError, InputError
from grader.base.proving import MutantsProved, ProofStopped, ScenariosProved
from grader.engine.rubric import Rubric, load_rubric
from grader.engine.runner import TRANSIENT, Setup
from grader.machine.ssh import connect
from grader.sim import missing_requirements
from grader.sim import proof as mutants_proof
from grader.sim.mutants import Mutant
from grader.sim.pack import PackScenarios, load_scenarios
from grader.sim.proof import PASSWORD_VAR, Place, session_place
from grader.sim.prove import prove_scenarios
from grader.sim.vm import VM
from grader.sim.watch import ProofWatch, SimWatch
from grader.sim.wayin import Login

__all__ = [
    "VM",
    "LiveVM",
    "Mutant",
    "MutantsRequest",
    "PackScenarios",
    "ProofWatch",
    "SimWatch",
    "check_mutants",
    "pack_of",
    "prove_mutants",
    "prove_pack",
    "simulator_missing",
]


def pack_of(rubric: Path, live: bool = False) -> PackScenarios:
    """The scenarios of the pack of ``rubric`` (its scenarios module beside it). ``live``: a
    pack without one will do (a live proof takes only the pack's own mutants from it)."""
    return load_scenarios(rubric, live)


def simulator_missing(pack: PackScenarios) -> str | None:
    """Why the simulated VMs cannot boot here, for people (None: they can)."""
    if os.geteuid() != 0:
        why = "the simulated VMs are network namespaces on a bridge of their own"
        return f"grade sim and grade prove need root: {why} (sudo grade ...)"
    missing = missing_requirements(pack.tools)
    if missing:
        return (
            f"The lab simulator cannot run here: {'; '.join(missing)} (scripts/setup installs them)"
        )
    return None


def prove_pack(pack: PackScenarios, watch: SimWatch | None = None) -> ScenariosProved:
    """Boot every scenario of the pack and grade them: does each check give the verdict each
    scenario states, and both pass and fail somewhere?"""
    return prove_scenarios(pack, watch or SimWatch())


@dataclass(frozen=True)
class LiveVM:
    """A VM of one's own, done right, that a live proof applies its mutants to (never a
    student's: each mutant is applied there and undone)."""

    host: str
    connection: Connection  # how it is reached, as a grading of it would be
    student: str | None = None  # whose variant it is
    variables: tuple[str, ...] = ()  # NAME=VALUE as given: each grading is given them (--var)
    var_env: tuple[str, ...] = ()  # NAME=ENVVAR as given: each grading reads the environment


@dataclass(frozen=True)
class MutantsRequest:
    """Prove that each check fails when it should, with mutants of the lab done right: the
    pack's reference scenario, or the ``live`` VM."""

    pack: PackScenarios
    only: tuple[str, ...] = ()  # only the mutants of what these checks read; only they count
    limit: int | None = None  # grade at most this many mutants
    live: LiveVM | None = None
    #: files or folders mutants may change though the grader's login reads them (--allow)
    allowed: tuple[str, ...] = ()


def check_mutants(pack: PackScenarios, only: tuple[str, ...], live: bool) -> Rubric:
    """The pack's rubric, once what a proof with mutants needs of the pack is there: its
    reference scenario (on the simulator), and every check of ``only``. Said before any VM
    boots or is connected to."""
    if not live and pack.reference not in pack.scenarios:
        raise InputError(
            f"{pack.rubric.parent}: no reference scenario {pack.reference!r} "
            "(REFERENCE in its scenarios module names the lab done right)"
        )
    rubric = load_rubric(pack.rubric)
    known = {item.id for item in rubric.items}
    unknown = [c for c in only if c not in known]
    if unknown:
        raise InputError(f"{pack.rubric}: no check {unknown[0]!r} (--only)")
    return rubric


def prove_mutants(
    request: MutantsRequest, watch: ProofWatch | None = None
) -> MutantsProved | ProofStopped:
    """Grade the reference, derive its mutants from what its checks read, grade each, and
    say which checks no mutant made fail (the kill matrix); or why the proof stopped before
    any mutant (the live VM could not be reached, the reference did not get full marks)."""
    pack, live, watch = request.pack, request.live, watch or ProofWatch()
    rubric = check_mutants(pack, request.only, live is not None)
    bad = [p for p in request.allowed if not p.startswith("/")]
    if bad:
        raise InputError(f"--allow {bad[0]}: a path on the VM is absolute (starts with /)")
    if live is None:
        return mutants_proof.prove_mutants(pack, request.only, request.limit, watch,
                                           allowed=request.allowed)  # fmt: skip
    try:
        place, session = _live_place(live, pack, rubric)
    except HostError as e:
        return ProofStopped(f"{live.host} could not be reached: {e}", unreachable=True)
    try:
        return mutants_proof.prove_mutants(pack, request.only, request.limit, watch, live=place,
                                           allowed=request.allowed)  # fmt: skip
    finally:
        session.close()


def connected(setup: Setup) -> Any:
    """An SSH session to the live VM, its connection retried as a grading's is: a failure
    that passes (no answer yet from a VM still booting, refused, lost) is tried again after a
    pause, ``setup.options.attempts`` times in all."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect(setup.target, setup.options.known_hosts, setup.options.connect_timeout)
        except HostError as e:
            if e.kind not in TRANSIENT or attempt >= setup.options.attempts:
                raise
            time.sleep(setup.options.retry_pause)


def _live_place(live: LiveVM, pack: PackScenarios, rubric: Rubric) -> tuple[Place, Any]:
    """The live VM as the proof's place, and its SSH session: reached as a grading reaches a
    host (the key file checked, the known hosts, its new key accepted if asked); each grading
    of it is `grade --host` with the same connection."""
    connection = live.connection
    if connection.known_hosts is None:
        raise InputError("a live proof reaches its VM over SSH: a known-hosts file is needed")
    setup = setup_of(dataclasses.replace(connection, plans=None), rubric, live.host)
    assert setup.options.known_hosts is not None  # a known-hosts file: SSH
    session = connected(setup)
    password = connection.password
    env = {**os.environ, **({PASSWORD_VAR: password} if password else {})}
    argv = [
        "--host", live.host, "--rubric", str(pack.rubric), "--port", str(connection.port),
        "--user", str(connection.user), "--known-hosts", str(connection.known_hosts),
        "--connect-timeout", str(connection.connect_timeout),
        "--command-timeout", str(connection.command_timeout),
        "--reply-timeout", str(connection.reply_timeout),
        "--host-timeout", str(connection.host_timeout),
        *(["--sudo"] if connection.sudo else []),
        *(["--identity", str(connection.identity)] if connection.identity else []),
        *(["--password-env", PASSWORD_VAR] if password else []),
        *(["--student", str(live.student)] if live.student else []),
        *[a for value in live.variables for a in ("--var", value)],
        *[a for value in live.var_env for a in ("--var-env", value)],
        "--format", "json",
    ]  # fmt: skip
    login = Login(str(connection.user), connection.sudo, connection.port)
    options = setup.options

    def opened() -> Any:  # a second login, as the first (sshd's configuration is tried with it)
        assert options.known_hosts is not None
        return connect(setup.target, options.known_hosts, options.connect_timeout)

    return session_place(live.host, session, argv, env, login, opened), session
