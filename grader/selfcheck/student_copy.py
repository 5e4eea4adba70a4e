"""A student copy of a rubric: the same file (comments and layout kept) without the hidden
items, for handing out with the self-check.

A visible item that depended on a hidden one loses that dependency in the copy (the instructor's
grading still applies it). The copy records how many items it left out, never their ids, so a
student's report can still say "N more checks are marked by your instructor".
"""

from __future__ import annotations

import os
from pathlib import Path

import tomlkit

from grader.engine.rubric import Rubric, load_rubric


def student_copy(rubric: Rubric, folder: Path | None = None) -> str:
    """The copy's text. Its ``checks`` names the lab's checks folder from ``folder`` (where the
    copy is written; absolute when it goes to stdout), so the copy grades where it is put."""
    hidden = {item.id for item in rubric.items if item.visibility == "hidden"}
    document = tomlkit.parse(rubric.path.read_text())
    document["checks"] = (
        os.path.relpath(rubric.checks_dir, folder.resolve()) if folder else str(rubric.checks_dir)
    )
    sections = document["sections"]
    for s in reversed(range(len(sections))):
        items = sections[s]["items"]
        for i in reversed(range(len(items))):
            if items[i]["id"] in hidden:
                del items[i]
            elif "depends" in items[i]:
                kept = [d for d in items[i]["depends"] if d not in hidden]
                if kept:
                    items[i]["depends"] = kept
                else:
                    del items[i]["depends"]
        if not len(items):
            del sections[s]
    # how many, never which: a student's file names nothing of a hidden item
    document["hidden_items"] = rubric.hidden_items + len(hidden)
    text = tomlkit.dumps(document)
    load_rubric((folder or rubric.checks_dir.parent) / "student.toml", text)  # valid, or a bug
    return text
