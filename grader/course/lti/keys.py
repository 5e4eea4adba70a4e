"""The tool's signing keys: RSA, made with ``cryptography``, kept in the course folder
(``lti-keys/``, 0700; each key 0600) and never anywhere else; their public halves are the
tool's JWKS (``/lti/jwks``), which the LMS reads to check what the tool signs (its deep-link
responses, its client assertions for a service token).

One key signs (``tool.pem``). Rotation (``grade serve lti-keys --rotate``) makes a new one and
keeps the one before as ``retired-<UTC time>.pem``: it stays in the JWKS for ``RETIRED_FOR``
after (an LMS caches the JWKS; no token the tool signs lasts more than ten minutes), and is
deleted by the next ``grade serve lti-keys`` after that. JWTs are made by PyJWT (RS256 only).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from grader.base.clock import now
from grader.base.errors import InputError
from grader.base.files import write_atomic

FOLDER = "lti-keys"
CURRENT = "tool.pem"
RETIRED_FOR = timedelta(days=1)
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class ToolKey:
    kid: str
    path: Path
    retired_at: datetime | None = None  # None: the key that signs


def _load(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _kid(private: Any) -> str:
    """The key's id: a digest of its public half (the same key, the same id)."""
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:18]).decode()


def keys(folder: Path) -> list[ToolKey]:
    """The tool's keys: the one that signs first, then the retired ones still published."""
    where = folder / FOLDER
    found: list[ToolKey] = []
    if (where / CURRENT).is_file():
        found.append(ToolKey(_kid(_load(where / CURRENT)), where / CURRENT))
    retired = []
    for path in where.glob("retired-*.pem") if where.is_dir() else []:
        stamp, _, nth = path.stem.removeprefix("retired-").partition("-")
        try:
            at = datetime.strptime(stamp, _STAMP).replace(tzinfo=timezone.utc)
            retired.append((at, int(nth or 0), path))
        except ValueError:
            continue
    for at, _, path in sorted(retired, reverse=True):  # the latest retired first
        found.append(ToolKey(_kid(_load(path)), path, at))
    return found


def _retired_name(where: Path, moment: datetime) -> Path:
    """A retired key's file: its time, and a number after it when that second has one."""
    stamp = f"{moment.astimezone(timezone.utc):{_STAMP}}"
    path, nth = where / f"retired-{stamp}.pem", 0
    while path.exists():
        nth += 1
        path = where / f"retired-{stamp}-{nth}.pem"
    return path


def make(folder: Path, rotate: bool = False) -> tuple[ToolKey, list[Path]]:
    """The signing key, made if there is none (or a new one, ``rotate``: the one before
    retired); and the retired keys deleted now, past ``RETIRED_FOR``."""
    where = folder / FOLDER
    where.mkdir(mode=0o700, exist_ok=True)
    os.chmod(where, 0o700)
    current = where / CURRENT
    moment = now()
    if current.exists() and rotate:
        os.replace(current, _retired_name(where, moment))
    if not current.exists():
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(current, pem.decode(), private=True)
    os.chmod(current, 0o600)
    gone = []
    for key in keys(folder):
        if key.retired_at is not None and moment - key.retired_at > RETIRED_FOR:
            key.path.unlink()
            gone.append(key.path)
    return keys(folder)[0], gone


def signing(folder: Path) -> ToolKey:
    found = keys(folder)
    if not found or found[0].retired_at is not None:
        raise InputError(
            f"{folder / FOLDER / CURRENT}: the course has no LTI signing key yet: make it with "
            "`grade serve lti-keys`"
        )
    return found[0]


def jwks(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The public JWKS: each key's public half only (``n`` and ``e``), with its ``kid``."""
    published = []
    moment = now()
    for key in keys(folder):
        if key.retired_at is not None and moment - key.retired_at > RETIRED_FOR:
            continue
        public = _load(key.path).public_key()
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        published.append({"kty": "RSA", "n": jwk["n"], "e": jwk["e"], "kid": key.kid,
                          "alg": "RS256", "use": "sig"})  # fmt: skip
    return {"keys": published}


def sign(folder: Path, claims: dict[str, Any]) -> str:
    """``claims`` as a JWT the tool signs (RS256, its key's ``kid`` in the header)."""
    key = signing(folder)
    return jwt.encode(claims, _load(key.path), algorithm="RS256", headers={"kid": key.kid})
