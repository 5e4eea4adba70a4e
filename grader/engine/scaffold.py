"""A new lab pack that runs as made (``grade new-lab DIR``): a rubric of two sections (a
dependency, hints, a variable, a path), its checks (one from inside the VM, one from outside,
one on its processes), its simulated scenarios (the lab done right, the VM as handed out),
the verdicts expected of each VM (``expected.toml``) and a handout, written from the templates
in ``newlab/`` beside this module. The lab author's guide (docs/guide) starts from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from grader.base.errors import InputError
from grader.base.files import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "newlab"
#: A title: one line of printable text
_TITLE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def title_of(folder: Path) -> str:
    """A lab's title from its folder's name: ``web-lab`` is "Web lab"."""
    words = re.sub(r"[-_.\s]+", " ", folder.resolve().name).strip()
    return (words[:1].upper() + words[1:]) or "A new lab"


def make_pack(folder: Path, title: str | None = None) -> list[Path]:
    """Write a new pack into ``folder`` (made, or empty); the files written, in order.
    InputError when the folder holds anything already, or the title is not one line."""
    title = title_of(folder) if title is None else title
    if not _TITLE.fullmatch(title):
        raise InputError(f"--title {title!r}: a title is one line of text, 1 to 200 characters")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder}: not an empty folder; a new lab is made in a new one")
    values = {"title": json.dumps(title, ensure_ascii=False), "heading": title}
    written = []
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        target = folder / template.relative_to(TEMPLATES).with_suffix("")
        text = template.read_text()
        for name, value in values.items():
            text = text.replace("{{" + name + "}}", value)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, text)
        written.append(target)
    return written
