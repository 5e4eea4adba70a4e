"""Signatures on what this grader writes inside a course: an HMAC-SHA256, with a key kept in
the course folder, over a report and its evidence archive.

A report is a file anyone who can write the folder can edit, and an evidence archive's checksum
tells an edit only to someone who does not recompute it. The signature tells what this course's
grader wrote from anything else: ``<student>.json.sig`` beside the report holds the key's id and
``HMAC-SHA256(key, format, sha256(report file), sha256(archive file))``. The report's JSON and
the archive's format are unchanged (a signature is a file of its own), and a folder copied with
its ``.sig`` files stays verifiable wherever the course's key is.

The key (``signing.key`` in the course folder: 32 random bytes, as hex) is made on first need,
readable by its owner only (0600), by whichever grading gets there first (made whole under
another name, then linked into place: two shards starting at once share one key). It is never
printed, logged or written into a report: a ``Key`` shows its file and its id (an HMAC of a fixed
text, which tells keys apart and gives nothing of the key away).

A signature proves only that a grader holding the course's key wrote the file. Whoever can read
the key can sign: keep the course folder private (course.toml's ``private``, the default).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from grader.base.errors import InputError
from grader.base.files import write_atomic
from grader.evidence.archive import archive_path

FORMAT = "lab-grader-signature/1"
KEY_FILE = "signing.key"
COURSE_FILE = "course.toml"  # grader.course.config.FILE: what makes a folder a course's
SUFFIX = ".sig"
_KEY_BYTES = 32
_SIGNATURE_LIMIT = 4096  # a signature file is about 150 bytes
_ELSEWHERE = (
    " (a folder another course's grader signed can be taken without its .sig files: its "
    "reports are then replayed as unsigned ones)"
)


class SignatureError(InputError):
    """A signed report whose signature does not hold: refused, naming the file."""


def signature_path(report_path: Path) -> Path:
    """``alice.json`` -> ``alice.json.sig``, in the same folder."""
    return report_path.with_name(report_path.name + SUFFIX)


def course_of(folder: Path) -> Path | None:
    """The course folder ``folder`` lies in (it, or the nearest folder above it with a
    course.toml), or None."""
    here = folder.resolve()
    for candidate in (here, *here.parents):
        if (candidate / COURSE_FILE).is_file():
            return candidate
    return None


def key_for(folder: Path) -> Key | None:
    """The key of the course ``folder`` lies in (the key itself is read, or made, when it is
    first used); None outside a course."""
    course = course_of(folder)
    return Key(course / KEY_FILE) if course is not None else None


def signer_for(folder: Path) -> Key | None:
    """The key to sign what is written into ``folder`` with, read (or made) now, before any
    grading starts (a key that cannot be read stops it here); None outside a course."""
    key = key_for(folder)
    return key.prepared() if key is not None else None


def _sha256_of(path: Path) -> str | None:
    """The file's SHA-256, read a piece at a time (an archive may be megabytes); None when
    there is no such file."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while piece := stream.read(1 << 20):
                digest.update(piece)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


class Key:
    """A course's signing key, at ``path``; its bytes are read (or made) on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._secret: bytes | None = None

    def __repr__(self) -> str:
        return f"Key({str(self.path)!r})"  # never the key

    def prepared(self) -> Key:
        """The key, read (or made) now: InputError, naming the file, when it cannot be."""
        self._load(create=True)
        return self

    def _load(self, create: bool) -> bytes | None:
        if self._secret is not None:
            return self._secret
        if create and not self.path.exists():
            self._make()
        try:
            text = self.path.read_bytes()[:200]
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InputError(
                f"{self.path}: cannot read the course's signing key: {e.strerror}"
            ) from None
        try:
            secret = bytes.fromhex(text.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            secret = b""
        if len(secret) != _KEY_BYTES:
            raise InputError(
                f"{self.path}: not a signing key of this grader ({2 * _KEY_BYTES} hex digits); "
                "restore it from the course's backup (without it, nothing signed can be verified)"
            )
        self._secret = secret
        return secret

    def _make(self) -> None:
        """A new key, made whole before it takes the key's name; a key already there is kept."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        spare = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}")
        write_atomic(spare, secrets.token_hex(_KEY_BYTES) + "\n", private=True)
        try:
            os.link(spare, self.path)
        except FileExistsError:
            pass  # another grading made it first: theirs is the course's
        finally:
            spare.unlink()

    @property
    def id(self) -> str | None:
        """A name for the key that gives nothing of it away (None: there is no key yet)."""
        secret = self._load(create=False)
        if secret is None:
            return None
        return hmac.new(secret, b"lab-grader key id", hashlib.sha256).hexdigest()[:16]

    def _mac(self, secret: bytes, report_path: Path) -> str:
        report = _sha256_of(report_path)
        if report is None:
            raise FileNotFoundError(report_path)
        archive = _sha256_of(archive_path(report_path)) or "none"
        message = f"{FORMAT}\nreport {report}\narchive {archive}\n".encode()
        return hmac.new(secret, message, hashlib.sha256).hexdigest()

    def sign(self, report_path: Path) -> None:
        """Sign the report file as it is now, with its archive (the key is made if need be)."""
        secret = self._load(create=True)
        assert secret is not None  # made above
        document = {"format": FORMAT, "key": self.id, "hmac_sha256": self._mac(secret, report_path)}
        write_atomic(signature_path(report_path), json.dumps(document) + "\n")

    def verify(self, report_path: Path) -> bool:
        """True: the report is signed, and it and its archive are as this key signed them;
        False: it is not signed. SignatureError (naming the file) when it is signed and does
        not verify."""
        where = signature_path(report_path)
        try:
            raw = where.read_bytes()[: _SIGNATURE_LIMIT + 1]
        except FileNotFoundError:
            return False
        except OSError as e:
            raise SignatureError(f"{where}: cannot read the signature: {e.strerror}") from None
        try:
            document = json.loads(raw) if len(raw) <= _SIGNATURE_LIMIT else None
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SignatureError(f"{where}: not a signature of this grader ({FORMAT})")
        said, mac = document.get("key"), document.get("hmac_sha256")
        secret = self._load(create=False)
        if secret is None:
            raise SignatureError(
                f"{report_path}: signed, but this course has no signing key ({self.path} is not "
                f"there) to verify it with{_ELSEWHERE}"
            )
        if said != self.id:
            raise SignatureError(
                f"{report_path}: signed with another key than this course's ({self.path}): "
                f"not written by this course's grader{_ELSEWHERE}"
            )
        if not isinstance(mac, str) or not hmac.compare_digest(
            mac.encode(), self._mac(secret, report_path).encode()
        ):
            raise SignatureError(
                f"{report_path}: its signature does not verify: the report or its evidence "
                "archive was changed after this course's grader wrote it"
            )
        return True


def forget(report_path: Path) -> None:
    """Remove the report's signature (before the report is written again: an old signature
    never vouches for a new report)."""
    signature_path(report_path).unlink(missing_ok=True)
