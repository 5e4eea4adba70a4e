"""The lab catalog: packs found by name, for ``grade --lab NAME`` and ``grade labs``.

A pack is a folder holding ``rubric.toml`` and its ``checks`` (and, for course staff, its
simulated scenarios and handout); its name is the folder's. The grader looks for packs, in
order, in the folders named by the environment variable ``GRADER_LABS`` (separated like PATH),
in ``./labs`` under the current folder, and in the packs that come with the grader (the
source checkout's ``labs/``, or the installed copy). The lab at the top of this project
(``rubric.toml`` and ``checks/``) is the built-in one, named ``lab6``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grader.base.closest import closest
from grader.base.errors import InputError

BUILT_IN = "lab6"  # the name of the lab at the top of the project
_PACKAGE = Path(__file__).resolve().parents[1]  # grader/, where a wheel puts _lab and _labs


@dataclass(frozen=True)
class PackInfo:
    name: str
    rubric: Path
    title: str  # the rubric's title, or why it cannot be read


def built_in_rubric() -> Path:
    """The built-in lab's rubric: the source checkout's, else the copy installed inside the
    package."""
    for candidate in (_PACKAGE.parent / "rubric.toml", _PACKAGE / "_lab" / "rubric.toml"):
        if candidate.is_file():
            return candidate
    raise InputError("the built-in rubric.toml is missing from this installation; give --rubric")


def search_path() -> list[Path]:
    found = [Path(p) for p in os.environ.get("GRADER_LABS", "").split(os.pathsep) if p]
    found += [Path.cwd() / "labs", _PACKAGE.parent / "labs", _PACKAGE / "_labs"]
    return list(dict.fromkeys(p.resolve() for p in found))


def available() -> list[PackInfo]:
    """Every pack the grader can see, the built-in one first; a name found twice is the
    first one found (as on a PATH)."""
    packs = {BUILT_IN: _info(BUILT_IN, built_in_rubric())}
    for folder in search_path():
        if not folder.is_dir():
            continue
        for rubric in sorted(folder.glob("*/rubric.toml")):
            packs.setdefault(rubric.parent.name, _info(rubric.parent.name, rubric))
    return list(packs.values())


def find(name: str) -> Path:
    """The rubric of the pack called ``name``; InputError naming the packs there are."""
    for pack in available():
        if pack.name == name:
            return pack.rubric
    names = [p.name for p in available()]
    raise InputError(
        f"--lab {name}: no such lab{closest(name, names)}; the labs here are "
        f"{', '.join(names)} (grade labs lists them; GRADER_LABS adds folders of them)"
    )


def _info(name: str, rubric: Path) -> PackInfo:
    import tomllib  # lazy: self-check (imports this module on Python 3.9: no tomllib)

    try:
        title = str(tomllib.loads(rubric.read_text()).get("title", "?"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        title = f"(cannot read its rubric: {e})"
    return PackInfo(name, rubric, title)
