"""Evidence archives: what a VM answered during a grading, kept to re-mark it without the VM.

Recording: once a host is graded, everything the grading learned from it goes into one archive
next to the report (``<student>.evidence.json.gz``): each remote command the checks asked or the
prefetch ran, with its exit status, stdout and stderr (or its time-out), each outside probe with
its question and answer (any kind of probe, recorded the same way), and when, from which host
key, by which grader and rubric. These are the backend's and the probes' memos: the grading
asks each thing once, so the memos hold every answer a check relied on.

The archive is the record a regrade decides on, so it keeps the VM's bytes as they were
(a private key a student left in a file included: the archive is written private, 0600, and
masking is for what people read). The grading's own secrets are the one thing kept out, in a
way that cannot change a verdict (see ``grader.evidence.holes``).

Replay: ``ReplayExecutor`` answers a recorded command with the VM's answer of then, and
``ReplayOutside`` a recorded probe; a question never recorded raises ``NeedsLiveVM``, so the
check is an ``error``, never a guess.

The archive's size is bounded (``ARCHIVE_LIMIT`` of output per student; past it a command's
output is left out, and that is recorded). A SHA-256 checksum of the content, also written in
the report, tells an archive edited after grading by anyone who does not compute it again;
inside a course the report and its archive are signed as well (grader.evidence.signing), and a
report's time must be its archive's (grader.classrun.regrade.archive_of). The schema is plain
dataclasses (the self-check bundle writes archives with no third-party library); reading one
back validates it with pydantic.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import hashlib
import hmac
import json
import os
import re
import secrets as random
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grader import __version__
from grader.base.budget import DeadlinePassed
from grader.base.errors import CheckError, CommandTimeout, InputError
from grader.base.evidence import command_in_words
from grader.base.words import ErrorKind
from grader.evidence import holes
from grader.machine.execution import COMMAND_OUTPUT_LIMIT, Completed
from grader.probes import Outside, Registry, record_of

FORMAT = "lab-grader-evidence/2"
SUFFIX = ".evidence.json.gz"
#: Bytes of command output (stdout and stderr) an archive keeps per student.
ARCHIVE_LIMIT = 16 * 1024 * 1024
#: Largest decompressed archive read back: JSON escapes or base64 make the data at most about
#: twice as long (see Blob.of), and commands and probes take little besides.
READ_LIMIT = 3 * ARCHIVE_LIMIT
#: Deepest nesting of JSON an archive may have (its own is a few levels deep).
DEPTH_LIMIT = 32
PBKDF2_ROUNDS = 20_000
SSH_PASSWORD = "ssh_password"  # the name the SSH password's holes and digest go by
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")

T = TypeVar("T")


class NeedsLiveVM(CheckError):
    """A replayed check asked for something the VM was never asked when it was graded."""

    kind = ErrorKind.NEEDS_LIVE_VM


class ArchiveError(InputError):
    """An archive that cannot be used: unreadable, malformed, or changed after grading."""


def _schema(cls: type[T]) -> type[T]:
    """Read back strictly: a key the schema does not know is an error (pydantic's config)."""
    cls.__pydantic_config__ = {"extra": "forbid"}  # type: ignore[attr-defined]
    return cls


# ----- the archive's content -----


@_schema
@dataclass(frozen=True)
class Blob:
    """Bytes from the VM: as text when they are UTF-8, else base64; the grading's secrets cut
    out (``holes``: where each stood in the stored bytes, and which)."""

    text: str | None = None
    base64: str | None = None
    holes: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("give either text or base64")
        if self.base64 is not None:
            try:
                base64.b64decode(self.base64, validate=True)
            except binascii.Error as e:
                raise ValueError(f"not base64: {e}") from None

    @classmethod
    def of(cls, data: bytes, secrets: Mapping[str, str] = {}) -> Blob:
        data, found = holes.cut(data, secrets)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        # JSON writes a control character in six bytes: binary junk goes as base64 instead
        if text is not None and len(_CONTROL.findall(text)) * 10 <= len(text):
            return cls(text=text, holes=found)
        return cls(base64=base64.b64encode(data).decode("ascii"), holes=found)

    @property
    def stored(self) -> bytes:
        """The bytes as stored, secrets shown as ``****``."""
        if self.text is not None:
            return self.text.encode("utf-8")
        return base64.b64decode(self.base64 or "")

    def data(self, values: Mapping[str, str | None], where: str) -> bytes:
        """The VM's bytes, each secret put back from ``values`` (NeedsSecret when unknown)."""
        return holes.fill(self.stored, list(self.holes), values, where)


@_schema
@dataclass(frozen=True)
class CommandRecord:
    command: Blob
    exit: int | None = None
    stdout: Blob | None = None
    stderr: Blob | None = None
    truncated: bool = False  # the output went past the grader's per-command limit
    timeout: str | None = None  # the command did not finish: the grader's words
    deadline: bool = False  # with timeout: the grading's deadline cut it short, not its own
    omitted: str | None = None  # the output was not kept (the archive's size limit)

    def answer(
        self, values: Mapping[str, str | None], where: str
    ) -> Completed | CommandTimeout | DeadlinePassed | None:
        """What the VM answered, or None when its output was not kept."""
        if self.omitted is not None:
            return None
        if self.timeout is not None:
            return DeadlinePassed(self.timeout) if self.deadline else CommandTimeout(self.timeout)
        return Completed(
            self.exit if self.exit is not None else -1,
            self.stdout.data(values, where) if self.stdout else b"",
            self.stderr.data(values, where) if self.stderr else b"",
            self.truncated,
        )


@_schema
@dataclass(frozen=True)
class ProbeRecord:
    """One probe: its kind, the question (``key``) and the answer, as JSON values."""

    probe: str
    key: list[Any]
    answer: dict[str, Any]
    key_holes: list[tuple[list[str | int], int, str]] = field(default_factory=list)
    answer_holes: list[tuple[list[str | int], int, str]] = field(default_factory=list)


@_schema
@dataclass(frozen=True)
class Digest:
    """A salted PBKDF2-SHA256 digest of a secret: tells the same secret, keeps none."""

    salt: str
    rounds: int
    sha256: str

    @classmethod
    def of(cls, secret: str) -> Digest:
        salt = os.urandom(16)
        return cls(salt.hex(), PBKDF2_ROUNDS, _pbkdf2(secret, salt, PBKDF2_ROUNDS))

    def matches(self, secret: str) -> bool:
        try:
            salt = bytes.fromhex(self.salt)
        except ValueError:
            return False
        return hmac.compare_digest(self.sha256, _pbkdf2(secret, salt, self.rounds))


def _pbkdf2(secret: str, salt: bytes, rounds: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, rounds).hex()


@_schema
@dataclass(frozen=True)
class RubricRecord:
    title: str
    sha256: str


@_schema
@dataclass(frozen=True)
class Limits:
    command_output: int  # bytes of stdout (and of stderr) kept of one command
    archive: int  # bytes of output kept in all
    command_timeout: float  # seconds one command could take


@_schema
@dataclass(frozen=True)
class Body:
    host: str
    graded_at: str
    grader_version: str
    rubric: RubricRecord
    limits: Limits
    vars: dict[str, str]  # the rubric variables the grading used, secret ones left out
    secrets: dict[str, Digest]  # the secrets given (secret variables, the SSH password)
    commands: list[CommandRecord]
    probes: list[ProbeRecord]
    student: str | None = None
    address: str | None = None
    host_key: str | None = None
    cut_off: list[str] = field(default_factory=list)  # checks the host's deadline left unrun
    source: str | None = None  # the address its connections came from, when the grader chose


@dataclass(frozen=True)
class Archive:
    body: Body
    sha256: str  # of the body's canonical JSON

    @property
    def address(self) -> str:
        return self.body.address or self.body.host


def _plain(value: Any) -> Any:
    """A dataclass as JSON values, fields at their default left out (an archive stays short)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.default is not dataclasses.MISSING and item == f.default:
                continue
            if f.default_factory is not dataclasses.MISSING and item == f.default_factory():
                continue
            found[f.name] = _plain(item)
        return found
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# ----- recording -----


def record(
    *,
    commands: Iterable[tuple[bytes, Completed | CommandTimeout | DeadlinePassed]],
    probes: Iterable[tuple[str, list[Any], Any]],
    student: str | None,
    host: str,
    address: str | None,
    host_key: str | None,
    graded_at: str,
    rubric: RubricRecord,
    variables: Mapping[str, str],
    secret_names: Iterable[str],
    ssh_password: str | None,
    command_timeout: float,
    cut_off: Iterable[str] = (),
    source: str | None = None,
) -> Archive:
    """An archive of one grading from the backend's and the probes' answers, the grading's
    secrets cut out of them (see grader.evidence.holes)."""
    secret_names = set(secret_names)
    secret_vars = {n: variables[n] for n in sorted(secret_names) if variables.get(n)}
    # a command or a probe's question holds a secret only when a check put a variable's value
    # there; an answer may hold the SSH password too (the VM knows it)
    in_answers = {**secret_vars, **({SSH_PASSWORD: ssh_password} if ssh_password else {})}

    kept, budget = [], ARCHIVE_LIMIT
    for command, answer in commands:
        name = Blob.of(command, secret_vars)
        if isinstance(answer, (CommandTimeout, DeadlinePassed)):
            cut = isinstance(answer, DeadlinePassed)
            kept.append(CommandRecord(command=name, timeout=str(answer), deadline=cut))
            continue
        size = len(answer.stdout) + len(answer.stderr)
        if size > budget:
            kept.append(
                CommandRecord(
                    command=name,
                    omitted=f"{size} bytes of output, past the archive's limit of "
                    f"{ARCHIVE_LIMIT} bytes per student",
                )
            )
            continue
        budget -= size
        kept.append(
            CommandRecord(
                command=name,
                exit=answer.exit_status,
                stdout=Blob.of(answer.stdout, in_answers),
                stderr=Blob.of(answer.stderr, in_answers),
                truncated=answer.truncated,
            )
        )
    probe_records = []
    for kind, key, answer in probes:
        key, key_holes = holes.cut_json(key, secret_vars)
        found, answer_holes = holes.cut_json(record_of(answer), in_answers)
        probe_records.append(ProbeRecord(kind, key, found, key_holes, answer_holes))
    body = Body(
        source=source,
        student=student,
        host=host,
        address=address,
        host_key=host_key,
        graded_at=graded_at,
        grader_version=__version__,
        rubric=rubric,
        limits=Limits(COMMAND_OUTPUT_LIMIT, ARCHIVE_LIMIT, float(command_timeout)),
        vars={k: v for k, v in variables.items() if k not in secret_names},
        secrets={name: Digest.of(value) for name, value in in_answers.items()},
        commands=kept,
        probes=probe_records,
        cut_off=list(cut_off),
    )
    return Archive(body, _checksum(_plain(body)))


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _checksum(body: Any) -> str:
    return hashlib.sha256(_canonical(body)).hexdigest()


def dumps(archive: Archive) -> bytes:
    """The archive file's bytes: gzip'd JSON, the same bytes for the same content."""
    document = {"format": FORMAT, "sha256": archive.sha256, "body": _plain(archive.body)}
    return gzip.compress(_canonical(document), compresslevel=6, mtime=0)


def archive_path(report_path: Path) -> Path:
    """``alice.json`` -> ``alice.evidence.json.gz``, in the same folder."""
    return report_path.with_name(report_path.name.removesuffix(".json") + SUFFIX)


# ----- reading back -----


def _depth(raw: bytes) -> int:
    """How deeply the JSON text nests (brackets outside strings), without parsing it."""
    deepest = depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def load(path: Path) -> Archive:
    """Read and verify an archive; ArchiveError names the file and what is wrong."""
    try:
        with gzip.open(path, "rb") as stream:
            raw = stream.read(READ_LIMIT + 1)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such evidence archive") from None
    except (OSError, EOFError, zlib.error) as e:
        raise ArchiveError(f"{path}: not a readable evidence archive ({e})") from None
    if len(raw) > READ_LIMIT:
        raise ArchiveError(f"{path}: larger than an evidence archive can be; refused")
    if _depth(raw) > DEPTH_LIMIT:
        raise ArchiveError(f"{path}: nested deeper than an evidence archive can be; refused")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ArchiveError(f"{path}: not an evidence archive (bad JSON: {e})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else None
        older = " (made by an older grader: grade it again on the live VM)" if found else ""
        raise ArchiveError(
            f"{path}: not an evidence archive of this grader (format {FORMAT}){older}"
        )
    body = document.get("body")
    if _checksum(body) != document.get("sha256"):
        raise ArchiveError(
            f"{path}: the content does not match its checksum: the archive was changed after "
            "grading, so it is refused"
        )
    from pydantic import TypeAdapter, ValidationError  # lazy: self-check (no pydantic there)

    try:
        parsed = TypeAdapter(Body).validate_python(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ArchiveError(f"{path}: body.{where}: {first['msg']}") from None
    except (ValueError, TypeError, RecursionError) as e:
        raise ArchiveError(f"{path}: body: {e}") from None
    return Archive(parsed, str(document["sha256"]))


# ----- replay -----


class Replay:
    """An archive opened for a regrade, with the variables and secrets given now.

    The checks see the variables used at grading unless given again; a secret variable given
    at grading and not now reads as a stand-in no VM could have guessed. A secret's holes in the
    VM's answers are filled only with the secret itself (given again, and checked against its
    digest); in the checks' own questions, with the value the variable has now."""

    def __init__(
        self,
        archive: Archive,
        names: Iterable[str],
        given: Mapping[str, str],
        ssh_password: str | None = None,
    ) -> None:
        self.archive = archive
        body = archive.body
        offered = {**given, **({SSH_PASSWORD: ssh_password} if ssh_password else {})}
        #: the secrets known again: given now, and the same as at grading
        self.known: dict[str, str | None] = {
            name: offered[name]
            for name, digest in body.secrets.items()
            if name in offered and digest.matches(offered[name])
        }
        #: the variables as the checks see them now
        self.variables: dict[str, str] = {}
        #: what a secret stands for in the checks' own questions
        self.asked: dict[str, str | None] = {}
        for name in names:
            if name in given:
                self.variables[name] = given[name]
            elif name in body.vars:
                self.variables[name] = body.vars[name]
            elif name in body.secrets:
                self.variables[name] = f"(secret {name} given at grading {random.token_hex(8)})"
        for name in body.secrets:
            if name in self.known:
                self.asked[name] = self.known[name]
            elif name in given:  # another value than at grading: it must not match
                self.asked[name] = f"(not {name} {random.token_hex(8)})"
            else:
                self.asked[name] = self.variables.get(name)


