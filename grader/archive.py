"""Evidence archives: what a VM answered during a grading, kept to re-mark it without the VM.

Recording: once a host is graded, everything the grading learned from it goes into one archive
next to the report (``<student>.evidence.json.gz``): each remote command the checks asked or the
prefetch ran, with its exit status, stdout and stderr (or its time-out), each outside probe
(SMTP and POP3 greetings, the POP3 login, the port scan) with what it found, and when, from
which host key, by which grader and rubric. These are the backend's and the probes' memos: the
grading asks each thing once, so the memos hold every answer a check relied on.

Replay: ``ReplayExecutor`` answers a recorded command with the VM's answer of then, and
``ReplayOutside`` a recorded probe; a question never recorded raises ``NeedsLiveVM``, so the
check is an ``error``, never a guess.

The archive holds no secrets: the SSH password and the rubric's secret variables are masked
(as in reports) and a POP3 password is kept only as a salted PBKDF2 digest, to tell at a regrade
whether the same password is meant; private-key blocks in any output are cut out. Its size is
bounded (``ARCHIVE_LIMIT`` of output per student; past it a command's output is left out, and
that is recorded). A SHA-256 checksum of the content, also written in the report, tells an
archive edited after grading.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import json
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from grader import __version__
from grader.errors import CheckError, CommandTimeout, InputError
from grader.probes import Greeting, Outside, Pop3Login, Scan
from grader.results import Redactor
from grader.ssh import COMMAND_OUTPUT_LIMIT, Completed

FORMAT = "lab-grader-evidence/1"
SUFFIX = ".evidence.json.gz"
#: Bytes of command output (stdout and stderr) an archive keeps per student.
ARCHIVE_LIMIT = 16 * 1024 * 1024
#: Largest decompressed archive read back: JSON escapes or base64 make the data at most about
#: twice as long (see Blob.of), and commands and probes take little besides.
READ_LIMIT = 3 * ARCHIVE_LIMIT
#: What a secret variable reads as at a regrade when it is not given again: the checks see that
#: it was given, and a POP3 login with it is answered with the login recorded at grading.
RECORDED_SECRET = "(the secret given at grading)"
PBKDF2_ROUNDS = 20_000
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


class NeedsLiveVM(CheckError):
    """A replayed check asked for something the VM was never asked when it was graded."""


class ArchiveError(InputError):
    """An archive that cannot be used: unreadable, malformed, or changed after grading."""


# ----- the archive's content, validated as it is read back -----


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Blob(_Model):
    """Bytes from the VM: as text when they are UTF-8, else base64."""

    text: str | None = None
    base64: str | None = None

    @classmethod
    def of(cls, data: bytes) -> Blob:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        # JSON writes a control character in six bytes: binary junk goes as base64 instead
        if text is not None and len(_CONTROL.findall(text)) * 10 <= len(text):
            return cls(text=text)
        return cls(base64=base64.b64encode(data).decode("ascii"))

    @model_validator(mode="after")
    def _one_form(self) -> Blob:
        if (self.text is None) == (self.base64 is None):
            raise ValueError("give either text or base64")
        if self.base64 is not None:
            try:
                base64.b64decode(self.base64, validate=True)
            except binascii.Error as e:
                raise ValueError(f"not base64: {e}") from None
        return self

    @property
    def data(self) -> bytes:
        if self.text is not None:
            return self.text.encode("utf-8")
        return base64.b64decode(self.base64 or "")


class CommandRecord(_Model):
    command: Blob
    exit: int | None = None
    stdout: Blob | None = None
    stderr: Blob | None = None
    truncated: bool = False  # the output went past the grader's per-command limit
    timeout: str | None = None  # the command did not finish: the grader's words
    omitted: str | None = None  # the output was not kept (the archive's size limit)

    def answer(self) -> Completed | CommandTimeout | None:
        """What the VM answered, or None when its output was not kept."""
        if self.omitted is not None:
            return None
        if self.timeout is not None:
            return CommandTimeout(self.timeout)
        return Completed(
            self.exit if self.exit is not None else -1,
            self.stdout.data if self.stdout else b"",
            self.stderr.data if self.stderr else b"",
            self.truncated,
        )


class Digest(_Model):
    """A salted PBKDF2-SHA256 digest of a password: tells the same password, keeps none."""

    salt: str
    rounds: int
    sha256: str

    @classmethod
    def of(cls, secret: str) -> Digest:
        salt = os.urandom(16)
        return cls(
            salt=salt.hex(), rounds=PBKDF2_ROUNDS, sha256=_pbkdf2(secret, salt, PBKDF2_ROUNDS)
        )

    def matches(self, secret: str) -> bool:
        try:
            salt = bytes.fromhex(self.salt)
        except ValueError:
            return False
        return hmac.compare_digest(self.sha256, _pbkdf2(secret, salt, self.rounds))


def _pbkdf2(secret: str, salt: bytes, rounds: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", secret.encode(), salt, rounds).hex()


class GreetingProbe(_Model):
    probe: Literal["smtp", "pop3"]
    port: int
    ok: bool
    code: int | None = None
    text: str


class LoginProbe(_Model):
    probe: Literal["pop3-login"]
    port: int
    user: str
    password: Digest
    ok: bool
    messages: int | None = None
    text: str


class ScanProbe(_Model):
    probe: Literal["scan"]
    ports: list[int]
    source: str
    states: dict[int, str]


Probe = Annotated[GreetingProbe | LoginProbe | ScanProbe, Field(discriminator="probe")]


class RubricRecord(_Model):
    title: str
    sha256: str


class Limits(_Model):
    command_output: int  # bytes of stdout (and of stderr) kept of one command
    archive: int  # bytes of output kept in all
    command_timeout: float  # seconds one command could take


class Body(_Model):
    student: str | None = None
    host: str
    address: str | None = None
    host_key: str | None = None
    graded_at: str
    grader_version: str
    rubric: RubricRecord
    limits: Limits
    vars: dict[str, str]  # the rubric variables the grading used, secret ones left out
    secret_vars: dict[str, bool]  # secret variables: whether one was given
    commands: list[CommandRecord]
    probes: list[Probe]


@dataclass(frozen=True)
class Archive:
    body: Body
    sha256: str  # of the body's canonical JSON

    @property
    def address(self) -> str:
        return self.body.address or self.body.host


# ----- recording -----


def record(
    *,
    commands: Iterable[tuple[bytes, Completed | CommandTimeout]],
    probes: Iterable[tuple[tuple[Any, ...], object]],
    student: str | None,
    host: str,
    address: str | None,
    host_key: str | None,
    graded_at: str,
    rubric: RubricRecord,
    variables: Mapping[str, str],
    secret_names: Iterable[str],
    mask: Redactor,
    command_timeout: float,
) -> Archive:
    """An archive of one grading from the backend's and the probes' answers, passed through
    the grading's ``mask`` (the same the checks' evidence went through)."""
    secret_names = set(secret_names)
    clean, text = mask.data, mask

    kept, budget = [], ARCHIVE_LIMIT
    for command, answer in commands:
        name = Blob.of(clean(command))
        if isinstance(answer, CommandTimeout):
            kept.append(CommandRecord(command=name, timeout=str(answer)))
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
                stdout=Blob.of(clean(answer.stdout)),
                stderr=Blob.of(clean(answer.stderr)),
                truncated=answer.truncated,
            )
        )
    body = Body(
        student=student,
        host=host,
        address=address,
        host_key=host_key,
        graded_at=graded_at,
        grader_version=__version__,
        rubric=rubric,
        limits=Limits(
            command_output=COMMAND_OUTPUT_LIMIT,
            archive=ARCHIVE_LIMIT,
            command_timeout=command_timeout,
        ),
        vars={k: v for k, v in variables.items() if k not in secret_names},
        secret_vars={n: bool(variables.get(n)) for n in sorted(secret_names)},
        commands=kept,
        probes=[_probe_record(key, value, text) for key, value in probes],
    )
    return Archive(body, _checksum(body.model_dump(mode="json", exclude_none=True)))


def _probe_record(key: tuple[Any, ...], value: object, text: Callable[[str], str]) -> Probe:
    kind = key[0]
    if kind in ("smtp", "pop3") and isinstance(value, Greeting):
        return GreetingProbe(
            probe=kind, port=int(key[1]), ok=value.ok, code=value.code, text=text(value.text)
        )
    if kind == "pop3-login" and isinstance(value, Pop3Login):
        return LoginProbe(
            probe="pop3-login",
            port=int(key[1]),
            user=str(key[2]),
            password=Digest.of(str(key[3])),
            ok=value.ok,
            messages=value.messages,
            text=text(value.text),
        )
    if kind == "scan" and isinstance(value, Scan):
        return ScanProbe(
            probe="scan", ports=list(key[1]), source=value.source, states=dict(value.states)
        )
    raise TypeError(f"no archive record for the probe {kind!r}")


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _checksum(body: Any) -> str:
    return hashlib.sha256(_canonical(body)).hexdigest()


def dumps(archive: Archive) -> bytes:
    """The archive file's bytes: gzip'd JSON, the same bytes for the same content."""
    document = {
        "format": FORMAT,
        "sha256": archive.sha256,
        "body": archive.body.model_dump(mode="json", exclude_none=True),
    }
    return gzip.compress(_canonical(document), compresslevel=6, mtime=0)


def archive_path(report_path: Path) -> Path:
    """``alice.json`` -> ``alice.evidence.json.gz``, in the same folder."""
    return report_path.with_name(report_path.name.removesuffix(".json") + SUFFIX)


# ----- reading back -----


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
    try:
        document = json.loads(raw)
    except ValueError as e:
        raise ArchiveError(f"{path}: not an evidence archive (bad JSON: {e})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ArchiveError(f"{path}: not an evidence archive of this grader (format {FORMAT})")
    body = document.get("body")
    if _checksum(body) != document.get("sha256"):
        raise ArchiveError(
            f"{path}: the content does not match its checksum: the archive was changed after "
            "grading, so it is refused"
        )
    try:
        parsed = Body.model_validate(body)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ArchiveError(f"{path}: body.{where}: {first['msg']}") from None
    return Archive(parsed, str(document["sha256"]))


def replay_vars(archive: Archive, names: Iterable[str], given: Mapping[str, str]) -> dict[str, str]:
    """The variables for replaying ``archive`` under a rubric declaring ``names``: those given
    now, else those recorded; a secret recorded as given reads as ``RECORDED_SECRET``."""
    found: dict[str, str] = {}
    for name in names:
        if name in given:
            found[name] = given[name]
        elif name in archive.body.vars:
            found[name] = archive.body.vars[name]
        elif archive.body.secret_vars.get(name):
            found[name] = RECORDED_SECRET
    return found


# ----- replay -----


class ReplayExecutor:
    """Answers a recorded command as the VM did when it was graded."""

    def __init__(self, archive: Archive) -> None:
        self.address = archive.address
        self.graded_at = archive.body.graded_at
        self._answers: dict[bytes, CommandRecord] = {}
        for entry in archive.body.commands:
            self._answers.setdefault(entry.command.data, entry)

    def exec(self, command: bytes, timeout: float, limit: int = COMMAND_OUTPUT_LIMIT) -> Completed:
        entry = self._answers.get(command)
        shown = command.decode("utf-8", errors="replace")
        if entry is None:
            raise NeedsLiveVM(
                f"needs the live VM: `{shown}` was not run when the VM was graded "
                f"({self.graded_at}), so its evidence archive has no answer to it"
            )
        answer = entry.answer()
        if answer is None:
            raise NeedsLiveVM(
                f"needs the live VM: the output of `{shown}` was not kept ({entry.omitted})"
            )
        if isinstance(answer, CommandTimeout):
            raise answer
        return answer


class ReplayOutside(Outside):
    """The outside probes, answered from the archive."""

    def __init__(self, archive: Archive, ports: Iterable[int]) -> None:
        super().__init__(archive.address, ports)
        self.graded_at = archive.body.graded_at
        self._probes = archive.body.probes

    def _once(self, key: tuple[object, ...], probe: Any) -> Any:
        kind = key[0]
        for entry in self._probes:
            if isinstance(entry, GreetingProbe) and (entry.probe, entry.port) == key:
                return Greeting(entry.ok, entry.code, entry.text)
            if isinstance(entry, ScanProbe) and kind == "scan":
                wanted = set(key[1])  # type: ignore[call-overload]
                if wanted <= set(entry.ports):
                    return Scan(entry.source, dict(entry.states))
            if isinstance(entry, LoginProbe) and key[:3] == ("pop3-login", entry.port, entry.user):
                password = str(key[3])
                if password == RECORDED_SECRET or entry.password.matches(password):
                    return Pop3Login(entry.ok, entry.messages, entry.text)
                raise NeedsLiveVM(
                    f"needs the live VM: the POP3 login as {entry.user} was made with another "
                    "password than the one given now"
                )
        raise NeedsLiveVM(
            f"needs the live VM: the probe {_describe(key)} was not made when the VM was graded "
            f"({self.graded_at}), so its evidence archive has no answer to it"
        )


def _describe(key: tuple[object, ...]) -> str:
    kind = key[0]
    if kind == "scan":
        return "port scan of " + ",".join(map(str, key[1]))  # type: ignore[call-overload]
    if kind == "pop3-login":
        return f"POP3 login as {key[2]} on port {key[1]}"
    return f"{str(kind).upper()} greeting on port {key[1]}"
