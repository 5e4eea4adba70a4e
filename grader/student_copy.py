"""A student copy of a rubric: the same file (comments and layout kept) without the hidden
items, for handing out with the self-check.

A visible item that depended on a hidden one loses that dependency in the copy (the instructor's
grading still applies it). The copy records how many items it left out, so a student's report
can still say "N more checks are marked by your instructor".
"""

from __future__ import annotations

import tomlkit

from grader.rubric import Rubric, load_rubric


def student_copy(rubric: Rubric) -> str:
    hidden = {item.id for item in rubric.items if item.visibility == "hidden"}
    document = tomlkit.parse(rubric.path.read_text())
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
    legacy = rubric.hidden_items and not rubric.hidden_ids  # an older copy: a count only
    document["hidden_items"] = (
        rubric.hidden_items + len(hidden) if legacy else [*rubric.hidden_ids, *sorted(hidden)]
    )
    text = tomlkit.dumps(document)
    load_rubric(rubric.path, text)  # the copy is a valid rubric, or this is a bug
    return text