class ReplayExecutor:
    """Answers a recorded command as the VM did when it was graded."""

    def __init__(self, replay: Replay) -> None:
        archive = replay.archive
        self.replay = replay
        self.address = archive.address
        self.graded_at = archive.body.graded_at
        self._answers: dict[bytes, CommandRecord] = {}
        for entry in archive.body.commands:
            try:
                command = entry.command.data(replay.asked, "a recorded command")
            except holes.NeedsSecret:
                continue
            self._answers.setdefault(command, entry)

    def exec(
        self,
        command: bytes,
        timeout: float,
        limit: int = COMMAND_OUTPUT_LIMIT,
        cancel: threading.Event | None = None,
    ) -> Completed:
        entry = self._answers.get(command)
        shown = command_in_words(command.decode("utf-8", errors="replace"))
        if entry is None:
            raise NeedsLiveVM(
                f"needs the live VM: {shown} was not run when the VM was graded "
                f"({self.graded_at}), so its evidence archive has no answer to it"
            )
        answer = entry.answer(self.replay.known, f"the answer to {shown}")
        if answer is None:
            raise NeedsLiveVM(
                f"needs the live VM: the output of {shown} was not kept ({entry.omitted})"
            )
        if isinstance(answer, (CommandTimeout, DeadlinePassed)):
            raise answer
        return answer


