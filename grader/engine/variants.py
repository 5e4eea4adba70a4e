"""Per-student variants: rubric variables derived from the student's id.

A rubric variable with ``derive`` gets a value of its own for each student, so that each does
their own lab (their own DNS zone, their own port, a word their pages carry) and a copied VM
shows. ``derive`` is a template over these fields:

* ``{student}``: the student's id, lower case, anything but letters, digits and ``-`` made
  ``-`` (fit for a host name);
* ``{hash}`` or ``{hash:N}``: the hex digest (its first N digits) of the student's id:
  HMAC-SHA256 keyed with the variable named by ``key`` (a course secret, so that no student
  can compute another's), else plain SHA-256;
* ``{number}``: a number from the same digest, within ``range = [low, high]``;
* ``{NAME}``: another (not derived) variable's value.

A variable is derived only when the student is known (a roster run, ``--student``) and its key,
if it has one, is given; else it is unset, and the checks that need it are skipped, saying so.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FIELDS = ("student", "hash", "number")


@dataclass(frozen=True)
class Var:
    """A rubric variable (the rubric's [vars])."""

    default: str = ""
    secret: bool = False
    help: str = ""
    derive: str | None = None  # a template (see this module's docstring)
    key: str | None = None  # the variable whose value keys the hash
    range: tuple[int, int] | None = None  # for {number}


def template_fields(template: str) -> list[tuple[str, str]]:
    """The (field, spec) pairs of a template; ValueError when it is not one."""
    found = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if conversion or not name.isidentifier():
            raise ValueError(f"{{{name}}} is not a field a template may hold")
        found.append((name, spec or ""))
    return found


def problems(name: str, var: Var, names: Sequence[str]) -> list[str]:
    """What is wrong with a derived variable's definition (checked when the rubric loads)."""
    if var.derive is None:
        return ["key and range are for a derived variable (derive = ...)"] if var.key else []
    try:
        fields = template_fields(var.derive)
    except ValueError as e:
        return [f"derive: {e}"]
    found = []
    for field, spec in fields:
        if field not in FIELDS and field not in names:
            found.append(
                f"derive: {{{field}}} is neither {', '.join(FIELDS)} nor a variable of the rubric"
            )
        elif field == "hash" and spec and not spec.isdigit():
            found.append(f"derive: {{hash:{spec}}}: the width must be a number of hex digits")
        elif field == name:
            found.append("derive: a variable cannot be derived from itself")
    if any(field == "number" for field, _ in fields) and var.range is None:
        found.append("derive: {number} needs range = [low, high]")
    if var.key is not None and var.key not in names:
        found.append(f"key: {var.key!r} is not a variable of the rubric")
    return found


def derive(var: Var, student: str, values: Mapping[str, str]) -> str | None:
    """The variable's value for ``student``; None when its key is not given."""
    assert var.derive is not None
    secret = values.get(var.key) if var.key else None
    if var.key and not secret:
        return None
    digest = (
        hmac.new(secret.encode(), student.encode(), hashlib.sha256).hexdigest()
        if secret
        else hashlib.sha256(student.encode()).hexdigest()
    )
    low, high = var.range or (0, 0)
    fields = {
        "student": re.sub(r"[^a-z0-9-]", "-", student.lower()).strip("-") or "student",
        "hash": digest,
        "number": str(low + int(digest, 16) % (high - low + 1)) if var.range else "",
        **{k: v for k, v in values.items() if k not in FIELDS},
    }
    out = []
    for literal, name, spec, _ in string.Formatter().parse(var.derive):
        out.append(literal)
        if name is not None:
            value = fields.get(name, "")
            out.append(value[: int(spec)] if name == "hash" and spec else value)
    return "".join(out)
