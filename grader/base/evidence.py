"""Evidence: every remote command and outside probe a check relied on, kept with its result.

Checks never handle evidence themselves. The SSH backend and the outside probes call
``record()``; the runner wraps each check in ``collect()``, so whatever the check caused to run
(including answers served from the per-host memo) lands in that check's evidence list. A
``ContextVar`` keeps checks running in different threads apart.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

#: Evidence is for people: a bounded excerpt of each output, never a whole mailbox.
OUTPUT_LIMIT = 2000

_current: ContextVar[Seen | None] = ContextVar("grader_evidence", default=None)


@dataclass(frozen=True)
class Evidence:
    source: str  # the command run on the VM, or the probe made from outside
    output: str  # what came back, clipped to OUTPUT_LIMIT characters


def _as_is(text: str) -> str:
    return text


@dataclass
class Seen:
    """What one check relied on, and what it noticed without changing its verdict."""

    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mask: Callable[[str], str] = _as_is  # hides secrets, before anything is clipped


def clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Shorten ``text`` to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n... (truncated: {len(text) - limit} more characters)"


#: A command longer than this is named in words in a message (it is whole in the evidence)
SHOWN_COMMAND = 72


def command_in_words(command: str) -> str:
    """A command as a message a person reads names it: a safe read of the toolkit's
    (``p=PATH; ...``) as "reading PATH", a short command as itself in backquotes, a long one
    by its start; the whole command stays in the evidence, never in the sentence."""
    text = " ".join(command.split())
    if text.startswith("p=") and ";" in text:
        return f"reading {text[2:].split(';', 1)[0].strip(chr(39))}"
    if len(text) <= SHOWN_COMMAND:
        return f"`{text}`"
    return f"a command of the checks (`{text.split(' ', 1)[0]} ...`, whole in the evidence)"


def record(source: str, output: str) -> None:
    """Add one piece of evidence to the check being run, if any: once, however many times the
    check asked (a memoized answer is the same evidence)."""
    sink = _current.get()
    if sink is not None:
        piece = Evidence(source=sink.mask(source), output=clip(sink.mask(output)))
        if piece not in sink.evidence:
            sink.evidence.append(piece)


def note(text: str) -> None:
    """Say something about the check being run that does not change its verdict (e.g. the
    VM's view and the view from outside disagree). Under plain pytest it is a warning."""
    sink = _current.get()
    if sink is not None:
        sink.notes.append(clip(sink.mask(text)))
    else:
        warnings.warn(text, stacklevel=2)


@contextlib.contextmanager
def collect(mask: Callable[[str], str] = _as_is) -> Iterator[Seen]:
    """Collect the evidence and notes recorded while the body runs (in this context), each
    passed through ``mask`` first."""
    sink = Seen(mask=mask)
    token = _current.set(sink)
    try:
        yield sink
    finally:
        _current.reset(token)
