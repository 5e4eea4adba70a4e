"""What a replay needs of a pack, kept: its rubric's text and its checks' code, in one blob.

A grading's evidence archive holds what the VM answered; replaying it needs the checks that
asked, as they were. A rubric changes during a semester, and so may its checks, so the gradebook
keeps, for every rubric a lab was graded with, the code it was graded with: ``blob`` packs the
rubric file and every file of its checks folder (Python caches and dot files left out) into
gzip'd JSON, keyed by the rubric's sha256 and ``checks_digest`` (a SHA-256 over the checks
folder's file names and contents, the same wherever the folder lies). ``unpack`` writes it back
into a folder of its own, the rubric pointing at the checks beside it, to be loaded as a pack.

A checks folder larger than ``LIMIT`` is not kept (no pack comes near it); a grading under it
cannot then be replayed by the book, and an import says so.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
from pathlib import Path, PurePosixPath
from typing import Any

from grader.base.errors import InputError

FORMAT = "lab-grader-pack-code/1"
#: Bytes of files a kept pack may hold (Lab 6's rubric and checks: about 60 KB).
LIMIT = 32 * 1024 * 1024


def _files(checks_dir: Path) -> dict[str, Path]:
    """The checks folder's files by their path in it (POSIX), caches and dot files left out."""
    found = {}
    for path in sorted(checks_dir.rglob("*")):
        relative = path.relative_to(checks_dir)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        if path.suffix in (".pyc", ".pyo") or not path.is_file():
            continue
        found[relative.as_posix()] = path
    return found


def checks_digest(checks_dir: Path) -> str:
    """A SHA-256 of the checks' code: each file's path in the folder and its content."""
    digest = hashlib.sha256(FORMAT.encode() + b"\n")
    for name, path in _files(checks_dir).items():
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(f"{name}\0{content}\n".encode())
    return digest.hexdigest()


def blob(rubric_path: Path, rubric_sha256: str, checks_dir: Path) -> tuple[str, bytes] | None:
    """(the checks' digest, the blob) of a pack as it is on disk; None when its rubric file is
    no longer the one of ``rubric_sha256`` (edited since it was loaded) or the pack is past
    ``LIMIT``."""
    try:
        text = rubric_path.read_bytes()
        files = {name: path.read_bytes() for name, path in _files(checks_dir).items()}
    except OSError:
        return None
    if hashlib.sha256(text).hexdigest() != rubric_sha256:
        return None
    if len(text) + sum(len(data) for data in files.values()) > LIMIT:
        return None
    document = {
        "format": FORMAT,
        "rubric": base64.b64encode(text).decode("ascii"),
        "checks": {name: base64.b64encode(data).decode("ascii") for name, data in files.items()},
    }
    packed = gzip.compress(json.dumps(document, sort_keys=True).encode(), mtime=0)
    return checks_digest(checks_dir), packed


def unpack(packed: bytes, folder: Path) -> Path:
    """Write a kept pack into ``folder`` (new and empty): ``rubric.toml``, pointing at the
    ``checks`` folder beside it. Returns the rubric's path."""
    document = _read(packed)
    checks = folder / "checks"
    try:
        for name, data in document["checks"].items():
            target = checks / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(data, validate=True))
        text = base64.b64decode(document["rubric"], validate=True).decode("utf-8")
    except ValueError as e:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise InputError(f"the gradebook's kept pack: {e}") from None
    import tomlkit  # lazy: self-check (its bundle has no tomlkit; only a replay of a kept pack)

    rubric = tomlkit.parse(text)
    rubric["checks"] = "checks"
    path = folder / "rubric.toml"
    path.write_text(tomlkit.dumps(rubric))
    return path


def _read(packed: bytes) -> dict[str, Any]:
    """A kept pack's document, checked: names inside its folder, values base64."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(packed)) as stream:
            raw = stream.read(2 * LIMIT + 1)
        document = json.loads(raw) if len(raw) <= 2 * LIMIT else None
    except (OSError, EOFError, ValueError, RecursionError):
        document = None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"the gradebook's kept pack: not a kept pack of this grader ({FORMAT})")
    problem = None
    if not isinstance(document.get("rubric"), str) or not isinstance(document.get("checks"), dict):
        problem = "its rubric or checks are missing"
    else:
        for name, data in document["checks"].items():
            parts = PurePosixPath(name).parts
            if (
                not isinstance(data, str)
                or not parts
                or PurePosixPath(name).is_absolute()
                or any(p in ("..", ".") or "\\" in p for p in parts)
            ):
                problem = f"a file name that is not a checks folder's: {name!r}"
                break
    if problem is not None:
        raise InputError(f"the gradebook's kept pack: {problem}")
    return document
