"""The closest valid name, for messages about a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, candidates: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" when a candidate is close to ``name``, else ""."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