class ReplayOutside(Outside):
    """The outside probes, answered from the archive."""

    def __init__(self, replay: Replay, ports: Iterable[int], registry: Registry) -> None:
        super().__init__(replay.archive.address, ports, registry=registry)
        self.replay = replay
        self.graded_at = replay.archive.body.graded_at

    @property
    def source(self) -> str | None:
        return self.replay.archive.body.source  # as the grading chose it, said the same way

    def _once(self, name: str, key: list[Any], asking: Callable[[], Any]) -> Any:
        asked = json.loads(json.dumps(key))
        for entry in self.replay.archive.body.probes:
            if entry.probe != name:
                continue
            try:
                recorded = holes.fill_json(entry.key, entry.key_holes, self.replay.asked, "")
            except holes.NeedsSecret:
                continue
            if recorded == asked:
                where = f"the answer of the probe {name}{tuple(asked)}"
                found = holes.fill_json(entry.answer, entry.answer_holes, self.replay.known, where)
                return self.registry.get(name).rebuild(found)
            secrets = {n: v for n, v in self.replay.variables.items() if n in self.replay.asked}
            if entry.key_holes and entry.key == holes.cut_json(asked, secrets)[0]:
                secret = entry.key_holes[0][2]
                raise NeedsLiveVM(
                    f"needs the live VM: the probe {name} was made with another value of "
                    f"{secret} than the one given now"
                )
        raise NeedsLiveVM(
            f"needs the live VM: the probe {name}{tuple(asked)} was not made when the VM was "
            f"graded ({self.graded_at}), so its evidence archive has no answer to it"
        )
