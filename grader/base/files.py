"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_atomic(path: Path, content: str | bytes, private: bool = False) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path``. The file
    gets the usual mode under the user's umask (pages and summaries are for sharing), or
    0600 when ``private`` (evidence archives: what a VM answered, byte for byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        if not private:
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def safe_name(name: str) -> str:
    """A file name made from a host or student name: no path separators, no dot files."""
    cleaned = re.sub(r"[^A-Za-z0-9._@-]", "_", name).lstrip(".")
    return cleaned or "_"
